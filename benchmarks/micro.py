"""Measurements 2, 3 and 5: key derivation, CachingQuery's own cost, entry size.

Keys are derived from statements built fresh for each call: SQLAlchemy
memoizes parts of a statement's structural key on the statement object,
so timing one statement over and over would measure a memo lookup, not
what a request that builds its query pays.
"""

from __future__ import annotations

import itertools
import pickle
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from caching_query import FromCache, keys
from examples.model import Person

from .environment import MEMORY_REGION, QUERIES, Bench, stored_entry
from .timing import Stats, measure

Builder = Callable[[Iterator[int]], Select[Any]]

IN_VALUES = 1000
ENTRY_ROWS = 1000


def _simple(counter: Iterator[int]) -> Select[Any]:
    return select(Person).where(Person.name == f"person {next(counter) % 1000:04d}")


def _in_list(counter: Iterator[int]) -> Select[Any]:
    start = next(counter) % 1000
    return select(Person).where(Person.id.in_(list(range(start, start + IN_VALUES))))


def _key_figures(bench: Bench, label: str, build: Builder) -> list[tuple[str, Stats]]:
    counter = itertools.count()
    return [
        (f"{label}: build only", measure(lambda _: build(counter), bench.plan)),
        (
            f"{label}: derive_key, statement pre-built (building excluded)",
            measure(lambda stmt: keys.derive_key(stmt, None), bench.plan, lambda: build(counter)),
        ),
        (
            f"{label}: SQLAlchemy's structural key alone, statement pre-built",
            measure(lambda stmt: stmt._generate_cache_key(), bench.plan, lambda: build(counter)),
        ),
        (
            f"{label}: build + derive_key",
            measure(lambda _: keys.derive_key(build(counter), None), bench.plan),
        ),
    ]


def derive_keys(bench: Bench) -> list[dict[str, Any]]:
    """Building a statement, deriving its key, and both together."""
    figures = [
        *_key_figures(bench, "simple filter", _simple),
        *_key_figures(bench, f"in_() of {IN_VALUES}", _in_list),
    ]
    return [{"what": what, **stats.as_dict()} for what, stats in figures]


def _overhead_figure(bench: Bench, api: str, rows: int) -> dict[str, Any]:
    query = QUERIES[api]
    plain = measure(lambda s: query(s, rows), bench.plan, bench.plain, Session.close)
    caching = measure(lambda s: query(s, rows), bench.plan, bench.cached, Session.close)
    return {
        "api": api,
        "rows": rows,
        "baseline": "Query, no hook" if api == "legacy" else "Session without the hook",
        "plain": plain.as_dict(),
        "caching": caching.as_dict(),
        "ratio_caching_plain": round(caching.median_us / plain.median_us, 4),
    }


def overhead(bench: Bench) -> list[dict[str, Any]]:
    """A query with no cache option: with CachingQuery/the hook vs stock SQLAlchemy.

    Legacy: ``query_cls=CachingQuery`` against the stock ``Query``; 2.0:
    a session class with the hook installed against one without.
    """
    return [_overhead_figure(bench, api, rows) for api in ("legacy", "2.0") for rows in (1, 100)]


def entry_size(bench: Bench) -> dict[str, Any]:
    """Bytes of ``pickle.dumps`` of the stored entry for 1000 Person rows."""
    option = FromCache(MEMORY_REGION, "bench.entry_size")
    cache, key = stored_entry(bench, "legacy", ENTRY_ROWS, option)
    entry = cache.get(key)
    rows = len(entry)
    size = len(pickle.dumps(entry))
    # For scale: the same rows as bare (id, name) tuples.
    with bench.plain() as session:
        bare = session.execute(
            select(Person.id, Person.name).where(Person.id <= ENTRY_ROWS).order_by(Person.id)
        ).all()
    bare_size = len(pickle.dumps([tuple(row) for row in bare]))
    return {
        "rows": rows,
        "pickle_protocol": pickle.DEFAULT_PROTOCOL,
        "bytes": size,
        "bytes_per_row": round(size / max(rows, 1), 1),
        "bare_tuples_bytes": bare_size,
    }
