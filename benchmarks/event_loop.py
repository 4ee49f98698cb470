"""How long a cached hit through AsyncSession blocks the event loop, per backend.

Beaker's backends are blocking: a hit on memcached or Redis waits for the
server's answer on the event loop's thread, and nothing else runs on the
loop meanwhile. This measures that time against a memory region (no I/O,
only the work of the hit). Run on its own from the repository root::

    python -m benchmarks.event_loop [--runs 3] [--hits 400] [--tasks 10]

For each backend and result size: ``hit`` is how long one ``await
session.scalars(...)`` hit keeps the loop (it never yields: the hook reads
the cache before the session connects), measured one task at a time;
``lag`` is how long a ticker task typically waited for its turn (median)
while ``--tasks`` tasks did hits concurrently: about one hit per task
ready before it. ``io`` is ``hit`` less the memory region's: the time
the loop sat waiting for the server. Figures: the median of the runs, ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from beaker.cache import CacheManager
from sqlalchemy import create_engine, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

import caching_query
from benchmarks.servers import Servers
from caching_query import FromCache
from examples import fixture_data
from examples.model import Person

BACKENDS = ("memory", "memcached", "redis")
SIZES = {"1 row": 1, "100 rows": 100}


def _region(name: str, running: Servers) -> dict[str, Any]:
    if name == "memory":
        return {"type": "memory"}
    if name == "memcached":
        return {
            "type": "ext:memcached",
            "url": running.url("memcached"),
            "memcache_module": "bmemcached",
        }
    return {"type": "ext:redis", "url": running.url("redis")}


def _statement(rows: int) -> Any:
    return select(Person).where(Person.id <= rows).order_by(Person.id).options(FromCache("default"))


async def _one_run(
    factory: async_sessionmaker[Any], rows: int, hits: int, tasks: int
) -> tuple[float, float]:
    statement = _statement(rows)
    async with factory() as session:
        assert len((await session.scalars(statement)).all()) == rows  # stored
    durations = []
    async with factory() as session:
        for _ in range(hits):
            started = time.perf_counter()
            (await session.scalars(statement)).all()
            durations.append(time.perf_counter() - started)
    gaps: list[float] = []
    running = True

    async def ticker() -> None:
        while running:
            started = time.perf_counter()
            await asyncio.sleep(0)
            gaps.append(time.perf_counter() - started)

    async def hitter() -> None:
        async with factory() as session:
            for _ in range(hits // tasks):
                (await session.scalars(statement)).all()
                await asyncio.sleep(0)  # as a request handler would between requests

    tick = asyncio.create_task(ticker())
    await asyncio.gather(*(hitter() for _ in range(tasks)))
    running = False
    await tick
    return statistics.median(durations), statistics.median(gaps)


def measure(
    engine: AsyncEngine, region: dict[str, Any], args: argparse.Namespace
) -> dict[str, tuple[float, float]]:
    factory = async_sessionmaker(engine)
    caching_query.install(factory, CacheManager(cache_regions={"default": region}))
    figures = {}
    for label, rows in SIZES.items():
        runs = [
            asyncio.run(_one_run(factory, rows, args.hits, args.tasks)) for _ in range(args.runs)
        ]
        figures[label] = (
            statistics.median(hit for hit, _ in runs) * 1000,
            statistics.median(lag for _, lag in runs) * 1000,
        )
    return figures


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hits", type=int, default=400)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    args = parser.parse_args(argv)
    running = Servers()
    with tempfile.TemporaryDirectory(prefix="cq-bench-loop-") as tmp:
        path = Path(tmp) / "people.db"
        sync = create_engine(f"sqlite:///{path}")
        fixture_data.install(sync)
        sync.dispose()
        engine = create_async_engine(f"sqlite+aiosqlite:///{path}", poolclass=NullPool)
        try:
            head = f"{'backend':<10} {'rows':<9} {'hit':>7} {'io':>7} {'lag':>7}"
            print(f"{head}  (ms; lag with {args.tasks} tasks)")
            memory: dict[str, tuple[float, float]] = {}
            for name in args.backends.split(","):
                figures = measure(engine, _region(name, running), args)
                memory = memory or (figures if name == "memory" else {})
                for label, (hit, lag) in figures.items():
                    io = (
                        f"{hit - memory[label][0]:7.3f}"
                        if memory and name != "memory"
                        else "      -"
                    )
                    print(f"{name:<10} {label:<9} {hit:7.3f} {io} {lag:7.3f}")
        finally:
            asyncio.run(engine.dispose())
            running.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
