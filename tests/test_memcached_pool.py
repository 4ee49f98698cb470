"""A pool of three real memcached servers: keys spread, a dead server costs only its share.

``url = "a;b;c"``: the library spreads keys over the servers with a
consistent hash (Beaker's bmemcached client would copy every key to every
server). When one dies, only the keys it held miss; the application keeps
answering, one warning per outage; and nothing is served stale because
its namespace generation or table versions lived on the dead server: a
missing generation or version counts as a change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import bmemcached
import pytest
from beaker.cache import CacheManager
from sqlalchemy import select, update
from sqlalchemy.orm import sessionmaker

import caching_query
from caching_query import FromCache, health, regions
from caching_query.internals import _beaker_clients, _beaker_internals
from caching_query.invalidation import publish, versions
from examples.model import Person
from tests.conftest import SQLCounter
from tests.servers import Server

pytestmark = pytest.mark.server
NAMESPACES = 30


@pytest.fixture
def pool(memcached_pool: list[Server]) -> Iterator[list[Server]]:
    health.reset()
    yield memcached_pool
    publish.forget()
    health.reset()


def _manager(pool: list[Server]) -> CacheManager:
    url = ";".join(server.url for server in pool)
    return CacheManager(cache_regions={"default": {"type": "ext:memcached", "url": url}})


def _person(session: Any, n: int) -> str:
    query = select(Person).where(Person.id == n).options(FromCache("default", f"pool{n}"))
    return session.scalars(query).one().name


def _items(server: Server) -> int:
    stats = bmemcached.Client([server.url]).stats()[server.url]
    return int(stats["curr_items"])


def _server_of(manager: CacheManager, namespace: str, key: bytes) -> str | None:
    cache = regions.get_cache("default", namespace, manager)
    return _beaker_internals.pool_server_of(cache.namespace, key)


def test_entries_spread_and_a_dead_server_costs_only_its_share(pool, engine, sql, caplog):
    manager = _manager(pool)
    Session = sessionmaker(bind=engine)  # noqa: N806
    caching_query.install(Session, manager)
    with Session() as s, sql.expect(NAMESPACES):
        assert [_person(s, n) for n in range(1, NAMESPACES + 1)] == [
            f"person {n:02d}" for n in range(1, NAMESPACES + 1)
        ]
    assert all(_items(server) > 0 for server in pool), "every server holds a share"
    assert sum(_items(server) for server in pool) == 2 * NAMESPACES  # entry + generation each
    with Session() as s, sql.expect(0):
        assert _person(s, 7) == "person 07"

    pool[0].kill()
    with caplog.at_level(logging.INFO, "caching_query"):
        for _ in range(2):
            sql.reset()
            with Session() as s:
                names = [_person(s, n) for n in range(1, NAMESPACES + 1)]
            assert names == [f"person {n:02d}" for n in range(1, NAMESPACES + 1)]
            assert 0 < sql.count < NAMESPACES, "only the dead server's share misses"
        pool[0].start()  # back, and empty
        # the client reconnects to a lost server after its retry delay (5 s)
        deadline = time.monotonic() + 30
        while True:
            with Session() as s:
                assert [_person(s, n) for n in range(1, NAMESPACES + 1)] == names
            sql.reset()
            with Session() as s:
                assert [_person(s, n) for n in range(1, NAMESPACES + 1)] == names
            if sql.count == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert sql.count == 0, "all hits again once it is back"
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "of the pool" in m and "unavailable" in m]) == 1
    assert not [m for m in messages if "cache backend" in m and "unavailable" in m]
    assert [m for m in messages if "of the pool" in m and "is back" in m]


def test_a_generation_on_the_dead_server_never_revives_old_entries(pool, writable_engine, caplog):
    manager = _manager(pool)
    Session = sessionmaker(bind=writable_engine)  # noqa: N806
    caching_query.install(Session, manager)
    sql = SQLCounter(writable_engine)
    try:
        with Session() as s, sql.expect(1):
            assert _person(s, 3) == "person 03"
        with writable_engine.begin() as conn:  # a write this application did not see
            conn.execute(update(Person).where(Person.id == 3).values(name="renamed"))
        caching_query.clear("default", "pool3", cache_manager=manager)
        holder = _server_of(manager, "pool3", b"~generation")
        server = next(each for each in pool if each.url == holder)
        server.kill()
        server.start()  # the cleared generation is gone with it
        with Session() as s, sql.expect(1):
            assert _person(s, 3) == "renamed"
        with Session() as s, sql.expect(0):
            assert _person(s, 3) == "renamed"
    finally:
        sql.close()


def test_table_versions_on_the_dead_server_count_as_changed(pool, writable_engine):
    manager = _manager(pool)
    Session = sessionmaker(bind=writable_engine)  # noqa: N806
    caching_query.auto_invalidate(Session, manager)
    sql = SQLCounter(writable_engine)
    try:
        with Session() as s, sql.expect(1):
            assert _person(s, 4) == "person 04"
        with Session() as s:
            s.execute(update(Person).where(Person.id == 4).values(name="changed"))
            s.commit()  # publishes person's new version
        holder = _server_of(manager, versions.VERSIONS_NAMESPACE, versions.version_key("person"))
        server = next(each for each in pool if each.url == holder)
        server.kill()
        server.start()
        with Session() as s, sql.expect(1):
            assert _person(s, 4) == "changed"
    finally:
        sql.close()


def test_one_server_keeps_beakers_client(memcached_server):
    manager = CacheManager(
        cache_regions={"default": {"type": "ext:memcached", "url": memcached_server.url}}
    )
    cache = regions.get_cache("default", "x", manager)
    assert _beaker_clients.server_of(cache.namespace.mc, "k") is None
