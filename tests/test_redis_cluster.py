"""A real Redis Cluster: one round trip per hit, and a master failing over to its replica.

The whole suite also runs with the ``redis-cluster`` backend (FromCache,
RelationshipCache, get-by-PK, clear, invalidation by hand and automatic);
this module covers what only a cluster has: slots and failover.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from beaker.cache import CacheManager
from sqlalchemy import select, update
from sqlalchemy.orm import sessionmaker

import caching_query
from caching_query import FromCache, handles, health, regions
from caching_query.invalidation import publish
from caching_query.keys import backend_key
from examples.model import Person
from tests.conftest import SQLCounter
from tests.servers import HOST

pytestmark = pytest.mark.server


@pytest.fixture
def cluster_manager(redis_cluster: Any) -> Iterator[CacheManager]:
    redis_cluster.wait_healthy()
    redis_cluster.flush()
    health.reset()
    yield CacheManager(
        cache_regions={"default": {"type": "ext:rediscluster", "urls": redis_cluster.urls}}
    )
    publish.forget()
    health.reset()


def _mgets(cluster: Any) -> int:
    """MGET commands every live node has processed so far."""
    total = 0
    for node in cluster.nodes:
        if node.alive():
            with redis.Redis(host=HOST, port=node.port) as client:
                total += client.info("commandstats").get("cmdstat_mget", {}).get("calls", 0)
    return total


OPTION = FromCache("default", "people")


def _query(session: Any) -> Any:
    return select(Person).where(Person.id.in_([1, 2])).order_by(Person.id).options(OPTION)


def test_a_hit_is_one_mget_on_one_node(redis_cluster, cluster_manager, engine, sql):
    Session = sessionmaker(bind=engine)  # noqa: N806
    caching_query.install(Session, cluster_manager)
    with Session() as s, sql.expect(1):
        assert [p.name for p in s.scalars(_query(s))] == ["person 01", "person 02"]
        cache, key = handles.cache_and_key(s, _query(s), OPTION)
    entry_key = cache.namespace._format_key(backend_key(key))
    generation_key = cache.namespace._format_key(backend_key("~generation"))
    with redis_cluster.client() as client:
        assert client.keyslot(entry_key) == client.keyslot(generation_key)
    before = _mgets(redis_cluster)
    for _ in range(10):
        with Session() as s, sql.expect(0):
            assert [p.name for p in s.scalars(_query(s))] == ["person 01", "person 02"]
    assert _mgets(redis_cluster) - before == 10


def test_with_automatic_invalidation_a_hit_is_one_pipelined_round_trip(
    redis_cluster, cluster_manager, writable_engine
):
    Session = sessionmaker(bind=writable_engine)  # noqa: N806
    caching_query.auto_invalidate(Session, cluster_manager)
    sql = SQLCounter(writable_engine)
    try:
        with Session() as s, sql.expect(1):
            assert len(s.scalars(_query(s)).all()) == 2
        before = _mgets(redis_cluster)
        with Session() as s, sql.expect(0):
            assert len(s.scalars(_query(s)).all()) == 2
        # the entry's slot and the versions' slot: one MGET each, one pipeline
        assert _mgets(redis_cluster) - before in (1, 2)
        with Session() as s:
            s.execute(update(Person).where(Person.id == 1).values(name="renamed"))
            s.commit()
        with Session() as s, sql.expect(1):
            assert [p.name for p in s.scalars(_query(s))] == ["renamed", "person 02"]
    finally:
        sql.close()


def _run_through_failover(
    Session: Any,  # noqa: N803
    redis_cluster: Any,
    expected: list[str],
    seconds: float,
) -> tuple[int, int]:
    """Queries in a loop while the cluster fails over; every one must answer rightly."""
    answered = failed = 0
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        try:
            with Session() as s:
                assert [p.name for p in s.scalars(_query(s))] == expected
            answered += 1
        except AssertionError:
            raise
        except Exception:
            failed += 1
        time.sleep(0.02)
    return answered, failed


def test_a_master_failing_over_costs_no_query_and_serves_nothing_stale(
    redis_cluster, cluster_manager, writable_engine
):
    Session = sessionmaker(bind=writable_engine)  # noqa: N806
    caching_query.auto_invalidate(Session, cluster_manager)
    health.retry_seconds, saved = 0.5, health.retry_seconds
    sql = SQLCounter(writable_engine)
    try:
        with Session() as s, sql.expect(1):
            assert [p.name for p in s.scalars(_query(s))] == ["person 01", "person 02"]
        cache = regions.get_cache("default", "people", cluster_manager)
        master = redis_cluster.node_of(cache.namespace._format_key(b"~generation"))
        master.kill()
        # a write committed while the slot has no master: its publication is
        # owed and retried; the entry it makes stale must never be served
        with Session() as s:
            s.execute(update(Person).where(Person.id == 1).values(name="during failover"))
            s.commit()
        answered, failed = _run_through_failover(
            Session, redis_cluster, ["during failover", "person 02"], 6.0
        )
        assert failed == 0 and answered > 0
        redis_cluster.wait_healthy()
        deadline = time.monotonic() + 20
        while publish.owed() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not publish.owed(), "the missed publication reached the promoted replica"
        with Session() as s:
            assert [p.name for p in s.scalars(_query(s))] == ["during failover", "person 02"]
        sql.reset()
        with Session() as s:
            assert [p.name for p in s.scalars(_query(s))] == ["during failover", "person 02"]
        assert sql.count == 0, "hits again, from the replica that took over"
    finally:
        health.retry_seconds = saved
        sql.close()
        for node in redis_cluster.nodes:
            if not node.alive():
                node.start()  # rejoins as a replica
        redis_cluster.wait_healthy()
