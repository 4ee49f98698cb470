"""Statistics per region and namespace, their Prometheus form, and the per-query log."""

from __future__ import annotations

import logging
import threading
import urllib.request
import uuid
from typing import Any

import pytest
from beaker.cache import CacheManager
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event, literal, select, update
from sqlalchemy.orm import Session, sessionmaker

import caching_query
from caching_query import FromCache, health
from caching_query.operations import prometheus, stats
from examples.model import Person
from tests.servers import free_port


@pytest.fixture(autouse=True)
def _zero() -> None:
    caching_query.reset_statistics()


def _query(session: Session, namespace: str = "stats") -> Any:
    return (
        session.query(Person)
        .filter(Person.id.in_([5, 6]))
        .order_by(Person.id)
        .options(FromCache("default", namespace))
    )


def _counts(namespace: str = "stats") -> caching_query.NamespaceStatistics:
    return caching_query.statistics().get(
        ("default", namespace), caching_query.NamespaceStatistics()
    )


def test_miss_hit_store_and_bytes(Session, sql, region_config):
    with Session() as s, sql.expect(1):
        assert [p.name for p in _query(s)] == ["person 05", "person 06"]
    for _ in range(2):
        with Session() as s, sql.expect(0):
            assert [p.name for p in _query(s)] == ["person 05", "person 06"]
    counts = _counts()
    assert (counts.misses, counts.hits, counts.stores) == (1, 2, 1)
    assert counts.hit_rate == pytest.approx(2 / 3)
    if region_config["type"] == "memory":
        assert counts.bytes_written == counts.bytes_read == 0  # nothing is serialized
    else:
        assert counts.bytes_written > 100
        assert counts.bytes_read == 2 * counts.bytes_written


def test_invalidations_and_clears(Session, sql):
    with Session() as s, sql.expect(1):
        _query(s).all()
        _query(s).invalidate()
    with Session() as s, sql.expect(1):
        _query(s).all()
    caching_query.clear("default", "stats")
    with Session() as s, sql.expect(1):
        _query(s).all()
    counts = _counts()
    assert (counts.invalidations, counts.clears, counts.misses, counts.hits) == (1, 1, 3, 0)


def test_automatic_invalidations(writable_engine, cache_manager):
    Auto = sessionmaker(bind=writable_engine)  # noqa: N806
    caching_query.auto_invalidate(Auto, cache_manager)
    for expected in (["person 05", "person 06"], ["person 05", "person 06"]):
        with Auto() as s:
            assert [
                p.name
                for p in s.scalars(
                    select(Person)
                    .where(Person.id.in_([5, 6]))
                    .options(FromCache("default", "stats"))
                )
            ] == expected
    with Auto() as s:
        s.execute(update(Person).where(Person.id == 5).values(name="renamed"))
        s.commit()
    with Auto() as s:
        rows = s.scalars(
            select(Person).where(Person.id.in_([5, 6])).options(FromCache("default", "stats"))
        )
        assert [p.name for p in rows] == ["renamed", "person 06"]
    counts = _counts()
    assert (counts.misses, counts.hits, counts.auto_invalidations) == (2, 1, 1)


def test_bypass_for_uncommitted_writes(writable_engine, cache_manager):
    S = sessionmaker(bind=writable_engine, query_cls=caching_query.query_callable(cache_manager))  # noqa: N806
    with S() as s:
        s.get(Person, 5).name = "pending"
        s.flush()
        assert [p.name for p in _query(s)] == ["pending", "person 06"]
        s.rollback()
    assert _counts().bypassed == {"uncommitted": 1}
    assert _counts().misses == 0


def test_bypass_for_later_hooks(engine, cache_manager, sql):
    class Hooked(Session):
        pass

    S = sessionmaker(
        bind=engine, class_=Hooked, query_cls=caching_query.query_callable(cache_manager)
    )  # noqa: N806
    caching_query.install(S, cache_manager)

    def later(state: Any) -> None:
        pass

    event.listen(Hooked, "do_orm_execute", later)
    try:
        for _ in range(2):
            with S() as s, sql.expect(1):
                assert len(_query(s).all()) == 2
    finally:
        event.remove(Hooked, "do_orm_execute", later)
    assert _counts().bypassed == {"later_hooks": 2}


def test_bypass_for_an_outage_counts_backend_errors(engine, sql, cache_manager):
    health.reset()
    dead = {"type": "ext:redis", "url": f"redis://127.0.0.1:{free_port()}"}
    manager = CacheManager(cache_regions={"default": dead})
    S = sessionmaker(bind=engine, query_cls=caching_query.query_callable(manager))  # noqa: N806
    try:
        for _ in range(3):
            with S() as s, sql.expect(1):
                assert len(_query(s).all()) == 2
    finally:
        health.reset()
    counts = _counts()
    assert counts.backend_errors == 1, "the first failure; then the backend is skipped"
    assert counts.bypassed == {"outage": 3} and counts.hits == counts.misses == 0


def test_bypass_for_uncacheable_statements(Session, sql):
    caching_query.install(Session)
    with Session() as s, sql.expect(1):
        assert s.execute(select(literal(7)).options(FromCache("default", "stats"))).scalar() == 7
    assert _counts().bypassed == {"uncacheable": 1}


def test_refused_values(Session, sql, region_config, cache_manager):
    with Session() as s:
        cache, key = _query(s).cache_and_key()
    cache.namespace.acquire_write_lock()
    try:
        cache.namespace.set_value(key.encode(), "not an entry")
    finally:
        cache.namespace.release_write_lock()
    with Session() as s, sql.expect(1):
        assert len(_query(s).all()) == 2
    assert _counts().refused == 1


def test_reset_and_snapshot():
    slot = ("region", "namespace")
    stats.count(slot, stats.HITS, 3)
    assert caching_query.statistics(reset=True)[slot].hits == 3
    assert slot not in caching_query.statistics()
    stats.count(slot, stats.HITS)
    assert caching_query.statistics()[slot].hits == 1
    assert stats.lifetime_statistics()[slot].hits >= 4, "lifetime counts ignore resets"


def test_counting_from_many_threads_loses_nothing(Session, sql):
    with Session() as s:
        _query(s).all()
    caching_query.reset_statistics()
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        for _ in range(50):
            with Session() as s:
                assert len(_query(s).all()) == 2

    snapshots = []
    threads = [threading.Thread(target=work) for _ in range(8)]
    with sql.expect(0):
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            snapshots.append(caching_query.statistics())  # while they count
        for t in threads:
            t.join()
    assert _counts().hits == 400, "threads that have ended are still counted"
    assert all(snap.get(("default", "stats"), _counts()).hits <= 400 for snap in snapshots)


def test_counting_can_be_switched_off(Session, sql):
    stats.enabled = False
    try:
        with Session() as s, sql.expect(1):
            _query(s).all()
    finally:
        stats.enabled = True
    assert ("default", "stats") not in caching_query.statistics()


def test_prometheus_metrics_over_http(Session, sql):
    registry = CollectorRegistry()
    collector = prometheus.register(registry)
    namespace = f"prom-{uuid.uuid4().hex[:8]}"  # lifetime counts outlive other runs
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        with Session() as s, sql.expect(1):
            _query(s, namespace).all()
        with Session() as s, sql.expect(0):
            _query(s, namespace).all()
        caching_query.reset_statistics()  # Prometheus counters must not go back
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        server.shutdown()
        thread.join(5)
        registry.unregister(collector)
    samples = {
        (sample.name, sample.labels.get("namespace")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("caching_query_hits_total", namespace)] == 1
    assert samples[("caching_query_misses_total", namespace)] == 1
    assert samples[("caching_query_stores_total", namespace)] == 1


def test_per_query_detail_is_logged_at_debug_only(Session, sql, caplog):
    with caplog.at_level(logging.INFO, "caching_query"), Session() as s, sql.expect(1):
        _query(s).all()
    assert not [r for r in caplog.records if r.name == "caching_query.queries"]
    with caplog.at_level(logging.DEBUG, "caching_query.queries"):
        with Session() as s, sql.expect(0):
            _query(s).all()
    (record,) = [r for r in caplog.records if r.name == "caching_query.queries"]
    message = record.getMessage()
    assert message.startswith("hit region=default namespace=stats key=q~") and message.endswith(
        "rows=2"
    )
