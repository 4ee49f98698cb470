"""Which sessions invalidate automatically, and what their entries are checked against.

Set by ``auto_invalidate()`` / ``cache_all()`` on a session factory (the
same targets ``install()`` takes) and read by the hook on every cached
execution; a session whose factory was never switched on keeps explicit
invalidation only.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from beaker.cache import Cache, CacheManager
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from .. import regions
from ..internals import _sa_internals
from . import dependencies, publish, versions
from .dependencies import ANY_TABLE
from .statements import EVERYTHING

if TYPE_CHECKING:
    from ..options import CacheOption, FromCache


@dataclass(frozen=True)
class Settings:
    """Automatic invalidation for one session factory."""

    excluded_regions: frozenset[str] = frozenset()
    # "cache every query": the option every uncached ORM SELECT gets
    cache_all: FromCache | None = None

    def covers(self, option: Any) -> bool:
        """True when entries of ``option`` are checked against table versions."""
        return (
            getattr(option, "auto_invalidate", None) is not False
            and option.region not in self.excluded_regions
        )


_settings: weakref.WeakKeyDictionary[Any, Settings] = weakref.WeakKeyDictionary()


def switch_on(target: Any, settings: Settings) -> None:
    _settings[target] = settings


def settings_for(session: Session) -> Settings | None:
    """The settings of ``session``'s factory, or None: explicit invalidation only."""
    if not _settings:
        return None
    return _settings.get(session) or _settings.get(type(session))


def switch_off(target: Any) -> None:
    _settings.pop(target, None)


def watch(
    settings: Settings | None,
    statement: Executable,
    option: CacheOption,
    manager: CacheManager | None,
    cache: Cache,
) -> versions.Watch | None:
    """What an entry of ``statement`` is checked against; None: explicit invalidation only."""
    if settings is None or not settings.covers(option):
        return None
    if regions.is_session_local(cache):
        # A session's own cache: any write of this process makes it a miss
        return versions.Watch(None, None, frozenset({EVERYTHING, ANY_TABLE}))
    cache_key = _sa_internals.statement_cache_key(statement)
    if cache_key is None:  # an explicit key on a statement SQLAlchemy cannot key
        structure, tables = None, frozenset({EVERYTHING, ANY_TABLE})
    else:
        structure = cache_key.key
        tables = dependencies.reads_for(statement, structure).tables | {ANY_TABLE}
    return versions.Watch(
        regions.get_cache(option.region, versions.VERSIONS_NAMESPACE, manager),
        structure,
        tables,
        strict=settings.cache_all is not None,
        # this process failed to announce a write there: versions are stale
        usable=publish.is_current(cache),
    )
