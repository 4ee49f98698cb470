"""Reading and writing entries in a Beaker ``Cache``.

A hit costs one backend read: Beaker's ``Value.get_value()`` asks
whether the key exists and then reads it (two round trips to memcached
or Redis). A miss takes the namespace's creation lock, so that only one
thread or process runs the query for a key at a time, reads again, and
stores what it created. Records keep Beaker's ``(stored_at, expire,
value)`` layout, so Beaker's own ``Cache.get(key)`` reads them.

A value that is not a ``CacheEntry`` this version understands (foreign,
corrupt, from a newer format) is never returned: it is logged, removed
and treated as a miss. A backend that fails is reported to ``health``
and the query runs against the database.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from typing import Any

from beaker.cache import Cache
from beaker.container import OpenResourceNamespaceManager
from beaker.synchronization import NameLock, null_synchronizer

from . import _beaker_internals, health
from .entry import CacheEntry, is_valid
from .invalidation import versions
from .invalidation.versions import Tokens, Watch

log = logging.getLogger("caching_query")

_MISSING = object()


class BackendFailure(Exception):
    """A cache backend operation failed; ``health`` has been told."""


def _backend_key(key: str) -> bytes:
    # Beaker's Cache front-end stores str keys encoded this way; using the
    # same form lets ``cache.get(key)`` read what this module wrote.
    return key.encode("ascii", "backslashreplace")


# Under this key each namespace keeps its generation: a random token that
# clear() replaces. Entries carry the token they were created under, so
# clearing is one write that touches nothing else, on every backend. "~"
# never occurs in a key this library hands out.
GENERATION_KEY = "~generation"
_GENERATION = GENERATION_KEY.encode("ascii")


def _new_generation(cache: Cache) -> str:
    token = uuid.uuid4().hex
    _store_raw(cache, _GENERATION, token, None)
    return token


def _expire_for(cache: Cache, expire: int | None) -> int | None:
    return expire if expire is not None else cache.expiretime


def _is_expired(cache: Cache, stored_at: float, expire: int | None) -> bool:
    if cache.starttime is not None and stored_at < cache.starttime:
        return True
    return expire is not None and time.time() >= stored_at + expire


def _discard(cache: Cache, key: str) -> None:
    # Only ever called for a value that is not ours to read: removing it
    # lets the next miss store a good entry instead of tripping over it.
    try:
        remove(cache, key)
        return
    except Exception:
        if not isinstance(cache.namespace, OpenResourceNamespaceManager):
            log.warning(
                "caching_query: could not remove the bad value under key %r", key, exc_info=True
            )
            return
    # file and dbm keep a whole namespace in one file; when that file
    # cannot be read, no key in it can, and dropping it is the only repair.
    log.warning("caching_query: removing unreadable namespace file of %r", cache.namespace_name)
    cache.namespace.remove()


def _unpack(cache: Cache, key: str, stored: Any) -> Any:
    """The value inside Beaker's ``(stored_at, expire, value)`` record."""
    if stored is None:  # the memcached backend answers None for "absent"
        return _MISSING
    try:
        stored_at, expire, value = stored
    except (TypeError, ValueError):
        log.warning(
            "caching_query: ignoring a malformed record under key %r in namespace %r",
            key,
            cache.namespace_name,
        )
        _discard(cache, key)
        return _MISSING
    if _is_expired(cache, stored_at, expire):
        return _MISSING
    return value


def _checked(cache: Cache, key: str, value: Any) -> CacheEntry | None:
    if value is _MISSING:
        return None
    if is_valid(value):
        return value
    log.warning(
        "caching_query: ignoring a value of type %s under key %r in namespace %r "
        "that this library did not store (or stored in another format)",
        type(value).__name__,
        key,
        cache.namespace_name,
    )
    _discard(cache, key)
    return None


_guards: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()


def _thread_guard(namespace: Any) -> Any:
    """A lock for namespaces Beaker leaves unguarded between threads.

    ``ext:database`` and ``ext:sqla`` keep a whole namespace in one object
    shared by every thread, behind a null access lock.
    """
    if not isinstance(getattr(namespace, "access_lock", None), null_synchronizer):
        return contextlib.nullcontext()
    guard = _guards.get(namespace)
    if guard is None:
        guard = _guards.setdefault(namespace, threading.RLock())
    return guard


def _creation_lock(cache: Cache, key: str) -> Any:
    lock = cache.namespace.get_creation_lock(_backend_key(key))
    if isinstance(lock, null_synchronizer):
        # No lock_dir configured: still one creator per key in this process.
        return NameLock(identifier=f"caching_query/{cache.namespace_name}/{key}")
    return lock


def _read(cache: Cache, key: str, watch: Watch | None) -> tuple[Any, Any, Tokens | None]:
    """The namespace's generation, ``key``'s record and the versions ``watch``
    asks for, in one round trip where the backend allows."""
    namespace = cache.namespace
    if watch is None or watch.versions is None:
        records = _beaker_internals.memory_records(namespace)
        if records is not None:
            generation, stored = records.get(_GENERATION), records.get(_backend_key(key))
        else:
            with _thread_guard(namespace):
                generation, stored = _beaker_internals.read_records(
                    namespace, [_GENERATION, _backend_key(key)]
                )
        return generation, stored, (watch.current() if watch is not None else None)
    with _thread_guard(namespace):
        (generation, stored), values = _beaker_internals.read_records_with(
            namespace, [_GENERATION, _backend_key(key)], watch.namespace, watch.keys()
        )
    return generation, stored, watch.current(values)


def _repair(cache: Cache, key: str) -> None:
    """After an unreadable answer: drop whichever value is unreadable."""
    namespace = cache.namespace
    for backend_key, fix in (
        (_GENERATION, lambda: _new_generation(cache)),  # a new generation: safe
        (_backend_key(key), lambda: _discard(cache, key)),
    ):
        try:
            with _thread_guard(namespace):
                _beaker_internals.read_records(namespace, [backend_key])
        except Exception:
            fix()


def _backend_failed(cache: Cache, error: BaseException) -> BackendFailure:
    health.failed(cache, error)
    return BackendFailure(str(error))


def _lookup(
    cache: Cache, key: str, watch: Watch | None = None
) -> tuple[Any, CacheEntry | None, Tokens | None]:
    """The namespace's generation, ``key``'s entry if live and current, and
    the versions ``watch`` asked for."""
    try:
        generation, stored, current = _read(cache, key, watch)
    except Exception as error:
        if health.is_backend_failure(error):
            raise _backend_failed(cache, error) from error
        log.warning(
            "caching_query: unreadable value under key %r in namespace %r",
            key,
            cache.namespace_name,
            exc_info=True,
        )
        _repair(cache, key)
        return None, None, None
    if generation is not None or stored is not None:
        # memcached clients answer "absent" for a dead server too: only
        # data, or a write that went through, proves the backend is back
        health.succeeded(cache)
    entry = _checked(cache, key, _unpack(cache, key, stored))
    if entry is not None and (generation is None or entry.meta.get("generation") != generation):
        entry = None  # written before the namespace was last cleared
    if entry is not None and watch is not None:
        try:
            if not watch.is_current(entry, current):  # type: ignore[arg-type]
                entry = None  # a table it was read from has been written since
        except Exception as error:
            if health.is_backend_failure(error):
                raise _backend_failed(cache, error) from error
            raise
    return generation, entry, current


def read(cache: Cache, key: str, watch: Watch | None = None) -> CacheEntry | None:
    """The live entry under ``key``, or None; one backend round trip."""
    if watch is not None and not watch.usable:
        return None
    return _lookup(cache, key, watch)[1]


def _store_raw(cache: Cache, backend_key: bytes, value: Any, expire: int | None) -> None:
    namespace = cache.namespace
    with _thread_guard(namespace):
        _beaker_internals.refresh(namespace)  # write into the current row
        namespace.acquire_write_lock()
        try:
            _beaker_internals.set_record(namespace, backend_key, value, expire)
        finally:
            namespace.release_write_lock()


def _current_generation(cache: Cache) -> Any:
    with _thread_guard(cache.namespace):
        (generation,) = _beaker_internals.read_records(cache.namespace, [_GENERATION])
    return generation if generation is not None else _new_generation(cache)


def write(
    cache: Cache,
    key: str,
    entry: CacheEntry,
    expire: int | None = None,
    generation: Any = None,
    watch: Watch | None = None,
) -> None:
    """Store ``entry`` under ``key``; BackendFailure if the backend did not.

    With a ``watch``, ``entry`` (made by the caller, at a time this cannot
    know) records its tables' current versions and ``ANY_TABLE``'s: any
    committed write makes it a miss.
    """
    if watch is not None and not watch.usable:
        return
    expire = _expire_for(cache, expire)
    try:
        if watch is not None:
            entry.meta[versions.TABLES] = watch.before_query(watch.current())
        entry.meta["generation"] = (
            generation if generation is not None else _current_generation(cache)
        )
        _store_raw(cache, _backend_key(key), (time.time(), expire, entry), expire)
    except Exception as error:
        if health.is_backend_failure(error):
            raise _backend_failed(cache, error) from error
        # one failed write (a concurrent insert of the same row, say)
        log.warning("caching_query: could not store the entry under key %r: %s", key, error)
        return
    health.succeeded(cache)


def remove(cache: Cache, key: str) -> None:
    """Remove ``key``'s entry; a backend failure propagates, as the entry may remain."""
    namespace = cache.namespace
    backend_key = _backend_key(key)
    with _thread_guard(namespace):
        _beaker_internals.refresh(namespace)
        namespace.acquire_write_lock()
        try:
            try:
                del namespace[backend_key]
            except KeyError:
                pass
        finally:
            namespace.release_write_lock()


def clear(cache: Cache) -> None:
    """Make every entry of ``cache``'s namespace a miss: one write, nothing else touched.

    Beaker's own ``Cache.clear()`` empties a whole memcached server
    (``flush_all``) and walks Redis with ``KEYS``.
    """
    try:
        _new_generation(cache)
    except Exception as error:
        raise _backend_failed(cache, error) from error


def get_or_create(
    cache: Cache,
    key: str,
    create: Callable[[], CacheEntry],
    expire: int | None = None,
    watch: Watch | None = None,
) -> CacheEntry:
    """The entry under ``key``, running ``create`` at most once per miss.

    Concurrent misses on one key wait on the creation lock and then read
    what the first one stored. When the backend fails, ``create()``'s
    entry is returned without being stored. With a ``watch``, an entry is
    served only while its tables are unchanged, and a new one records
    their versions as read before ``create()`` ran.
    """
    if not health.available(cache) or (watch is not None and not watch.usable):
        return create()
    try:
        _, entry, _ = _lookup(cache, key, watch)
        if entry is not None:
            return entry
        lock = _creation_lock(cache, key)
        lock.acquire()
    except BackendFailure:
        return create()
    except Exception as error:  # the creation lock's own backend
        _backend_failed(cache, error)
        return create()
    try:
        try:
            generation, entry, current = _lookup(cache, key, watch)
        except BackendFailure:
            return create()
        if entry is None:
            entry = create_and_store(cache, key, create, expire, watch, generation, current)
        return entry
    finally:
        try:
            lock.release()
        except Exception as error:
            health.failed(cache, error)


def create_and_store(
    cache: Cache,
    key: str,
    create: Callable[[], CacheEntry],
    expire: int | None = None,
    watch: Watch | None = None,
    generation: Any = None,
    current: Tokens | None = None,
) -> CacheEntry:
    """Run ``create()`` and store its entry, with the versions it was made under."""
    if watch is not None and not watch.usable:
        return create()
    if watch is None:
        entry = create()
        with contextlib.suppress(BackendFailure):
            write(cache, key, entry, expire, generation)
        return entry
    try:
        before = watch.before_query(current if current is not None else watch.current())
    except Exception as error:
        if health.is_backend_failure(error):
            _backend_failed(cache, error)
            return create()
        raise
    with versions.recording(watch, before) as recording:
        entry = create()
    try:
        tokens = recording.recorded()
    except Exception as error:
        if health.is_backend_failure(error):
            _backend_failed(cache, error)
            return entry
        raise
    if tokens is None:
        return entry
    entry.meta[versions.TABLES] = tokens
    with contextlib.suppress(BackendFailure):
        write(cache, key, entry, expire, generation)
    return entry
