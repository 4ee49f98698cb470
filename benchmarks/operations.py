"""Measurement 8: what counting statistics and signing entries cost a hit.

* a one-row and a 100-row ``select()`` hit on the memory region, counted
  and not counted (``operations.stats.enabled``), measured alternately:
  the issue's bound is 2 %;
* the same hits on each serializing backend, from a region with signing
  keys against the same region without (an HMAC-SHA256 of the entry's
  bytes per hit, and the restricted unpickler around it).
"""

from __future__ import annotations

import sys
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import caching_query
from caching_query.operations import stats
from examples.model import Person

from .environment import Bench
from .timing import Stats, measure_pair

ROWS = (1, 100)
SIGNING_KEY = "benchmark signing key, 32 bytes!"


def _query(rows: int, region: str, namespace: str) -> Any:
    return (
        select(Person)
        .where(Person.id <= rows)
        .order_by(Person.id)
        .options(caching_query.FromCache(region, namespace))
    )


def _pair(bench: Bench, first: Any, second: Any) -> tuple[Stats, Stats]:
    session = bench.cached()
    first(session)  # the misses that store both entries
    second(session)
    session.close()
    return measure_pair(first, second, bench.plan, bench.cached, Session.close)


def _counting(bench: Bench, rows: int) -> tuple[Stats, Stats]:
    query = _query(rows, "memory", f"ops.stats.{rows}")

    def off(session: Session) -> None:
        stats.enabled = False
        session.scalars(query).all()

    def on(session: Session) -> None:
        stats.enabled = True
        session.scalars(query).all()

    try:
        return _pair(bench, off, on)
    finally:
        stats.enabled = True


def _signing(bench: Bench, backend: str, rows: int) -> tuple[Stats, Stats]:
    signed = f"{backend}-signed"
    bench.manager.regions.setdefault(
        signed, {**bench.manager.regions[backend], "signing_keys": [SIGNING_KEY]}
    )
    plain_query = _query(rows, backend, f"ops.sign.{rows}")
    signed_query = _query(rows, signed, f"ops.sign.{rows}")
    return _pair(
        bench,
        lambda session: session.scalars(plain_query).all(),
        lambda session: session.scalars(signed_query).all(),
    )


def _row(label: str, rows: int, without: Stats, with_: Stats) -> dict[str, Any]:
    ratio = round(with_.median_us / without.median_us, 4)
    print(f"  {label:20} {rows:4} rows  with/without {ratio:.3f}", file=sys.stderr)
    return {
        "what": label,
        "rows": rows,
        "without": without.as_dict(),
        "with": with_.as_dict(),
        "ratio": ratio,
    }


def run(bench: Bench, backends: list[str]) -> dict[str, Any]:
    counting = [_row("statistics (memory)", n, *_counting(bench, n)) for n in ROWS]
    signing = [
        _row(f"signing ({backend})", n, *_signing(bench, backend, n))
        for backend in backends
        if backend != "memory"
        for n in ROWS
    ]
    return {"statistics": counting, "signing": signing}
