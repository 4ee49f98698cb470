"""Measurement 1: a query without the cache vs the same query as a cache hit.

Each hit and each miss is measured in blocks alternating with blocks of the
uncached query (``timing.measure_blocks``), so that the machine's drift
moves both figures of a ratio alike.

Every call gets a fresh session (empty identity map), as a web request
would: otherwise a hit would merge into objects the session already holds
and the uncached query would find them in its identity map, flattering
both. The query is built inside the timed call, since an application
builds it each time too. A miss (entry removed before each call) is
measured as well: it is what the first request pays.
"""

from __future__ import annotations

import sys
from typing import Any

from sqlalchemy.orm import Session

from caching_query import FromCache

from .environment import QUERIES, Bench, count_sql, invalidate
from .timing import Stats, measure_blocks

SIZES = (1, 100, 1000)
APIS = ("legacy", "2.0")


def _uncached_call(api: str, rows: int) -> Any:
    query = QUERIES[api]
    return lambda session: query(session, rows)


def _option(backend: str, api: str, rows: int) -> FromCache:
    return FromCache(backend, f"bench.{api}.{rows}")


def _hit(bench: Bench, backend: str, api: str, rows: int) -> tuple[Stats, Stats, int]:
    """The uncached query and the hit, measured alternately, and the SQL
    statements one hit sent (0 unless broken)."""
    query = QUERIES[api]

    def call(session: Session) -> Any:
        return query(session, rows, _option(backend, api, rows))

    with bench.cached() as session:
        call(session)  # the miss that stores the entry
    uncached, stats = measure_blocks(
        _uncached_call(api, rows), call, bench.plan, bench.cached, Session.close
    )
    with bench.cached() as session, count_sql(bench.engine) as sent:
        returned = len(call(session))
    # A backend that failed is bypassed silently (caching_query.health): then
    # "hits" would be database queries. Say so rather than report them.
    if returned != rows or sent:
        print(
            f"warning: {backend} {api} {rows}-row hit returned {returned} rows and "
            f"sent {len(sent)} SQL statements; its figures are not cache hits",
            file=sys.stderr,
        )
    return uncached, stats, len(sent)


def _miss(bench: Bench, backend: str, api: str, rows: int) -> tuple[Stats, Stats]:
    """The uncached query and the miss, measured alternately."""
    query = QUERIES[api]

    def fresh_session_without_entry() -> Session:
        session = bench.cached()
        invalidate(session, api, rows, _option(backend, api, rows))
        return session

    def call(session: Session) -> Any:
        return query(session, rows, _option(backend, api, rows))

    return measure_blocks(
        _uncached_call(api, rows), call, bench.plan, fresh_session_without_entry, Session.close
    )


def run(bench: Bench, backends: list[str]) -> list[dict[str, Any]]:
    """One record per (api, rows, backend), ratios relative to uncached."""
    records = []
    for api in APIS:
        for rows in SIZES:
            for backend in backends:
                uncached, hit, hit_sql = _hit(bench, backend, api, rows)
                beside_miss, miss = _miss(bench, backend, api, rows)
                records.append(
                    {
                        "api": api,
                        "rows": rows,
                        "backend": backend,
                        "uncached": uncached.as_dict(),
                        "hit": hit.as_dict(),
                        "miss": miss.as_dict(),
                        "ratio_hit_uncached": round(hit.median_us / uncached.median_us, 4),
                        "ratio_miss_uncached": round(miss.median_us / beside_miss.median_us, 4),
                        "hit_sql_statements": hit_sql,
                    }
                )
                print(
                    f"  {api:6} {rows:5} rows  {backend:9} hit/uncached "
                    f"{records[-1]['ratio_hit_uncached']:.3f}",
                    file=sys.stderr,
                )
    return records
