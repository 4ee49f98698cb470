"""Every example runs to completion; each asserts its own SQL counts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = [
    "helloworld",
    "local_session_caching",
    "relationship_caching",
    "advanced",
    "auto_invalidation",
]


def run_example(name: str, tmp_path: Path, **env: str) -> str:
    environment = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'examples.db'}",
        "CACHE_DIR": str(tmp_path / "cache"),
        **env,
    }
    done = subprocess.run(
        [sys.executable, "-m", f"examples.{name}"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("backend", ["memory", "file"])
@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs(name, backend, tmp_path):
    output = run_example(name, tmp_path, CACHE_BACKEND=backend)
    assert "step 2:" in output


def test_helloworld_twice_with_a_persistent_cache(tmp_path):
    """The file cache outlives the process; the example still starts clean."""
    run_example("helloworld", tmp_path, CACHE_BACKEND="file")
    output = run_example("helloworld", tmp_path, CACHE_BACKEND="file")
    assert "step 1: load person 02..12 -> 1 SQL statement" in output


def test_relationship_caching_second_run_is_one_statement(tmp_path):
    output = run_example("relationship_caching", tmp_path)
    assert "step 2: Session.remove(), load and print everyone again -> 1 SQL statement" in output


@pytest.mark.server
@pytest.mark.parametrize("name", ["helloworld", "relationship_caching", "auto_invalidation"])
def test_example_runs_on_a_redis_cluster(name, tmp_path, redis_cluster):
    redis_cluster.flush()
    output = run_example(name, tmp_path, CACHE_BACKEND="rediscluster", CACHE_URL=redis_cluster.urls)
    assert "step 2:" in output


@pytest.mark.server
@pytest.mark.parametrize("name", ["helloworld", "relationship_caching", "auto_invalidation"])
def test_example_runs_on_a_memcached_pool(name, tmp_path, memcached_pool):
    url = ";".join(server.url for server in memcached_pool)
    output = run_example(name, tmp_path, CACHE_BACKEND="memcached-pool", CACHE_URL=url)
    assert "step 2:" in output
