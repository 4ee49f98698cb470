"""The results as a table on stdout and as JSON.

The table leads with the ratio hit/uncached: absolute microseconds depend
on the machine, the ratio is what tells whether caching pays off and is
comparable between runs on different hardware.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import caching_query


def meta(args: dict[str, Any]) -> dict[str, Any]:
    """Versions, machine and options, so that a result file explains itself."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "sqlalchemy": version("SQLAlchemy"),
        "beaker": version("Beaker"),
        "caching_query": caching_query.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        # other work on the machine skews medians; this says whether there was any
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        **args,
    }


def _us(value: float) -> str:
    return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)), line]
    out += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def render(results: dict[str, Any]) -> str:
    """The human-readable report."""
    m = results["meta"]
    parts = [
        f"caching_query benchmark  {m['date']}  python {m['python']}  "
        f"SQLAlchemy {m['sqlalchemy']}  Beaker {m['beaker']}  "
        f"cores {m['cpu_count']} (usable {m['cpus_usable']}), "
        f"load average {m['load_average_1min_at_end']}",
        f"database {m['database']}  backends {','.join(m['backends'])}  "
        f"{'quick' if m['quick'] else 'full'} run; medians in µs, n = repetitions",
    ]
    if m.get("skipped_backends"):
        parts.append(f"skipped: {m['skipped_backends']}")

    rows = [
        [
            r["api"],
            str(r["rows"]),
            r["backend"],
            _us(r["uncached"]["median_us"]),
            _us(r["hit"]["median_us"]),
            f"{r['ratio_hit_uncached']:.3f}",
            f"{1 / r['ratio_hit_uncached']:.1f}x",
            _us(r["miss"]["median_us"]),
            f"{r['ratio_miss_uncached']:.2f}",
            f"{r['uncached']['count']}/{r['hit']['count']}/{r['miss']['count']}",
            str(r["hit_sql_statements"]),
        ]
        for r in results["query_cache"]
    ]
    parts += [
        "",
        "1. Uncached query vs cache hit (fresh session per call)",
        _table(
            [
                "api",
                "rows",
                "backend",
                "uncached",
                "hit",
                "hit/uncached",
                "unc/hit",
                "miss",
                "miss/uncached",
                "n unc/hit/miss",
                "SQL per hit",
            ],
            rows,
        ),
    ]

    rows = [
        [
            f["api"],
            str(f["rows"]),
            _us(f["uncached_median_us"]),
            _us(f["floor"]["median_us"]),
            f"{f['ratio_floor_uncached']:.3f}",
            str(f["floor"]["count"]),
        ]
        for f in results["hit_floor"]
    ]
    parts += [
        "",
        "1b. Floor of a hit: SQLAlchemy's own work alone (query built, structural key,",
        "    Session.execute through a hook that returns a ready object)",
        _table(["api", "rows", "uncached", "floor", "floor/uncached", "n"], rows),
    ]

    rows = [[d["what"], _us(d["median_us"]), str(d["count"])] for d in results["derive_key"]]
    parts += [
        "",
        "2. caching_query.keys.derive_key(statement, None)",
        _table(["what", "median µs", "n"], rows),
    ]

    rows = [
        [
            o["api"],
            str(o["rows"]),
            o["baseline"],
            _us(o["plain"]["median_us"]),
            _us(o["caching"]["median_us"]),
            f"{o['ratio_caching_plain']:.3f}",
            f"{o['plain']['count']}/{o['caching']['count']}",
        ]
        for o in results["caching_query_overhead"]
    ]
    parts += [
        "",
        "3. No cache option: CachingQuery + hook vs stock SQLAlchemy",
        _table(["api", "rows", "baseline", "plain", "caching", "caching/plain", "n"], rows),
    ]

    rows = [
        [
            str(c["threads"]),
            str(c["rows"]),
            f"{c['hits_per_second']:,.0f}",
            f"{c['ratio_to_1_thread']:.2f}",
            f"{c['rounds']} x {c['round_seconds']} s",
        ]
        for c in results["concurrency"]
    ]
    parts += [
        "",
        "4. Cache hits per second, one memory region, same key",
        _table(["threads", "rows", "hits/s", "vs 1 thread", "rounds"], rows),
    ]

    e = results["entry_size"]
    parts += [
        "",
        "5. Pickled stored entry (pickle.dumps(cache.get(key)))",
        f"{e['rows']} Person rows: {e['bytes']:,} bytes ({e['bytes_per_row']} per row, "
        f"protocol {e['pickle_protocol']}); the same rows as bare (id, name) tuples: "
        f"{e['bare_tuples_bytes']:,} bytes",
    ]
    a = results.get("auto_invalidation")
    if a:
        rows = [
            [
                h["backend"],
                str(h["rows"]),
                _us(h["without"]["median_us"]),
                _us(h["with_versions"]["median_us"]),
                f"{h['ratio']:.3f}",
            ]
            for h in a["hits"]
        ]
        parts += [
            "",
            "7. Automatic invalidation: a select() hit with its tables' versions checked",
            _table(["backend", "rows", "without", "with versions", "with/without"], rows),
        ]
        for backend, r in a.get("server_requests_per_hit", {}).items():
            what = "commands" if "redis" in backend else "keys read"
            parts.append(
                f"{backend}: {what} per hit (counted by the servers): {r['without']} without, "
                f"{r['with_versions']} with versions"
            )
        c = a["commit"]
        parts.append(
            f"Committing a one-row ORM update: {_us(c['without']['median_us'])} µs without, "
            f"{_us(c['with_invalidation']['median_us'])} µs with invalidation on "
            f"({c['ratio']:.2f}x)"
        )
        rows = [
            [name.split(":")[0], name.split(":")[1], _us(stats["median_us"])]
            for name, stats in a["publish_us"].items()
        ]
        parts += [
            "Publishing a commit's table versions, one backend:",
            _table(["backend", "tables", "median µs"], rows),
        ]
    o = results.get("operations")
    if o:
        rows = [
            [
                h["what"],
                str(h["rows"]),
                _us(h["without"]["median_us"]),
                _us(h["with"]["median_us"]),
                f"{h['ratio']:.3f}",
            ]
            for h in o["statistics"] + o["signing"]
        ]
        parts += [
            "",
            "8. Operations: a select() hit with statistics counted, and with signed entries",
            _table(["what", "rows", "without", "with", "with/without"], rows),
        ]
    from . import targets  # its rows are rendered with this module's table

    parts.append(targets.render(results))
    parts += ["", f"total run time {results['meta']['duration_seconds']:.1f} s"]
    return "\n".join(parts)


def write_json(results: dict[str, Any], path: Path) -> None:
    """Write ``results`` to ``path``, creating its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
