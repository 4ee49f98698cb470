"""What a value read back must be before it is served, and the record that is written.

Records keep Beaker's ``(stored_at, expire, value)`` layout, the value
being a ``CacheEntry``; on a backend that serializes, the record is sealed
into bytes first (see ``sealing``). A value that is not a ``CacheEntry``
this version understands (foreign, corrupt, unsigned, from a newer
format) is never returned: it is logged and treated as a miss, and the
caller removes it so that the next miss can store a good one.
"""

from __future__ import annotations

import logging
import time
from typing import Any, NamedTuple

from beaker.cache import Cache

from ..operations import stats
from . import sealing
from .entry import CacheEntry, is_valid

log = logging.getLogger("caching_query")

_UNSEALED = sealing.Sealing(serializes=False)
_warned_shapes: set[Any] = set()


def sealing_of(cache: Cache) -> sealing.Sealing:
    return getattr(cache, "sealing", None) or _UNSEALED


def _where(cache: Cache, key: str, seal: sealing.Sealing) -> bytes:
    # what a MAC binds an entry to; unsigned entries need none
    if not seal.signs:
        return b""
    return f"{cache.namespace_name}\0{key}".encode("utf-8", "surrogatepass")


def record_for(cache: Cache, key: str, entry: CacheEntry, expire: int | None) -> Any:
    """What to store for ``entry``; ``sealing.Oversized`` over the region's limit."""
    record = (time.time(), expire, entry)
    seal = sealing_of(cache)
    return seal.seal(record, _where(cache, key, seal)) if seal.serializes else record


def _is_expired(cache: Cache, stored_at: float, expire: int | None) -> bool:
    if cache.starttime is not None and stored_at < cache.starttime:
        return True
    return expire is not None and time.time() >= stored_at + expire


def refused(cache: Cache, key: str, why: str, again: bool = False) -> None:
    """A value that signing does not let through: counted, warned once per namespace."""
    slot = stats.slot_of(cache)
    if not again:
        stats.count(slot, stats.REFUSED)
    sealing.warn_unsigned(slot[0], slot[1], key, why)


def _refused(cache: Cache, key: str, why: str, counted: bool) -> tuple[None, bool]:
    refused(cache, key, why, again=not counted)
    return None, False  # left in place: the next store replaces it


def _bad(cache: Cache, key: str, what: str, counted: bool) -> tuple[None, bool]:
    log.warning(
        "caching_query: ignoring %s under key %r in namespace %r",
        what,
        key,
        cache.namespace_name,
    )
    if counted:
        stats.count(stats.slot_of(cache), stats.REFUSED)
    return None, True


class Expired(NamedTuple):
    """An entry past its expiry but within ``stale_while_revalidate``."""

    entry: CacheEntry


def entry_in(
    cache: Cache, key: str, stored: Any, counted: bool = True, stale_for: float = 0.0
) -> tuple[CacheEntry | Expired | None, bool]:
    """The live entry in what the backend returned for ``key``, and whether
    that value must be removed (it is not ours to read). ``counted=False``
    for a second look at the same key, which counts nothing refused again."""
    if stored is None:  # the memcached backend answers None for "absent"
        return None, False
    seal = sealing_of(cache)
    if type(stored) is bytes:
        try:
            stored = seal.open(stored, _where(cache, key, seal))
        except sealing.Unsigned as why:
            return _refused(cache, key, str(why), counted)
        except Exception as error:
            return _bad(cache, key, f"unreadable bytes ({error})", counted)
    elif seal.signs:
        return _refused(cache, key, "it is not signed (stored without signing keys)", counted)
    try:
        stored_at, expire, value = stored
    except (TypeError, ValueError):
        return _bad(cache, key, "a malformed record", counted)
    if _is_expired(cache, stored_at, expire):
        if stale_for and expire is not None and time.time() < stored_at + expire + stale_for:
            if is_valid(value):
                return Expired(value), False
        return None, False
    if not is_valid(value):
        return _bad(
            cache,
            key,
            f"a value of type {type(value).__name__} that this library did not store "
            "(or stored in another format)",
            counted,
        )
    return value, False


def not_stored(cache: Cache, key: str, entry: CacheEntry, why: Exception) -> None:
    """An entry the backend cannot take: the query's rows are still returned.

    Not an outage: other entries keep being read and stored. One warning
    per query shape (the columns an entry of rows holds).
    """
    slot = stats.slot_of(cache)
    stats.count(slot, stats.OVERSIZED)
    columns = getattr(entry.data, "columns", None)
    shape = (slot, entry.kind, columns)
    if shape in _warned_shapes:
        return
    _warned_shapes.add(shape)
    log.warning(
        "caching_query: not caching the result stored under key %r in namespace %r "
        "(nor others of its shape): %s",
        key,
        cache.namespace_name,
        why,
    )
