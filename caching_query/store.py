"""Reading and writing entries in a Beaker ``Cache``.

A hit costs one backend read: Beaker's ``Value.get_value()`` asks
whether the key exists and then reads it (two round trips to memcached
or Redis); here the entry and its namespace's generation come back
together, with the table versions of automatic invalidation where the
backend allows. What a record is: ``entries.records``; what a miss does
with these reads and writes: ``misses``.

A backend that fails is reported to ``health`` and the query runs
against the database; every outcome is counted (``operations.stats``).
"""

from __future__ import annotations

import logging
import math
import pickle
import uuid
from typing import Any

from beaker.cache import Cache
from beaker.container import OpenResourceNamespaceManager

from . import health
from .entries import records, sealing
from .entries.entry import CacheEntry
from .internals import _beaker_internals
from .invalidation import versions
from .invalidation.versions import Tokens, Watch
from .keys import backend_key as _backend_key
from .locks import thread_guard as _thread_guard
from .operations import stats

log = logging.getLogger("caching_query")


class BackendFailure(Exception):
    """A cache backend operation failed; ``health`` has been told."""


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
            try:
                fix()
            except Exception:
                # a namespace file that cannot even be opened to write
                _discard(cache, key)
                return


def _backend_failed(cache: Cache, error: BaseException) -> BackendFailure:
    stats.count(stats.slot_of(cache), stats.BACKEND_ERRORS)
    health.failed(cache, error)
    return BackendFailure(str(error))


def _lookup(
    cache: Cache,
    key: str,
    watch: Watch | None = None,
    again: bool = False,
    stale: list[CacheEntry] | None = None,
) -> tuple[Any, CacheEntry | None, Tokens | None]:
    """The namespace's generation, ``key``'s entry if live and current, and
    the versions ``watch`` asked for. ``again``: the second look of a miss,
    under the creation lock, which counts no refused or stale entry twice.
    ``stale`` receives an entry that has expired within the region's
    ``stale_while_revalidate`` but is otherwise current (not cleared, its
    tables unchanged)."""
    try:
        generation, stored, current = _read(cache, key, watch)
    except Exception as error:
        if health.is_backend_failure(error):
            raise _backend_failed(cache, error) from error
        if records.sealing_of(cache).signs and isinstance(error, pickle.UnpicklingError):
            records.refused(cache, key, f"the backend holds a pickle of classes ({error})", again)
        else:
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
    grace = _stale_grace(cache) if stale is not None else 0.0
    found, bad = records.entry_in(cache, key, stored, counted=not again, stale_for=grace)
    if bad:
        _discard(cache, key)
    expired = isinstance(found, records.Expired)
    entry: CacheEntry | None = found.entry if isinstance(found, records.Expired) else found
    if entry is not None and (generation is None or entry.meta.get("generation") != generation):
        entry = None  # written before the namespace was last cleared
    if entry is not None and watch is not None:
        try:
            if not watch.is_current(entry, current):  # type: ignore[arg-type]
                entry = None  # a table it was read from has been written since
                if not again:
                    stats.count(stats.slot_of(cache), stats.AUTO_INVALIDATIONS)
        except Exception as error:
            if health.is_backend_failure(error):
                raise _backend_failed(cache, error) from error
            raise
    if entry is not None and expired and stale is not None:
        stale.append(entry)
        return generation, None, current
    if entry is not None:
        stats.count_hit(stats.slot_of(cache), len(stored) if type(stored) is bytes else 0)
    return generation, entry, current


def _stale_grace(cache: Cache) -> float:
    settings = getattr(cache, "lock_settings", None)
    return settings.stale_while_revalidate if settings is not None else 0.0


def read(cache: Cache, key: str, watch: Watch | None = None) -> CacheEntry | None:
    """The live entry under ``key``, or None; one backend round trip."""
    if watch is not None and not watch.usable:
        return None
    entry = _lookup(cache, key, watch)[1]
    if entry is None:
        stats.count(stats.slot_of(cache), stats.MISSES)
    return entry


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
        record = records.record_for(cache, key, entry, expire)
        _store_raw(cache, _backend_key(key), record, _kept_for(cache, expire))
    except sealing.Oversized as oversized:
        records.not_stored(cache, key, entry, oversized)
        return
    except _beaker_internals.EntryRefused as refused:
        records.not_stored(cache, key, entry, refused)
        return
    except _beaker_internals.PoolServerDown as down:
        stats.count(stats.slot_of(cache), stats.BACKEND_ERRORS)
        health.server_failed(cache, down.server, down)
        return
    except Exception as error:
        if health.is_backend_failure(error):
            raise _backend_failed(cache, error) from error
        # one failed write (a concurrent insert of the same row, say)
        log.warning("caching_query: could not store the entry under key %r: %s", key, error)
        return
    slot = stats.slot_of(cache)
    stats.count(slot, stats.STORES)
    if type(record) is bytes:
        stats.count(slot, stats.BYTES_WRITTEN, len(record))
    health.succeeded(cache)
    if health.servers_down():
        health.server_answered(
            cache, _beaker_internals.pool_server_of(cache.namespace, _backend_key(key))
        )


def _kept_for(cache: Cache, expire: int | None) -> int | None:
    # With stale_while_revalidate, the server keeps an entry that long past
    # its expiry (the record's own expiry still says when it is stale).
    grace = _stale_grace(cache)
    return expire + math.ceil(grace) if expire and grace else expire


def invalidate(cache: Cache, key: str) -> None:
    """``remove()`` at a user's request: counted as an invalidation."""
    remove(cache, key)
    stats.count(stats.slot_of(cache), stats.INVALIDATIONS)


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
    stats.count(stats.slot_of(cache), stats.CLEARS)
