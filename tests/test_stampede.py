"""A stampede lock that holds across machines: a miss runs its query once.

The lock lives in the cache server (memcached ``add``, Redis ``SET NX PX``),
so processes with no disk in common still wait for one another; a holder
that died is taken over after the lock's TTL, and nobody waits longer than
``lock_wait``.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from beaker.cache import CacheManager
from sqlalchemy.orm import sessionmaker

import caching_query
from caching_query import CacheOptionError, FromCache, health, locks, regions
from caching_query.internals import _beaker_internals
from caching_query.keys import backend_key
from examples.model import Person

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = 4
SHARED = ["memcached", "redis", "redis-cluster"]


@pytest.fixture(params=SHARED)
def shared_region(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "memcached":
        from tests.conftest import _memcached as make
    elif request.param == "redis":
        from tests.conftest import _redis as make
    else:
        from tests.conftest import _redis_cluster as make
    config = make(request, tmp_path)
    config.pop("lock_dir", None)  # each process gets a lock_dir of its own
    health.reset()
    return config


def _names(session: Any) -> list[str]:
    query = session.query(Person).filter(Person.id.between(20, 24)).order_by(Person.id)
    return [p.name for p in query.options(FromCache("default", "stampede")).all()]


def test_processes_without_a_shared_disk_run_a_missed_query_once(
    shared_region, writable_engine, tmp_path
):
    database = writable_engine.url.database
    writable_engine.dispose()
    start_at = time.time() + 3.0  # after every interpreter has started
    workers = []
    for n in range(PROCESSES):
        region = {**shared_region, "lock_dir": str(tmp_path / f"locks-{n}")}
        settings = {"region": region, "database": database, "start_at": start_at, "slow": 0.5}
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "tests.stampede_worker", json.dumps(settings)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    reports = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    expected = [f"person {n}" for n in range(20, 25)]
    assert all(report["names"] == expected for report in reports)
    assert sum(report["selects"] for report in reports) == 1, reports


def _manager(config: dict[str, Any], **settings: Any) -> CacheManager:
    return CacheManager(cache_regions={"default": {**config, **settings}})


def _held_by_someone_else(manager: CacheManager, session: Any, ttl: float) -> None:
    """A lock on the query's key taken by a process that then vanished."""
    query = session.query(Person).filter(Person.id.between(20, 24)).order_by(Person.id)
    _, key = query.options(FromCache("default", "stampede")).cache_and_key()
    cache = regions.get_cache("default", "stampede", manager)
    attempt, _ = _beaker_internals.server_lock(cache.namespace, backend_key(key), ttl)
    assert attempt()


def test_a_dead_holders_lock_is_taken_over_after_its_ttl(shared_region, engine, sql):
    manager = _manager(shared_region, lock_ttl=1, lock_wait=30)
    Session = sessionmaker(bind=engine, query_cls=caching_query.query_callable(manager))  # noqa: N806
    with Session() as session:
        _held_by_someone_else(manager, session, ttl=1)
    with Session() as session, sql.expect(1):
        assert _names(session) == [f"person {n}" for n in range(20, 25)]
    with Session() as session, sql.expect(0):
        assert _names(session) == [f"person {n}" for n in range(20, 25)], "and it stored it"


def test_nobody_waits_past_lock_wait(shared_region, engine, sql, caplog):
    manager = _manager(shared_region, lock_ttl=60, lock_wait=0.3)
    Session = sessionmaker(bind=engine, query_cls=caching_query.query_callable(manager))  # noqa: N806
    locks._warned_waits.clear()
    with Session() as session:
        _held_by_someone_else(manager, session, ttl=60)
    with caplog.at_level(logging.WARNING, "caching_query"):
        with Session() as session, sql.expect(1):
            assert _names(session) == [f"person {n}" for n in range(20, 25)]
    assert any("running the query here instead" in r.getMessage() for r in caplog.records)
    with Session() as session, sql.expect(0):
        assert _names(session) == [f"person {n}" for n in range(20, 25)], "stored all the same"


def test_a_waiter_returns_as_soon_as_the_holder_stores(shared_region, engine, sql):
    """While the lock is held, waiters poll the entry itself."""
    manager = _manager(shared_region, lock_ttl=60, lock_wait=30)
    Session = sessionmaker(bind=engine, query_cls=caching_query.query_callable(manager))  # noqa: N806
    with Session() as session:
        _held_by_someone_else(manager, session, ttl=60)

    def holder_stores() -> None:
        with Session() as session:
            query = session.query(Person).filter(Person.id.between(20, 24)).order_by(Person.id)
            people = query.all()  # no cache option: the holder's own query
            query.options(FromCache("default", "stampede")).set_value(people)

    timer = threading.Timer(0.3, holder_stores)
    timer.start()
    try:
        with Session() as session:
            before = sql.count
            assert _names(session) == [f"person {n}" for n in range(20, 25)]
    finally:
        timer.join()
    assert sql.count - before == 1, "only the holder's query ran"


@pytest.mark.parametrize("name, value", [("lock_ttl", "soon"), ("lock_wait", 0), ("lock_ttl", -1)])
def test_bad_lock_settings_name_the_setting(name, value, tmp_path):
    manager = _manager({"type": "file", "data_dir": str(tmp_path)}, **{name: value})
    with pytest.raises(CacheOptionError, match=name):
        FromCache("default", "x", cache_manager=manager).cache()


def test_other_backends_keep_beakers_lock(tmp_path):
    manager = _manager({"type": "file", "data_dir": str(tmp_path), "lock_dir": str(tmp_path)})
    cache = FromCache("default", "x", cache_manager=manager).cache()
    assert not isinstance(locks.creation_lock(cache, "k"), locks.ServerLock)
