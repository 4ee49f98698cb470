"""``python -m caching_query``: check, clear, invalidate and inspect a configuration's caches."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from beaker.cache import CacheManager

from .. import FromCache, clear, invalidate_tables, regions
from ..exc import CachingQueryError
from ..invalidation import publish, versions
from . import probes
from .config import ConfigError, load, select_regions

OK, FAILED, BAD_USAGE = 0, 1, 2

EPILOG = """\
CONFIG is a Beaker/Pyramid configuration file (a path ending in .ini or
.cfg: cache.regions, cache.<region>.type, ... in [app:main] or the first
section holding cache. settings) or module:attribute naming a beaker
CacheManager, or a callable returning one (imported with the current
directory on sys.path).

exit status:
  0  success
  1  a backend did not answer, or an operation failed
  2  bad usage or bad configuration (missing file, unknown region,
     import error)
"""

log = logging.getLogger("caching_query")


class _Collected(logging.Handler):
    """Keeps the library's warnings, to say why an operation failed."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def reasons(self) -> list[str]:
        found = []
        for record in self.records:
            args = record.args if isinstance(record.args, tuple) else ()
            error = next((a for a in reversed(args) if isinstance(a, BaseException)), None)
            found.append(str(error) if error is not None else record.getMessage())
        return list(dict.fromkeys(found))


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("config", metavar="CONFIG", help="a .ini/.cfg file or module:attribute")
    common.add_argument(
        "--section", help="the .ini section (default: the first with cache. settings)"
    )
    common.add_argument(
        "--timeout",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="socket timeout for Redis (unless its URL sets one) and memcached; 0: none "
        "(default: %(default)s)",
    )
    common.add_argument("-v", "--verbose", action="store_true", help="log what the library does")
    parser = argparse.ArgumentParser(
        prog="python -m caching_query",
        description="Operate the caches that a caching_query configuration defines.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Callable[..., int], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            parents=[common],
            help=help,
            description=help,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(run=run)
        return sub

    check = command("check", _check, "write, read back and remove a value in each region")
    check.add_argument("--region", action="append", metavar="R", help="only R (repeatable)")
    check.add_argument("--json", action="store_true", help="machine-readable output")

    clear_ = command("clear", _clear, "make every entry of one namespace a miss, in every process")
    clear_.add_argument("region", metavar="REGION")
    clear_.add_argument("namespace", metavar="NAMESPACE")

    invalidate = command(
        "invalidate",
        _invalidate,
        "announce writes to tables: entries read from them become misses (automatic invalidation)",
    )
    invalidate.add_argument("tables", nargs="*", metavar="TABLE")
    invalidate.add_argument("--all", action="store_true", help="invalidate everything cached")

    stats = command("stats", _stats, "the server-side statistics of each region's backend")
    stats.add_argument("--region", action="append", metavar="R", help="only R (repeatable)")
    stats.add_argument("--json", action="store_true", help="machine-readable output")
    stats.add_argument(
        "--all", action="store_true", dest="everything", help="every figure the server reports"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "invalidate" and bool(args.tables) == args.all:
        parser.error("invalidate takes table names, or --all and no table name")
    collected = _Collected()
    handlers: list[logging.Handler] = [collected]
    if args.verbose:
        handlers.append(logging.StreamHandler(sys.stderr))
        handlers[-1].setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    saved = log.propagate, log.level
    log.propagate = False  # the command reports failures itself
    if args.verbose:
        log.setLevel(logging.DEBUG)
    for handler in handlers:
        log.addHandler(handler)
    try:
        manager = load(args.config, args.section)
        if args.timeout > 0:
            probes.set_timeouts(manager, args.timeout)
        return int(args.run(args, manager, collected))
    except ConfigError as error:
        print(f"caching_query: {error}", file=sys.stderr)
        return BAD_USAGE
    except BrokenPipeError:  # output piped into head(1), say: not an error of the command
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK
    finally:
        for handler in handlers:
            log.removeHandler(handler)
        log.propagate = saved[0]
        log.setLevel(saved[1])


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows if len(row) > i) for i in range(len(rows[0]))]
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + row[-1:]
        print("  ".join(cells).rstrip())


def _check(args: argparse.Namespace, manager: CacheManager, collected: _Collected) -> int:
    answers = [probes.probe(manager, region) for region in select_regions(manager, args.region)]
    ok = all(probe.ok for probe in answers)
    if args.json:
        print(json.dumps({"ok": ok, "regions": [asdict(p) for p in answers]}, indent=2))
        return OK if ok else FAILED
    rows = []
    for probe in answers:
        if probe.ok:
            timing = f"{probe.ms:.1f} ms" if probe.ms is not None else ""
            note = f"({probe.note})" if probe.note else ""
            status = "  ".join(filter(None, ["ok", timing, note]))
        else:
            status = f"FAILED: {probe.error}"
        rows.append([probe.region, probe.type, status])
    _table(rows)
    return OK if ok else FAILED


def _describe(manager: CacheManager, region: str) -> str:
    config = manager.regions[region]
    return " ".join(filter(None, [probes.region_type(manager, region), probes.where(config)]))


def _clear(args: argparse.Namespace, manager: CacheManager, collected: _Collected) -> int:
    (region,) = select_regions(manager, [args.region])
    kind = probes.region_type(manager, region)
    if kind in probes.PER_PROCESS:
        raise ConfigError(
            f"region {region!r} is a {kind} region: {probes.PER_PROCESS[kind]}, "
            "out of reach of the command line"
        )
    try:
        FromCache(region, args.namespace)  # the names' own checks
    except (CachingQueryError, TypeError, ValueError) as error:
        raise ConfigError(f"bad namespace {args.namespace!r}: {error}") from error
    try:
        clear(region, args.namespace, cache_manager=manager)
    except Exception as error:
        reasons = "; ".join(collected.reasons()) or f"{type(error).__name__}: {error}"
        print(
            f"caching_query: FAILED to clear namespace {args.namespace!r} of region "
            f"{region!r} ({_describe(manager, region)}): {reasons}",
            file=sys.stderr,
        )
        return FAILED
    print(
        f"cleared namespace {args.namespace!r} of region {region!r} "
        f"({_describe(manager, region)}): its entries are misses from now on, in every process"
    )
    return OK


def _invalidate(args: argparse.Namespace, manager: CacheManager, collected: _Collected) -> int:
    local = [r for r in manager.regions if probes.region_type(manager, r) in probes.PER_PROCESS]
    shared = [r for r in manager.regions if r not in local]
    for region in local:
        kind = probes.region_type(manager, region)
        print(
            f"note: region {region!r} ({kind}) not invalidated: {probes.PER_PROCESS[kind]}",
            file=sys.stderr,
        )
    if not shared:
        raise ConfigError(f"{args.config} configures no region shared between processes")
    for region in shared:  # publish would skip, not report, a region it cannot open
        try:
            probes.region_cache(manager, region)
            regions.get_cache(region, versions.VERSIONS_NAMESPACE, manager)
        except Exception as error:
            raise ConfigError(f"cannot open region {region!r}: {error}") from error
    publish.add_target(manager, local)
    what = ", ".join(args.tables) if args.tables else "every table"
    failure: CachingQueryError | None = None
    try:
        invalidate_tables(*args.tables)
    except CachingQueryError as error:
        failure = error  # reported below, from what publish still owes
    except (TypeError, ValueError) as error:
        raise ConfigError(str(error)) from error
    finally:
        owed = publish.owed()
        publish.forget()  # the command reports what failed: no retry timer outlives it
    groups = _by_location(manager, shared)
    if owed or failure is not None:
        reasons = "; ".join(collected.reasons()) or (str(failure) if not owed else "")
        print(
            f"caching_query: FAILED to announce writes to {what}: not told: "
            + (", ".join(_owed_backend(groups, backend) for backend in owed) or "a backend")
            + (f" ({reasons})" if reasons else "")
            + "; nothing is retried: run the command again once the backend answers",
            file=sys.stderr,
        )
        return FAILED
    for names in groups.values():
        print(
            f"invalidated {what} on {_describe(manager, names[0])} "
            f"(region{'s' * (len(names) > 1)} {', '.join(names)})"
        )
    return OK


def _by_location(manager: CacheManager, regions: list[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for region in regions:
        groups.setdefault(probes.location(manager.regions[region]), []).append(region)
    return groups


def _owed_backend(groups: dict[str, list[str]], backend: tuple[str, str]) -> str:
    regions = groups.get(backend[1])
    if regions:
        return f"regions {', '.join(regions)}" if len(regions) > 1 else f"region {regions[0]}"
    return " ".join(part for part in backend if part)


def _stats(args: argparse.Namespace, manager: CacheManager, collected: _Collected) -> int:
    found = probes.server_stats(
        manager, select_regions(manager, args.region), everything=args.everything
    )
    ok = all(stats.ok for stats in found)
    if args.json:
        print(json.dumps({"ok": ok, "backends": [asdict(s) for s in found]}, indent=2))
        return OK if ok else FAILED
    for stats in found:
        place = f" {stats.where}" if stats.where else ""
        print(f"{', '.join(stats.regions)}: {stats.type}{place}")
        if stats.error:
            print(f"  FAILED: {stats.error}")
        if stats.note:
            print(f"  {stats.note}")
        if stats.files is not None:
            print(f"    files  {stats.files['count']}")
            print(f"    bytes  {stats.files['bytes']}")
        for server, figures in stats.servers.items():
            if len(stats.servers) > 1 or server != stats.where:
                print(f"  {server}")
            width = max((len(name) for name in figures), default=0)
            for name, value in figures.items():
                print(f"    {name.ljust(width)}  {_shown(value)}")
    return OK if ok else FAILED


def _shown(value: Any) -> str:
    return "-" if value is None else str(value)
