"""What the cache did, per region and namespace, counted in this process.

A hit must not pay for being counted (the benchmark measures it: well
under 2 %), so each thread counts into rows of its own, without a lock,
and ``statistics()`` adds up every thread's rows. Resetting records a
baseline to subtract rather than zeroing rows other threads are writing.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

COUNTERS = (
    "hits",
    "misses",
    "stores",
    "invalidations",
    "auto_invalidations",
    "clears",
    "refused",
    "backend_errors",
    "bytes_read",
    "bytes_written",
    "stale_served",
)
BYPASS_REASONS = ("uncommitted", "later_hooks", "outage", "oversized", "uncacheable")

(
    HITS,
    MISSES,
    STORES,
    INVALIDATIONS,
    AUTO_INVALIDATIONS,
    CLEARS,
    REFUSED,
    BACKEND_ERRORS,
    BYTES_READ,
    BYTES_WRITTEN,
    STALE_SERVED,
) = range(len(COUNTERS))
UNCOMMITTED, LATER_HOOKS, OUTAGE, OVERSIZED, UNCACHEABLE = range(
    len(COUNTERS), len(COUNTERS) + len(BYPASS_REASONS)
)
_WIDTH = len(COUNTERS) + len(BYPASS_REASONS)

Slot = tuple[str, str]  # (region, namespace)
_Rows = dict[Slot, list[int]]


@dataclass(frozen=True)
class NamespaceStatistics:
    """Counts for one region and namespace since start (or the last reset).

    ``refused`` counts values read but not trusted (unsigned, foreign,
    malformed); ``bypassed`` counts executions that did not use the cache,
    by reason: ``uncommitted`` (the session has unflushed or uncommitted
    writes), ``later_hooks`` (other ``do_orm_execute`` hooks shape the
    result), ``outage`` (the backend is down), ``oversized`` (the entry
    was over the region's ``max_entry_bytes``) and ``uncacheable`` (a
    statement that is never cached, such as a Core select of no entity).
    """

    hits: int = 0
    misses: int = 0
    stores: int = 0
    invalidations: int = 0
    auto_invalidations: int = 0
    clears: int = 0
    refused: int = 0
    backend_errors: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    stale_served: int = 0
    bypassed: Mapping[str, int] = field(default_factory=dict)

    @property
    def hit_rate(self) -> float | None:
        """hits / (hits + misses), or None before the first lookup."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else None

    def as_dict(self) -> dict[str, Any]:
        counts: dict[str, Any] = {name: getattr(self, name) for name in COUNTERS}
        counts["bypassed"] = dict(self.bypassed)
        return counts


_registry_lock = threading.Lock()
_threads: list[tuple[weakref.ref[threading.Thread], _Rows]] = []
_retired: _Rows = {}  # rows of threads that have ended
_baseline: _Rows = {}
enabled = True


_pruned_at = 1  # how many threads were registered after the last pruning


class _ThreadRows(threading.local):
    def __init__(self) -> None:
        global _pruned_at
        self.rows: _Rows = {}
        with _registry_lock:
            _threads.append((weakref.ref(threading.current_thread()), self.rows))
            if len(_threads) >= 2 * _pruned_at:
                # a thread per request must not grow the registry: fold ended
                # threads' rows into one, amortised over the threads started
                _totals()
                _pruned_at = max(len(_threads), 1)


_local = _ThreadRows()


def slot_of(cache: Any) -> Slot:
    """The (region, namespace) ``cache`` counts under (a ``RegionCache`` knows it)."""
    return getattr(cache, "slot", None) or ("?", cache.namespace_name)


def count(slot: Slot, event: int, n: int = 1) -> None:
    """Add ``n`` to one counter of ``slot``."""
    if not enabled:
        return
    rows = _local.rows
    row = rows.get(slot)
    if row is None:
        row = rows[slot] = [0] * _WIDTH
    row[event] += n


def count_hit(slot: Slot, nbytes: int) -> None:
    """One hit that read ``nbytes`` (0 where the backend does not serialize)."""
    if not enabled:
        return
    rows = _local.rows
    row = rows.get(slot)
    if row is None:
        row = rows[slot] = [0] * _WIDTH
    row[HITS] += 1
    row[BYTES_READ] += nbytes


def _add(total: _Rows, rows: _Rows, sign: int = 1) -> None:
    for slot, row in list(rows.items()):
        into = total.setdefault(slot, [0] * _WIDTH)
        for index, value in enumerate(row):
            into[index] += sign * value


def _totals() -> _Rows:
    # caller holds _registry_lock
    total: _Rows = {}
    living = []
    for thread, rows in _threads:
        alive = thread()
        if alive is None or not alive.is_alive():
            _add(_retired, rows)
        else:
            living.append((thread, rows))
            _add(total, rows)
    _threads[:] = living
    _add(total, _retired)
    return total


def statistics(reset: bool = False) -> dict[Slot, NamespaceStatistics]:
    """Counts per ``(region, namespace)`` since start or the last reset.

    With ``reset=True`` the counts start again from zero after this snapshot.
    Thread-safe; counts of other threads that are counting at this very
    moment may land in this snapshot or the next.
    """
    with _registry_lock:
        total = _totals()
        _add(total, _baseline, -1)
        if reset:
            _add(_baseline, total)
    return _snapshot(total)


def lifetime_statistics() -> dict[Slot, NamespaceStatistics]:
    """Counts since the process started, whatever ``reset`` did: what
    monotonic counters (Prometheus) must report."""
    with _registry_lock:
        return _snapshot(_totals())


def _snapshot(total: _Rows) -> dict[Slot, NamespaceStatistics]:
    result = {}
    for slot, row in sorted(total.items()):
        if not any(row):
            continue
        width = len(COUNTERS)
        # mypy cannot count a starred list against the fields it fills
        result[slot] = NamespaceStatistics(  # type: ignore[misc]
            *row[:width],  # type: ignore[arg-type]
            bypassed={
                name: row[width + i] for i, name in enumerate(BYPASS_REASONS) if row[width + i]
            },
        )
    return result


def reset_statistics() -> None:
    """Start every count again from zero."""
    statistics(reset=True)
