"""Every use of a private Beaker name, in one place.

``tests/test_beaker_internals.py`` fails loudly when one of them changes.
"""

from __future__ import annotations

from typing import Any

import beaker.cache
from beaker.ext.memcached import MemcachedNamespaceManager

__all__ = ["register_backend", "set_record", "WriteRefused"]


def register_backend(name: str, namespace_class: type) -> None:
    """Make ``{"type": name}`` regions use ``namespace_class``.

    ``beaker.cache.clsmap`` no longer supports item assignment. Its entry
    points are loaded first so that a later lazy load of them does not
    report a name conflict with this registration.
    """
    backends = beaker.cache.clsmap
    with backends._mutex:
        if not backends.initialized:
            backends._init()
            backends.initialized = True
        backends._clsmap[name] = namespace_class


class WriteRefused(Exception):
    """The backend did not store a value and said so only by its return."""


def set_record(namespace: Any, key: bytes, record: Any, expire: int | None) -> None:
    """Store ``record`` like ``namespace.set_value`` does, but never silently fail.

    Beaker's memcached namespace ignores the client's answer, and the
    clients report a dead server (or an item over the size limit) only
    by returning a false value.
    """
    if isinstance(namespace, MemcachedNamespaceManager):
        stored = namespace.mc.set(namespace._format_key(key), record, time=expire or 0)
        if not stored:
            raise WriteRefused(
                "memcached did not store the entry: server down, or the entry "
                "is over its item size limit"
            )
    else:
        namespace.set_value(key, record, expiretime=expire)
