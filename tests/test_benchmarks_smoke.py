"""``python -m benchmarks --quick`` runs to the end and writes its JSON.

A smoke test only: it checks that the benchmark still works against the
current code, never how fast anything is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 180  # seconds; a quick run takes a few, this only stops a hang


def test_quick_benchmark_runs_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--backends", "memory", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    results = json.loads(out.read_text(encoding="utf-8"))
    assert set(results) == {
        "meta",
        "query_cache",
        "hit_floor",
        "least_hit",
        "derive_key",
        "caching_query_overhead",
        "concurrency",
        "entry_size",
        "auto_invalidation",
        "operations",
        "direct_vs_hook",
        "legacy_floor",
        "raw_gets",
        "clients",
        "targets",
    }
    assert {"python", "sqlalchemy", "beaker", "cpu_count", "date"} <= set(results["meta"])
    assert {r["backend"] for r in results["query_cache"]} == {"memory"}
    assert [f["api"] for f in results["hit_floor"]] == ["legacy", "2.0"]
    invalidation = results["auto_invalidation"]
    assert [(h["backend"], h["rows"]) for h in invalidation["hits"]] == [
        ("memory", 1),
        ("memory", 100),
    ]
    assert set(invalidation["publish_us"]) == {"memory:1", "memory:5", "memory:20"}
    assert invalidation["commit"]["ratio"] > 0
    operating = results["operations"]
    assert [h["rows"] for h in operating["statistics"]] == [1, 100]
    assert operating["signing"] == []  # memory only: nothing is signed
    assert [e["rows"] for e in results["direct_vs_hook"]] == [1, 100, 1000]
    assert results["legacy_floor"]["floor"]["median_us"] > 0
    least = results["least_hit"]
    assert [(h["api"], h["rows"]) for h in least["hits"]] == [
        (api, rows) for api in ("legacy", "2.0") for rows in (1, 100, 1000)
    ]
    assert all(h["ratio_hit_least"] > 0 for h in least["hits"])
    assert [(m["api"], m["rows"]) for m in least["misses"]] == [
        ("2.0", rows) for rows in (1, 100, 1000)
    ]
    assert all(m["ratio_miss_least"] > 0 for m in least["misses"])
    assert least["file_reads"] == []  # memory only
    assert results["raw_gets"] == results["clients"] == []  # no server backend
    targets = {t["what"]: t for t in results["targets"]}
    assert "SQLite, legacy, 1 row, hit/uncached" in targets
    assert all(isinstance(t["met"], bool) for t in targets.values())
    assert targets["SQLite, legacy, 100 rows"]["bound_value"] > 0  # the least hit's bound
    assert targets["miss/uncached, 2.0, 1 rows"]["bound_value"] > 0  # the least miss's
    assert "10b. The least hit" in done.stdout
    assert "11. Targets" in done.stdout


def test_event_loop_benchmark_runs() -> None:
    command = [sys.executable, "-m", "benchmarks.event_loop", "--runs", "1", "--hits", "20"]
    done = subprocess.run(
        [*command, "--tasks", "2", "--backends", "memory"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    rows = [line.split() for line in done.stdout.splitlines()[1:]]
    assert [row[:2] for row in rows] == [["memory", "1"], ["memory", "100"]], done.stdout
    assert all(float(row[3]) > 0 for row in rows)  # the hit's milliseconds
