"""What users do with an entry outside an execution: find it, invalidate it, clear its namespace.

Each derives the same key and ``Cache`` an execution would, through
``core.key_for`` and the option, so that a handle and the hook always
agree on where a result lives.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from beaker.cache import Cache, CacheManager
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from . import store
from .core import key_for
from .installation import default_manager as _default_manager
from .internals import _sa_internals
from .options import CacheOption, FromCache


def cache_and_key(
    session: Session | None,
    statement: Executable,
    option: CacheOption,
    parameters: Mapping[str, Any] | None = None,
    load_options: Any = None,
) -> tuple[Cache, str]:
    """The Beaker ``Cache`` and key ``statement`` is cached under."""
    manager = _default_manager(session) if session is not None else None
    return option.cache(manager), key_for(option, statement, parameters, load_options)


def invalidate(
    statement: Executable,
    option: CacheOption,
    parameters: Mapping[str, Any] | None = None,
    session: Session | None = None,
) -> None:
    """Remove the entry ``statement`` (a ``select()``) is cached under.

    ``statement`` may be given with or without ``option`` applied.
    """
    if option not in _sa_internals.statement_options(statement):
        statement = statement.options(option)
    cache, key = cache_and_key(session, statement, option, parameters)
    store.invalidate(cache, key)


def clear(
    region: str = "default",
    namespace: str | None = None,
    cache_manager: CacheManager | None = None,
) -> None:
    """Make every entry of one namespace a miss, in every process.

    One write, whatever the backend: nothing outside the namespace is
    touched (Beaker's own clear flushes a whole memcached server).
    """
    store.clear(FromCache(region, namespace, cache_manager=cache_manager).cache())
