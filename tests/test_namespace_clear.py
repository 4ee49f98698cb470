"""clear(): one namespace emptied in O(1), nothing else touched, on every backend."""

from __future__ import annotations

import bmemcached
import pytest
import redis
from beaker.cache import CacheManager

import caching_query
from caching_query import FromCache
from examples.model import Person


def run(Session, namespace, ident):
    with Session() as s:
        return (
            s.query(Person)
            .filter(Person.id == ident)
            .options(FromCache("default", namespace))
            .one()
            .name
        )


def test_clear_empties_one_namespace_only(Session, sql):
    run(Session, "cleared", 1)
    run(Session, "kept", 2)
    caching_query.clear("default", "cleared")
    with sql.expect(1):
        assert run(Session, "cleared", 1) == "person 01"
    with sql.expect(0):
        assert run(Session, "cleared", 1) == "person 01"
        assert run(Session, "kept", 2) == "person 02"


def test_clear_through_another_manager_is_seen(Session, sql, region_config, backend):
    if backend == "memory":
        pytest.skip("a memory region belongs to one process")
    run(Session, "shared", 3)
    other = CacheManager(cache_regions={"elsewhere": dict(region_config)})
    caching_query.clear("elsewhere", "shared", cache_manager=other)
    with sql.expect(1):
        run(Session, "shared", 3)


def test_clear_before_any_entry_and_twice(Session, sql):
    caching_query.clear("default", "fresh")
    caching_query.clear("default", "fresh")
    with sql.expect(1):
        run(Session, "fresh", 4)
    with sql.expect(0):
        run(Session, "fresh", 4)


@pytest.mark.server
def test_memcached_clear_keeps_unrelated_server_data(memcached_server, engine, sql, tmp_path):
    client = bmemcached.Client([memcached_server.url])
    client.set("someone_elses_key", "precious")
    manager = CacheManager(
        cache_regions={
            "mc": {
                "type": "ext:memcached",
                "url": memcached_server.url,
                "memcache_module": "bmemcached",
                "lock_dir": str(tmp_path),
            }
        }
    )
    caching_query.clear("mc", "people", cache_manager=manager)
    assert client.get("someone_elses_key") == "precious"


@pytest.mark.server
def test_redis_clear_keeps_unrelated_data_and_does_not_scan(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    client.set("someone_elses_key", "precious")
    client.set("beaker_cache:people:q~old", "stays until it expires")
    manager = CacheManager(cache_regions={"r": {"type": "ext:redis", "url": redis_server.url}})
    before = client.info("commandstats")
    caching_query.clear("r", "people", cache_manager=manager)
    after = client.info("commandstats")
    assert after.get("cmdstat_keys") == before.get("cmdstat_keys")  # no KEYS scan
    assert client.get("someone_elses_key") == b"precious"
    assert client.get("beaker_cache:people:q~old") is not None


def test_the_handed_out_cache_clears_one_namespace_only(Session, sql, region_config, backend):
    """``cache, key = q.cache_and_key(); cache.clear()``: what a Beaker user tries.

    Beaker's own ``Cache.clear()`` sends ``flush_all`` to memcached and walks
    Redis with ``KEYS``; the ``Cache`` handed out clears like ``clear()``.
    """
    run(Session, "cleared", 1)
    run(Session, "kept", 2)
    foreign = None
    if backend == "memcached":
        foreign = bmemcached.Client([region_config["url"]])
    elif backend == "redis":
        foreign = redis.Redis.from_url(region_config["url"])
    if foreign is not None:
        foreign.set("another_applications_key", "precious")
    with Session() as s:
        query = s.query(Person).filter(Person.id == 1).options(FromCache("default", "cleared"))
        cache, key = query.cache_and_key()
    assert len(cache.get(key)) == 1
    cache.clear()
    with pytest.raises(KeyError):
        cache.get(key)
    with sql.expect(1):
        assert run(Session, "cleared", 1) == "person 01"
    with sql.expect(0):
        assert run(Session, "cleared", 1) == "person 01"
        assert run(Session, "kept", 2) == "person 02"
    if foreign is not None:
        assert foreign.get("another_applications_key") in ("precious", b"precious")
