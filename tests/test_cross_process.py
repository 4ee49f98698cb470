"""A cache filled by one process serves another.

Four separate Python processes (tests/cross_process_worker.py) share one
SQLite file and one memcached or Redis server. Each runs with a different
PYTHONHASHSEED, so nothing in a key may depend on ``hash()``:

1. fills the cache: the query, the lazy loads of ``Person.addresses``
   (RelationshipCache) and a ``Session.get()`` all run SQL;
2. runs the same code: no SQL at all, the same rows;
3. invalidates the query's entry;
4. misses on the query (1 SQL) while the lazy loads and the get, whose
   entries were not invalidated, still come from the cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import bmemcached
import pytest
import redis
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from examples.model import Person
from tests.cross_process_worker import GET_ID, IDS

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parent.parent


def flush(kind: str, url: str) -> None:
    if kind == "memcached":
        client = bmemcached.Client([url])
        try:
            client.flush_all()
        finally:
            client.disconnect_all()
    else:
        client = redis.Redis.from_url(url)
        try:
            client.flushdb()
        finally:
            client.close()


@pytest.fixture(params=["memcached", "redis"])
def worker_env(
    request: pytest.FixtureRequest, writable_engine: Engine, tmp_path: Path
) -> dict[str, str]:
    """The environment of the worker processes: one server, one database file."""
    server = request.getfixturevalue(f"{request.param}_server")
    if not server.alive():
        server.start()
    flush(request.param, server.url)
    writable_engine.dispose()  # the workers open the file themselves
    return worker_environment(
        request.param,
        server.url,
        tmp_path / "cache",
        writable_engine.url.render_as_string(hide_password=False),
    )


def worker_environment(backend: str, url: str, cache_dir: Path, database: str) -> dict[str, str]:
    """This process's environment, with the cache and database a worker process uses."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONHASHSEED", "CACHE_BACKEND", "CACHE_URL", "CACHE_DIR", "DATABASE_URL")
    }
    env.update(
        CACHE_BACKEND=backend,
        CACHE_URL=url,
        CACHE_DIR=str(cache_dir),
        DATABASE_URL=database,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    return env


def worker(env: dict[str, str], action: str, seed: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.cross_process_worker", action],
        env={**env, "PYTHONHASHSEED": str(seed)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"worker {action} failed:\n{done.stdout}\n{done.stderr}"
    lines = done.stdout.strip().splitlines()
    assert lines, f"worker {action} printed nothing:\n{done.stderr}"
    report = json.loads(lines[-1])
    report["seed"] = seed
    return report


def expected_rows(engine: Engine) -> tuple[list[list[Any]], list[list[str]], list[Any]]:
    with Session(engine) as session:
        people = session.scalars(
            select(Person).where(Person.id.between(*IDS)).order_by(Person.id)
        ).all()
        rows = [[p.id, p.name] for p in people]
        addresses = [[a.street for a in p.addresses] for p in people]
        person = session.get(Person, GET_ID)
        assert person is not None
        return rows, addresses, [person.id, person.name]


def test_cache_is_shared_between_processes(worker_env, writable_engine):
    rows, addresses, got = expected_rows(writable_engine)
    writable_engine.dispose()
    assert len(rows) == 5 and all(len(a) == 2 for a in addresses)

    first = worker(worker_env, "query", seed=1)
    second = worker(worker_env, "query", seed=2)
    third = worker(worker_env, "invalidate", seed=3)
    fourth = worker(worker_env, "query", seed=4)
    fifth = worker(worker_env, "query", seed=5)

    reports = [first, second, third, fourth, fifth]
    # The seeds took effect: str hashes differ between the processes ...
    assert len({r["hash"] for r in reports}) == len(reports)
    # ... and still every process derived the same key.
    assert len({r["key"] for r in reports}) == 1

    # 1: everything is a miss: 1 query + 5 lazy loads + 1 get
    assert (first["query_sql"], first["lazy_sql"], first["get_sql"]) == (1, 5, 1)
    assert (first["rows"], first["addresses"], first["got"]) == (rows, addresses, got)

    # 2: another process, nothing at all reaches the database
    assert (second["query_sql"], second["lazy_sql"], second["get_sql"]) == (0, 0, 0)
    assert (second["rows"], second["addresses"], second["got"]) == (rows, addresses, got)

    # 3: invalidating is a cache operation, not SQL
    assert third["invalidate_sql"] == 0

    # 4: the query's entry is gone; the relationship and get entries are not
    assert (fourth["query_sql"], fourth["lazy_sql"], fourth["get_sql"]) == (1, 0, 0)
    assert (fourth["rows"], fourth["addresses"], fourth["got"]) == (rows, addresses, got)

    # 5: and the fourth process stored it again for everyone
    assert (fifth["query_sql"], fifth["lazy_sql"], fifth["get_sql"]) == (0, 0, 0)
    assert (fifth["rows"], fifth["addresses"], fifth["got"]) == (rows, addresses, got)
