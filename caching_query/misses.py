"""The miss path: the creation lock, a second look, the query run once, its entry stored.

Concurrent misses on one key wait on the creation lock (see ``locks``)
and then read what the first one stored. When the backend fails, the
query's entry is returned without being stored. With a ``watch``, an
entry is served only while its tables are unchanged, and a new one
records their versions as read before the query ran.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from beaker.cache import Cache

from . import health, locks
from .entries.entry import CacheEntry
from .internals import _beaker_internals
from .invalidation import versions
from .invalidation.versions import Tokens, Watch
from .operations import stats
from .store import BackendFailure, _backend_failed, _lookup, write


def get_or_create(
    cache: Cache,
    key: str,
    create: Callable[[], CacheEntry],
    expire: int | None = None,
    watch: Watch | None = None,
) -> CacheEntry:
    """The entry under ``key``, running ``create`` at most once per miss.

    Concurrent misses on one key wait on the creation lock (see ``locks``)
    and then read what the first one stored. When the backend fails, ``create()``'s
    entry is returned without being stored. With a ``watch``, an entry is
    served only while its tables are unchanged, and a new one records
    their versions as read before ``create()`` ran.
    """
    if not health.available(cache):
        return _bypass(cache, create)
    if watch is not None and not watch.usable:
        stats.count(stats.slot_of(cache), stats.MISSES)
        return create()
    try:
        stale: list[CacheEntry] = []
        _, entry, _ = _lookup(cache, key, watch, stale=stale)
        if entry is not None:
            return entry
        lock = locks.creation_lock(cache, key)
        if stale and not locks.attempt(lock):
            # another process is making the new entry: serve the old one meanwhile
            stats.count(stats.slot_of(cache), stats.STALE_SERVED)
            return stale[0]
        held, entry = (
            (True, None)
            if stale
            else locks.acquire_or_find(
                lock, lambda: _lookup(cache, key, watch, again=True)[1], stats.slot_of(cache)
            )
        )
    except BackendFailure:
        return _bypass(cache, create)
    except _beaker_internals.PoolServerDown as down:  # the lock's server, not the pool
        health.server_failed(cache, down.server, down)
        held = False
    except Exception as error:  # the creation lock's own backend
        _backend_failed(cache, error)
        return _bypass(cache, create)
    if entry is not None:
        return entry  # stored by the process that held the lock
    if not held:  # waited long enough: run it here, unlocked
        return create_and_store(cache, key, create, expire, watch)
    try:
        try:
            generation, entry, current = _lookup(cache, key, watch, again=True)
        except BackendFailure:
            return _bypass(cache, create)
        if entry is None:
            entry = create_and_store(cache, key, create, expire, watch, generation, current)
        return entry
    finally:
        try:
            lock.release()
        except Exception as error:
            health.failed(cache, error)


def _bypass(cache: Cache, create: Callable[[], CacheEntry]) -> CacheEntry:
    stats.count(stats.slot_of(cache), stats.OUTAGE)
    return create()


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
    stats.count(stats.slot_of(cache), stats.MISSES)
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
