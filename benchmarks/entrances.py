"""Measurement 9: the two entrances of a legacy hit, the least a direct hit can cost,
and what one raw GET costs on each server backend.

* the same legacy hit through the direct entrance (``caching_query.direct``)
  and through ``Session.execute`` and the hook, measured alternately;
* the floor of a direct hit: building the query, its statement and the
  statement's structural cache key, which no hit found by a derived key
  can skip, in a fresh session per call;
* one GET of a stored entry's bytes with the backend's own client, in a
  tight loop and, as the yardstick, after a memory hit (what it adds to
  one, measured alternately); beside it what a hit on that backend adds to
  the memory hit (also alternately), and decoding those bytes into the
  entry (a memory region keeps the entry itself), which the addition
  cannot go below either.
"""

from __future__ import annotations

import sys
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from caching_query import FromCache, keys, store
from caching_query.entries import records
from caching_query.internals import _beaker_internals
from examples.model import Person

from .environment import (
    Bench,
    CachedSession,
    close_pair,
    legacy_all,
    session_pairs,
    stored_entry,
)
from .timing import Stats, measure, measure_blocks, measure_pair

SIZES = (1, 100, 1000)
SERVER_TYPES = ("ext:redis", "ext:rediscluster", "ext:memcached")


def hook_only(bench: Bench) -> sessionmaker[Any]:
    """Sessions like ``bench.cached`` whose legacy queries take ``Session.execute``."""
    direct_class = bench.cached.kw["query_cls"]
    hook_class = type("HookPathQuery", (direct_class,), {"_fetch_directly": lambda self: None})
    # the base class, not bench.cached's own subclass, which carries the hook already
    return sessionmaker(bind=bench.engine, class_=CachedSession, query_cls=hook_class)


def _option(rows: int) -> FromCache:
    return FromCache("memory", f"entrances.{rows}")


def direct_vs_hook(bench: Bench) -> list[dict[str, Any]]:
    """Per size: the memory hit through each entrance, and their ratio."""
    hook = hook_only(bench)
    records = []
    for rows in SIZES:
        with bench.cached() as session:
            legacy_all(session, rows, _option(rows))

        direct, hooked = measure_pair(
            lambda pair, n=rows: legacy_all(pair[0], n, _option(n)),
            lambda pair, n=rows: legacy_all(pair[1], n, _option(n)),
            bench.plan,
            session_pairs(bench.cached, hook),
            close_pair,
        )
        records.append(
            {
                "rows": rows,
                "direct": direct.as_dict(),
                "hook": hooked.as_dict(),
                "ratio_direct_hook": round(direct.median_us / hooked.median_us, 4),
            }
        )
        print(
            f"  legacy {rows:5} rows  direct/hook {records[-1]['ratio_direct_hook']:.3f}",
            file=sys.stderr,
        )
    return records


def _build_and_key(session: Session) -> Any:
    query = (
        session.query(Person)
        .filter(Person.id <= 1)
        .order_by(Person.id)
        .options(FromCache("memory", "entrances.floor"))
    )
    return query._statement_20()._generate_cache_key()


def legacy_floor(bench: Bench) -> dict[str, Any]:
    """Building a one-row legacy query and its structural key: a direct hit's floor,
    measured in blocks alternating with the one-row legacy memory hit."""
    option = FromCache("memory", "bench.legacy.1")  # measurement 1's entry
    floor, hit = measure_blocks(
        _build_and_key,
        lambda session: legacy_all(session, 1, option),
        bench.plan,
        bench.cached,
        Session.close,
    )
    return {
        "api": "legacy",
        "rows": 1,
        "floor": floor.as_dict(),
        "hit": hit.as_dict(),
        "ratio_hit_floor": round(hit.median_us / floor.median_us, 4),
    }


def _raw_get_stats(bench: Bench, backend: str, rows: int, option: FromCache) -> tuple[Stats, int]:
    """One raw GET of the entry ``option`` keeps the ``rows``-row legacy query under."""
    cache, key = stored_entry(bench, "legacy", rows, option)
    namespace = cache.namespace
    backend_key = keys.backend_key(key)
    stored = _beaker_internals.raw_get(namespace, backend_key)
    size = len(stored) if isinstance(stored, bytes) else -1
    stats = measure(lambda _: _beaker_internals.raw_get(namespace, backend_key), bench.plan)
    return stats, size


def _decode_stats(bench: Bench, rows: int, option: FromCache) -> Stats:
    """Turning what the backend returned into the entry: unsealing and unpickling it."""
    cache, key = stored_entry(bench, "legacy", rows, option)
    (stored,) = _beaker_internals.read_records(cache.namespace, [keys.backend_key(key)])
    return measure(lambda _: records.entry_in(cache, key, stored), bench.plan)


def _in_context(bench: Bench, backend: str, rows: int) -> tuple[float, float, float]:
    """What a hit on ``backend`` adds to a memory hit, and what one raw GET and
    the hit's own read (its entry and its namespace's generation, in one
    request) add to it.

    All are differences of calls measured in blocks alternating with blocks
    of the memory hit alone (``timing.measure_blocks``), so the GET is timed
    where a hit does it: after a request's worth of work, with the server
    idle meanwhile, not in a tight loop that keeps both ends of the
    connection hot. Blocks, as for every other ratio of the targets: each
    call is timed in its own steady state, not after the other's leftovers.
    """
    memory, server = (
        FromCache("memory", f"bench.legacy.{rows}"),
        FromCache(backend, f"bench.legacy.{rows}"),
    )
    cache, key = stored_entry(bench, "legacy", rows, server)
    namespace, stored_key = cache.namespace, keys.backend_key(key)
    both = [keys.backend_key(store.GENERATION_KEY), stored_key]

    def memory_hit(session: Session) -> Any:
        return legacy_all(session, rows, memory)

    def memory_hit_and_get(session: Session) -> Any:
        legacy_all(session, rows, memory)
        return _beaker_internals.raw_get(namespace, stored_key)

    def memory_hit_and_read(session: Session) -> Any:
        legacy_all(session, rows, memory)
        return _beaker_internals.read_records(namespace, both)

    def server_hit(session: Session) -> Any:
        return legacy_all(session, rows, server)

    def added(call: Any) -> float:
        alone, with_call = measure_blocks(memory_hit, call, bench.plan, bench.cached, Session.close)
        return with_call.median_us - alone.median_us

    return added(server_hit), added(memory_hit_and_get), added(memory_hit_and_read)


def raw_gets(bench: Bench, backends: list[str]) -> list[dict[str, Any]]:
    """Per server backend and size: what a hit adds to a memory hit, against one raw GET."""
    records = []
    for backend in backends:
        if bench.manager.regions[backend]["type"] not in SERVER_TYPES:
            continue
        for rows in SIZES:
            option = FromCache(backend, f"bench.legacy.{rows}")  # measurement 1's entry
            stats, size = _raw_get_stats(bench, backend, rows, option)
            decode = _decode_stats(bench, rows, option)
            added, get, read = _in_context(bench, backend, rows)
            records.append(
                {
                    "backend": backend,
                    "rows": rows,
                    "entry_bytes": size,
                    "raw_get": stats.as_dict(),
                    "raw_get_in_context_us": round(get, 3),
                    "decode": decode.as_dict(),
                    "added_us": round(added, 3),
                    "ratio_added_raw_get": round(added / get, 4),
                    "read_in_context_us": round(read, 3),
                    # the least the ratio can be: the GET and the decoding, over the GET
                    "bound_ratio": round(1 + decode.median_us / get, 4),
                    # ... or, for this library's hit, which reads its namespace's
                    # generation with the entry: that read and the decoding
                    "bound_read_ratio": round((read + decode.median_us) / get, 4),
                }
            )
    return records
