"""``python -m benchmarks``: what the cache costs and what it saves.

Everything runs in one process and one run, against a database and cache
servers started for the run (loopback, free ports, temporary directories)
and stopped at the end. Medians of many repetitions go to stdout as a
table and to ``--json`` as data. Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine

from . import (
    backends,
    cache_hits,
    clients,
    concurrency,
    data,
    entrances,
    floor,
    invalidation,
    least_hit,
    micro,
    operations,
    report,
    targets,
)
from .environment import make_bench
from .servers import Servers
from .timing import FULL, QUICK

DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"


class SetupError(Exception):
    """The database the run needs could not be provided."""


def _backend_list(text: str) -> list[str]:
    try:
        return backends.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="few repetitions: a smoke run for CI (well under a minute)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        metavar="PATH",
        help=f"where to write the results (default {DEFAULT_JSON})",
    )
    parser.add_argument(
        "--backends",
        type=_backend_list,
        default=None,
        metavar="LIST",
        help=f"comma-separated, from {','.join(backends.ALL)} (default: "
        "memory,file, plus redis and memcached when installed)",
    )
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="where the people live (default: a SQLite file)",
    )
    return parser.parse_args(argv)


def _regions(
    names: list[str], tmp: Path, running: Servers
) -> tuple[dict[str, Any], dict[str, str]]:
    """Region configs for the backends that can run; the others, with why not."""
    configured: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for name in names:
        try:
            configured[name] = backends.region(name, tmp, running)
        except (RuntimeError, OSError) as error:
            skipped[name] = str(error).splitlines()[0]
            print(f"warning: skipping backend {name}: {skipped[name]}", file=sys.stderr)
    return configured, skipped


def run(args: argparse.Namespace, tmp: Path, running: Servers) -> dict[str, Any]:
    """All measurements and the targets held against them, as one JSON-ready dict."""
    started = time.perf_counter()
    names = args.backends or backends.default_names()
    if args.database == "postgresql":
        try:
            url = running.url("postgres")
        except (RuntimeError, OSError) as error:
            raise SetupError(f"cannot start PostgreSQL: {error}") from error
    else:
        url = f"sqlite:///{tmp / 'people.db'}"
    engine = create_engine(url)
    try:
        people = data.install(engine)
        regions, skipped = _regions(names, tmp, running)
        regions.update(clients.extra_regions(regions))
        plan = QUICK if args.quick else FULL
        bench = make_bench(engine, regions, plan, args.quick)
        print("measuring uncached vs hit ...", file=sys.stderr)
        # the clients' extra regions are measured by section 10 only
        names_measured = [name for name in regions if "/" not in name]
        query_cache = cache_hits.run(bench, names_measured)
        print("measuring the floor of a one-row hit ...", file=sys.stderr)
        hit_floor = floor.run(bench, query_cache)
        print("measuring the least hit and the file read ...", file=sys.stderr)
        least = least_hit.run(bench, names_measured)
        print("measuring the direct entrance, raw GETs and clients ...", file=sys.stderr)
        direct_vs_hook = entrances.direct_vs_hook(bench)
        legacy_floor = entrances.legacy_floor(bench)
        raw_gets = entrances.raw_gets(bench, names_measured)
        client_figures = clients.run(bench)
        print("measuring derive_key, overhead ...", file=sys.stderr)
        derive_key = micro.derive_keys(bench)
        overhead = micro.overhead(bench)
        print("measuring concurrency ...", file=sys.stderr)
        threads = concurrency.run(bench)
        entry_size = micro.entry_size(bench)
        print("measuring statistics and signing ...", file=sys.stderr)
        operating = operations.run(bench, names_measured)
        print("measuring automatic invalidation ...", file=sys.stderr)
        auto_invalidation = invalidation.run(bench, names_measured)
    finally:
        engine.dispose()
    options = {
        "quick": args.quick,
        "database": args.database,
        "people": people,
        "backends": names_measured,
        "skipped_backends": skipped,
        "plan": dataclasses.asdict(plan),
        "duration_seconds": round(time.perf_counter() - started, 2),
    }
    results = {
        "meta": report.meta(options),
        "query_cache": query_cache,
        "hit_floor": hit_floor,
        "least_hit": least,
        "direct_vs_hook": direct_vs_hook,
        "legacy_floor": legacy_floor,
        "raw_gets": raw_gets,
        "clients": client_figures,
        "derive_key": derive_key,
        "caching_query_overhead": overhead,
        "concurrency": threads,
        "entry_size": entry_size,
        "auto_invalidation": auto_invalidation,
        "operations": operating,
    }
    results["targets"] = targets.evaluate(results)
    return results


def main(argv: list[str] | None = None) -> int:
    """Parse options, run, print the table, write the JSON."""
    args = _arguments(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    running = Servers()
    try:
        with tempfile.TemporaryDirectory(prefix="cq-bench-") as tmp:
            try:
                results = run(args, Path(tmp), running)
            finally:
                running.stop()
    except SetupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    report.write_json(results, args.json)  # first: a report that fails loses no figures
    print(report.render(results))
    print(f"\nresults written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
