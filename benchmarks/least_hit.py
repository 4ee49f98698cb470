"""Measurement 10b: the least a correct hit or miss costs with this library's own parts.

The floor (measurement 6) makes reading the cache and building the result
free: its hook hands back objects loaded once, beforehand. No correct hit
can do that: it must return new objects attached to the caller's session,
never the cached ones. This figure is the floor with that work put back:

* a session whose only hook derives the statement's key (SQLAlchemy's
  structural key, rendered with the bound values into the string a
  backend is asked for: any hit found by a derived key needs it) and
  replays an entry read from the memory region beforehand into the
  caller's session, through the library's own replay (``core.replay``: the
  fast loader, or SQLAlchemy's);
* left out: finding the option, the region and the entry, and every check
  (expiry, generation, uncommitted changes, outage, statistics).

It is measured in blocks alternating with the memory hit, per API and
size, so ``hit / least`` is what the library's own work adds, and
``least / uncached`` (from the two alternating ratios) is the bound a
hit/uncached target meets. It is a bound for this library: the key
derivation and the replay are its own, not the least any code could do.
A legacy least hit goes through ``Session.execute``, which the direct
entrance skips; ``targets`` scales it by the direct/hook ratio. For the
file region, one read of the entry
through Beaker's file namespace (its lock, opening the file and
unpickling it) is timed too: a file hit cannot cost less than the least
hit plus that read.

The least miss is what any miss of the library does: its key derived,
one look in the memory region, the query run with its rows captured into
an entry (``rows.capture``, the miss's own way of running it), and one
write of that entry; left out are the creation lock, the second look
under it, and the checks. It is measured for ``select()`` only, in blocks
alternating with the memory miss: both go through ``Session.execute``,
where a legacy miss takes the direct entrance, which a session hook
cannot.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from caching_query import FromCache, core, keys, store
from caching_query.entries import rows as row_entries
from caching_query.internals import _beaker_internals

from .environment import QUERIES, Bench, close_pair, invalidate, session_pairs, stored_entry
from .timing import measure, measure_blocks

SIZES = (1, 100, 1000)


class LeastHitSession(Session):
    """Sessions whose hook replays an entry read beforehand (no lookup, no checks)."""


class LeastMissSession(Session):
    """Sessions whose hook derives the key, looks once, runs the query and writes an entry."""


def _replaying(entry: Any) -> Any:
    def answer(state: ORMExecuteState) -> Any:
        keys.derive_execution_key(state.statement, state.parameters, state.load_options)
        return core.replay(state, entry)

    return answer


def _against(
    bench: Bench,
    session_class: type[Session],
    hook: Any,
    api: str,
    rows: int,
    option: FromCache,
    pair: Any,
    what: str,
) -> dict[str, Any]:
    """The least ``what`` (hit or miss) of ``session_class`` with ``hook`` against the
    library's, in alternating blocks; ``pair`` makes one session of each."""
    query = QUERIES[api]
    event.listen(session_class, "do_orm_execute", hook)
    try:
        sessions = pair()
        try:
            returned = len(query(sessions[0], rows, option))
        finally:
            close_pair(sessions)
        if returned != rows:
            raise RuntimeError(f"the least {what} returned {returned} rows, not {rows}")
        least, library = measure_blocks(
            lambda sessions: query(sessions[0], rows, option),
            lambda sessions: query(sessions[1], rows, option),
            bench.plan,
            pair,
            close_pair,
        )
    finally:
        event.remove(session_class, "do_orm_execute", hook)
    return {
        "api": api,
        "rows": rows,
        "least": least.as_dict(),
        what: library.as_dict(),
        f"ratio_{what}_least": round(library.median_us / least.median_us, 4),
    }


def _least_vs_hit(bench: Bench, api: str, rows: int) -> dict[str, Any]:
    option = FromCache("memory", f"bench.{api}.{rows}")  # measurement 1's entry
    cache, key = stored_entry(bench, api, rows, option)
    least_sessions = sessionmaker(bind=bench.engine, class_=LeastHitSession)
    pair = session_pairs(least_sessions, bench.cached)
    hook = _replaying(cache.get(key))
    return _against(bench, LeastHitSession, hook, api, rows, option, pair, "hit")


def _storing(cache: Any) -> Any:
    namespace = cache.namespace

    def answer(state: ORMExecuteState) -> Any:
        key = keys.derive_execution_key(state.statement, state.parameters, state.load_options)
        _beaker_internals.read_records(namespace, [keys.backend_key(key)])
        entry, result = row_entries.capture(state)
        if entry is None:
            raise RuntimeError("the least miss's rows could not be captured")
        store.write(cache, key, entry)
        return result

    return answer


def _least_vs_miss(bench: Bench, api: str, rows: int) -> dict[str, Any]:
    option = FromCache("memory", f"bench.{api}.{rows}")  # measurement 1's entry
    # written elsewhere: the miss must not find what the least miss stores
    hook = _storing(FromCache("memory", "least.miss").cache(bench.manager))
    least_sessions = sessionmaker(bind=bench.engine, class_=LeastMissSession)

    def pair() -> tuple[Session, Session]:
        session = bench.cached()
        invalidate(session, api, rows, option)
        return least_sessions(), session

    return _against(bench, LeastMissSession, hook, api, rows, option, pair, "miss")


def _file_read(bench: Bench, backend: str) -> dict[str, Any]:
    """One read of the one-row legacy entry through Beaker's file namespace."""
    option = FromCache(backend, "bench.legacy.1")  # measurement 1's entry
    cache, key = stored_entry(bench, "legacy", 1, option)
    namespace, stored_key = cache.namespace, keys.backend_key(key)
    stats = measure(lambda _: _beaker_internals.read_records(namespace, [stored_key]), bench.plan)
    return {"backend": backend, "rows": 1, "read": stats.as_dict()}


def run(bench: Bench, backends: list[str]) -> dict[str, Any]:
    """Per API and size the least hit and miss against the memory hit and miss;
    the file read per file region."""
    return {
        "hits": [_least_vs_hit(bench, api, rows) for api in QUERIES for rows in SIZES],
        "misses": [_least_vs_miss(bench, "2.0", rows) for rows in SIZES],
        "file_reads": [
            _file_read(bench, backend)
            for backend in backends
            if bench.manager.regions[backend]["type"] == "file"
        ],
    }
