"""Measurement 6: the least a one-row hit can cost, SQLAlchemy's own work.

A hit skips the database, not SQLAlchemy: the application still builds the
query, ``Session.execute()`` still runs with its ``do_orm_execute`` hooks,
the result is still shaped, and finding an entry by a derived key still
needs the statement's structural cache key. This figure is exactly that,
with reading the cache and building the object made free: a session whose
only hook computes the key and returns an object loaded beforehand. The
ratio floor/uncached is the best hit/uncached any cache hooked in through
``do_orm_execute`` can reach on this machine, whatever it stores.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, select
from sqlalchemy.engine.result import IteratorResult, SimpleResultMetaData
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker
from sqlalchemy.util import immutabledict

from caching_query import FromCache
from examples.model import Person

from .environment import MEMORY_REGION, QUERIES, Bench, close_pair, session_pairs
from .timing import measure_blocks

ROWS = 1


class FloorSession(Session):
    """Sessions whose hook answers every query with a ready result."""


def _ready_result(loaded: list[Person]) -> Any:
    def answer(state: ORMExecuteState) -> Any:
        state.statement._generate_cache_key()  # what a derived key is found by
        result: IteratorResult[Any] = IteratorResult(
            SimpleResultMetaData(["Person"]), iter(loaded), _source_supports_scalars=True
        )
        # how the ORM tells the legacy Query to return objects, not rows
        result._attributes = immutabledict({"is_single_entity": True, "filtered": False})
        return result

    return answer


def run(bench: Bench, query_cache: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per API: the floor of a one-row hit, and its ratio to the uncached query."""
    with bench.plain() as session:
        loaded = list(session.scalars(select(Person).where(Person.id <= ROWS)))
        session.expunge_all()
    floor_sessions = sessionmaker(bind=bench.engine, class_=FloorSession)
    hook = _ready_result(loaded)
    event.listen(FloorSession, "do_orm_execute", hook)
    records = []
    try:
        for api, query in QUERIES.items():
            option = FromCache(MEMORY_REGION, f"bench.{api}.{ROWS}")  # measurement 1's entry

            stats, hit = measure_blocks(
                lambda pair, q=query: q(pair[0], ROWS),
                lambda pair, q=query, o=option: q(pair[1], ROWS, o),
                bench.plan,
                session_pairs(floor_sessions, bench.cached),
                close_pair,
            )
            uncached = next(
                r["uncached"]["median_us"]
                for r in query_cache
                if r["api"] == api and r["rows"] == ROWS
            )
            records.append(
                {
                    "api": api,
                    "rows": ROWS,
                    "floor": stats.as_dict(),
                    "uncached_median_us": uncached,
                    "ratio_floor_uncached": round(stats.median_us / uncached, 4),
                    # the memory hit, measured alternately with the floor
                    "hit": hit.as_dict(),
                    "ratio_hit_floor": round(hit.median_us / stats.median_us, 4),
                }
            )
    finally:
        event.remove(FloorSession, "do_orm_execute", hook)
    return records
