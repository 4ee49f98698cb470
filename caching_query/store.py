"""Reading and writing entries in a Beaker ``Cache``.

A hit costs one backend read: Beaker's ``Value.get_value()`` asks
whether the key exists and then reads it (two round trips to memcached
or Redis). Misses go through Beaker's ``Value`` so that its creation lock
lets only one thread or process run the query for a key at a time.

A value that is not a ``CacheEntry`` this version understands (foreign,
corrupt, from a newer format) is never returned: it is logged and
treated as a miss.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from beaker.cache import Cache
from beaker.container import OpenResourceNamespaceManager, Value

from .entry import CacheEntry, is_valid

log = logging.getLogger("caching_query")

_MISSING = object()


def _backend_key(key: str) -> bytes:
    # Beaker's Cache front-end stores str keys encoded this way; using the
    # same form lets ``cache.get(key)`` read what this module wrote.
    return key.encode("ascii", "backslashreplace")


def _expire_for(cache: Cache, expire: int | None) -> int | None:
    return expire if expire is not None else cache.expiretime


def _is_expired(cache: Cache, stored_at: float, expire: int | None) -> bool:
    if cache.starttime is not None and stored_at < cache.starttime:
        return True
    return expire is not None and time.time() >= stored_at + expire


def _unpack(cache: Cache, key: str, stored: Any) -> Any:
    """The value inside Beaker's ``(stored_at, expire, value)`` record."""
    if stored is None:  # the memcached backend answers None for "absent"
        return _MISSING
    try:
        stored_at, expire, value = stored
    except (TypeError, ValueError):
        log.warning("caching_query: ignoring a malformed record under key %r in namespace %r",
                    key, cache.namespace_name)
        _discard(cache, key)
        return _MISSING
    if _is_expired(cache, stored_at, expire):
        return _MISSING
    return value


def _discard(cache: Cache, key: str) -> None:
    # Only ever called for a value that is not ours to read: removing it
    # lets the next miss store a good entry instead of tripping over it.
    try:
        remove(cache, key)
        return
    except Exception:
        if not isinstance(cache.namespace, OpenResourceNamespaceManager):
            log.warning("caching_query: could not remove the bad value under key %r", key,
                        exc_info=True)
            return
    # file and dbm keep a whole namespace in one file; when that file
    # cannot be read, no key in it can, and dropping it is the only repair.
    log.warning("caching_query: removing unreadable namespace file of %r", cache.namespace_name)
    cache.namespace.remove()


def _checked(cache: Cache, key: str, value: Any) -> CacheEntry | None:
    if value is _MISSING:
        return None
    if is_valid(value):
        return value
    log.warning(
        "caching_query: ignoring a value of type %s under key %r in namespace %r "
        "that this library did not store (or stored in another format)",
        type(value).__name__, key, cache.namespace_name,
    )
    _discard(cache, key)
    return None


def _read_record(cache: Cache, key: str) -> Any:
    namespace = cache.namespace
    namespace.acquire_read_lock()
    try:
        return namespace[_backend_key(key)]
    finally:
        namespace.release_read_lock()


def read(cache: Cache, key: str) -> CacheEntry | None:
    """The live entry under ``key``, or None; one backend read."""
    try:
        stored = _read_record(cache, key)
    except KeyError:
        return None
    except Exception:
        # An unpickling failure: a corrupt or foreign value.
        log.warning("caching_query: unreadable value under key %r in namespace %r",
                    key, cache.namespace_name, exc_info=True)
        _discard(cache, key)
        return None
    return _checked(cache, key, _unpack(cache, key, stored))


def write(cache: Cache, key: str, entry: CacheEntry, expire: int | None = None) -> None:
    Value(_backend_key(key), cache.namespace, expiretime=_expire_for(cache, expire)).set_value(entry)


def remove(cache: Cache, key: str) -> None:
    Value(_backend_key(key), cache.namespace).clear_value()


def get_or_create(
    cache: Cache,
    key: str,
    create: Callable[[], CacheEntry],
    expire: int | None = None,
) -> CacheEntry:
    """The entry under ``key``, running ``create`` at most once per miss.

    Concurrent misses on one key wait on Beaker's creation lock and then
    read what the first one stored.
    """
    entry = read(cache, key)
    if entry is not None:
        return entry
    value = Value(
        _backend_key(key),
        cache.namespace,
        createfunc=create,
        expiretime=_expire_for(cache, expire),
        starttime=cache.starttime,
    )
    found = value.get_value()
    if is_valid(found):
        return found
    # A bad value slipped past Value's own existence check.
    _checked(cache, key, found)
    entry = create()
    value.set_value(entry)
    return entry
