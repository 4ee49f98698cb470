"""``python -m benchmarks.tables RUN.json...``: README tables from published runs.

Each figure is the median over the runs of each run's own median (or
ratio), with the range across the runs beside it, so the tables in
README.rst are reproducible from ``benchmarks/published/``.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .targets import RAW_GET_COLUMNS, _server_bounds, evaluate


def _rst(headers: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return "(no figures)\n"
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    rule = "  ".join("=" * w for w in widths)
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))  # noqa: E731
    return "\n".join([rule, line(headers), rule, *map(line, rows), rule]).rstrip() + "\n"


def _spread(values: list[float], fmt: str) -> tuple[str, str]:
    median = format(statistics.median(values), fmt)
    if len(values) == 1:
        return median, "—"
    return median, f"{format(min(values), fmt)}–{format(max(values), fmt)}"


def _collect(
    runs: list[dict[str, Any]],
    records: Callable[[dict[str, Any]], Iterable[dict[str, Any]]],
    key: Callable[[dict[str, Any]], tuple[Any, ...]],
) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    found: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for run in runs:
        for record in records(run):
            found.setdefault(key(record), []).append(record)
    return found


def hits(runs: list[dict[str, Any]]) -> str:
    groups = _collect(
        runs, lambda r: r["query_cache"], lambda r: (r["api"], r["rows"], r["backend"])
    )
    rows = []
    for (api, n, backend), records in groups.items():
        ratio, spread = _spread([r["ratio_hit_uncached"] for r in records], ".2f")
        miss, _ = _spread([r["ratio_miss_uncached"] for r in records], ".2f")
        rows.append(
            [
                api,
                str(n),
                backend,
                format(statistics.median(r["uncached"]["median_us"] for r in records), ".0f"),
                format(statistics.median(r["hit"]["median_us"] for r in records), ".0f"),
                ratio,
                spread,
                miss,
            ]
        )
    floors = _collect(runs, lambda r: r["hit_floor"], lambda r: (r["api"],))
    for (api,), records in floors.items():
        ratio, spread = _spread([r["ratio_floor_uncached"] for r in records], ".2f")
        rows.append(
            [
                api,
                "1",
                "floor (hook)",
                format(statistics.median(r["uncached_median_us"] for r in records), ".0f"),
                format(statistics.median(r["floor"]["median_us"] for r in records), ".0f"),
                ratio,
                spread,
                "",
            ]
        )
    legacy = [
        (r["legacy_floor"], r)
        for r in runs
        if r.get("legacy_floor") and any(q["backend"] == "memory" for q in r["query_cache"])
    ]
    if legacy:
        ratios = []
        for floor, run in legacy:
            hit = next(
                q["ratio_hit_uncached"]
                for q in run["query_cache"]
                if q["api"] == "legacy" and q["rows"] == 1 and q["backend"] == "memory"
            )
            ratios.append(hit / floor["ratio_hit_floor"])
        ratio, spread = _spread(ratios, ".2f")
        rows.append(
            [
                "legacy",
                "1",
                "floor (direct)",
                "",
                format(statistics.median(f["floor"]["median_us"] for f, _ in legacy), ".0f"),
                ratio,
                spread,
                "",
            ]
        )
    headers = ["API", "rows", "backend", "uncached", "hit", "hit/uncached", "range", "miss/unc."]
    return _rst(headers, rows)


def _bound_stops(records: list[dict[str, Any]], met: bool) -> str:
    """Whether the median of the runs' measured bounds is above the target
    (and not above the figure itself, which would make it noise)."""
    if met:
        return ""
    values = [r["bound_value"] for r in records if r.get("bound_value") is not None]
    if not values:
        return "no bound"
    bound = statistics.median(values)
    if bound > statistics.median(r["measured"] for r in records):
        return "noise: bound above it"
    return "yes" if bound > records[0]["target"] else "no"


# what each kind of bound is, by how its text in a run begins
_BOUND_KINDS = (
    ("floor", "floor (direct)"),
    ("least hit + one Beaker file read", "least hit + file read"),
    ("least hit, x direct/hook", "least hit × direct/hook"),
    ("least hit", "least hit"),
    ("least miss", "least miss"),
    ("GET + decoding", "GET + decode"),
    ("the hit's read", "hit's read + decode"),
    ("SQLAlchemy's structural key", "SQLAlchemy's key"),
)


def _bound_kind(text: str) -> str:
    return next((kind for start, kind in _BOUND_KINDS if text.startswith(start)), text)


def _bound_kinds(records: list[dict[str, Any]]) -> str:
    # each run holds a target against its own strongest bound: name every kind
    kinds = dict.fromkeys(
        _bound_kind(r["bound"]) for r in records if r.get("bound_value") is not None
    )
    return " / ".join(kinds)


def targets(runs: list[dict[str, Any]]) -> str:
    # held again by this code's rules, not the ones of the code that ran
    groups = _collect(runs, evaluate, lambda r: (r["what"],))
    rows = []
    for (what,), records in groups.items():
        fmt = records[0]["format"]
        measured, spread = _spread([r["measured"] for r in records], fmt)
        median = statistics.median(r["measured"] for r in records)
        if median < 0:
            # a difference of two figures that came out negative: below the noise
            rows.append([what, measured, spread, f"≤ {format(records[0]['target'], fmt)}"])
            rows[-1] += ["noise", "", "", ""]
            continue
        met = median <= records[0]["target"]
        values = [r["bound_value"] for r in records if r.get("bound_value") is not None]
        bound = ""
        if values:
            median, bound_spread = _spread(values, fmt)
            bound = median if bound_spread == "—" else f"{median} ({bound_spread})"
        rows.append(
            [
                what,
                measured,
                spread,
                f"≤ {format(records[0]['target'], fmt)}",
                "yes" if met else "no",
                _bound_kinds(records) if values else "",
                bound,
                _bound_stops(records, met),
            ]
        )
    headers = ["target", "measured", "range", "target", "met", "bound", "its value", "stops it"]
    return _rst(headers, rows)


def entrances(runs: list[dict[str, Any]]) -> str:
    groups = _collect(runs, lambda r: r.get("direct_vs_hook", []), lambda r: (r["rows"],))
    rows = []
    for (n,), records in groups.items():
        ratio, spread = _spread([r["ratio_direct_hook"] for r in records], ".3f")
        rows.append(
            [
                str(n),
                format(statistics.median(r["direct"]["median_us"] for r in records), ".0f"),
                format(statistics.median(r["hook"]["median_us"] for r in records), ".0f"),
                ratio,
                spread,
            ]
        )
    return _rst(["rows", "direct", "hook", "direct/hook", "range"], rows)


def _median_of(records: list[dict[str, Any]], field: str) -> str:
    # a field older runs did not record
    values = [r[field] for r in records if field in r]
    return format(statistics.median(values), ".0f") if values else "—"


def raw_gets(runs: list[dict[str, Any]]) -> str:
    groups = _collect(runs, lambda r: r.get("raw_gets", []), lambda r: (r["backend"], r["rows"]))
    rows = []
    for (backend, n), records in groups.items():
        ratio, spread = _spread([r["ratio_added_raw_get"] for r in records], ".2f")
        bound, _ = _spread([max(_server_bounds(r))[0] for r in records], ".2f")
        med = lambda f, rs=records: format(statistics.median(f(r) for r in rs), ".0f")  # noqa: E731
        rows.append(
            [
                backend,
                str(n),
                med(lambda r: r["entry_bytes"]),
                med(lambda r: r["raw_get"]["median_us"]),
                med(lambda r: r["raw_get_in_context_us"]),
                med(lambda r: r["decode"]["median_us"]),
                _median_of(records, "read_in_context_us"),
                med(lambda r: r["added_us"]),
                ratio,
                spread,
                bound,
            ]
        )
    headers = [*RAW_GET_COLUMNS, "range", "bound"]
    return _rst(headers, rows)


def least(runs: list[dict[str, Any]]) -> str:
    """The least hit and miss against the library's, per API and size."""
    rows = []
    for kind, field in (("hits", "hit"), ("misses", "miss")):
        groups = _collect(
            runs,
            lambda r, kind=kind: (r.get("least_hit") or {}).get(kind, []),
            lambda r: (r["api"], r["rows"]),
        )
        for (api, n), records in groups.items():
            ratio, spread = _spread([r[f"ratio_{field}_least"] for r in records], ".3f")
            med = lambda f, rs=records: format(statistics.median(f(r) for r in rs), ".0f")  # noqa: E731
            rows.append(
                [
                    field,
                    api,
                    str(n),
                    med(lambda r: r["least"]["median_us"]),
                    med(lambda r, field=field: r[field]["median_us"]),
                    ratio,
                    spread,
                ]
            )
    return _rst(["what", "API", "rows", "least", "library", "library/least", "range"], rows)


def clients(runs: list[dict[str, Any]]) -> str:
    groups = _collect(runs, lambda r: r.get("clients", []), lambda r: (r["client"], r["rows"]))
    rows = []
    for (client, n), records in groups.items():
        med = lambda f, rs=records: format(statistics.median(f(r) for r in rs), ".0f")  # noqa: E731
        hit, spread = _spread([r["hit"]["median_us"] for r in records], ".0f")
        rows.append([client, str(n), hit, spread, med(lambda r: r["raw_get"]["median_us"])])
    return _rst(["client", "rows", "hit", "range", "raw GET"], rows)


def _with_without(groups: dict[tuple[Any, ...], list[dict[str, Any]]], first: str) -> str:
    """One row per (what, rows) group: the median with/without ratio and its range."""
    rows = [
        [str(what), str(n), *_spread([r["ratio"] for r in records], ".3f")]
        for (what, n), records in groups.items()
    ]
    return _rst([first, "rows", "with/without", "range"], rows)


def auto_invalidation(runs: list[dict[str, Any]]) -> str:
    groups = _collect(
        runs,
        lambda r: (r.get("auto_invalidation") or {}).get("hits", []),
        lambda r: (r["backend"], r["rows"]),
    )
    return _with_without(groups, "backend")


def operations(runs: list[dict[str, Any]]) -> str:
    groups = _collect(
        runs,
        lambda r: (
            (r.get("operations") or {}).get("statistics", [])
            + (r.get("operations") or {}).get("signing", [])
        ),
        lambda r: (r["what"], r["rows"]),
    )
    return _with_without(groups, "what")


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    runs = [json.loads(Path(path).read_text(encoding="utf-8")) for path in argv]
    for title, render in (
        ("hits", hits),
        ("targets", targets),
        ("entrances", entrances),
        ("least hit and miss", least),
        ("raw GETs", raw_gets),
        ("clients", clients),
        ("automatic invalidation", auto_invalidation),
        ("statistics and signing", operations),
    ):
        print(f".. {title}\n")
        print(render(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
