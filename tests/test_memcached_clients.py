"""memcached through python-memcached (``memcache_module = "memcache"``), Beaker's other client.

The suite's memcached regions use python-binary-memcached; these tests run
the same behaviours through the text-protocol client, whose ``gets``/``cas``
API differs (the stampede lock is released through it).
"""

from __future__ import annotations

from typing import Any

import pytest
from beaker.cache import CacheManager
from sqlalchemy.orm import sessionmaker

import caching_query
from caching_query import CacheOptionError, FromCache, regions
from caching_query.internals import _beaker_internals
from caching_query.keys import backend_key
from examples.model import Person

pytestmark = pytest.mark.server


@pytest.fixture
def text_region(memcached_server: Any, tmp_path: Any) -> dict[str, Any]:
    import bmemcached

    bmemcached.Client([memcached_server.url]).flush_all()
    return {"type": "ext:memcached", "url": memcached_server.url, "memcache_module": "memcache"}


@pytest.fixture
def factory(engine: Any, text_region: dict[str, Any]) -> Any:
    manager = CacheManager(cache_regions={"text": text_region})
    return sessionmaker(bind=engine, query_cls=caching_query.query_callable(manager)), manager


def _names(session: Any, ids: tuple[int, int] = (10, 14)) -> list[str]:
    query = session.query(Person).filter(Person.id.between(*ids)).order_by(Person.id)
    return [p.name for p in query.options(FromCache("text", "people"))]


def test_miss_then_hit_and_no_lock_left(factory, sql):
    make, manager = factory
    for expected in (1, 0, 0):
        with make() as s, sql.expect(expected):
            assert _names(s) == [f"person {n:02d}" for n in range(10, 15)]
    with make() as s:
        query = s.query(Person).filter(Person.id.between(10, 14)).order_by(Person.id)
        cache, key = query.options(FromCache("text", "people")).cache_and_key()
    lock = _beaker_internals.server_lock(cache.namespace, backend_key(key), 30)
    assert lock is not None
    attempt, release = lock
    assert attempt() and not attempt()  # held: a second attempt fails
    release()
    name = cache.namespace._format_key(b"~lock:" + backend_key(key))
    assert cache.namespace.mc.get(name) is None  # released through cas
    assert attempt()
    release()


def test_invalidate_and_clear(factory, sql):
    make, manager = factory
    with make() as s:
        _names(s)
    with make() as s:
        query = s.query(Person).filter(Person.id.between(10, 14)).order_by(Person.id)
        query.options(FromCache("text", "people")).invalidate()
    with make() as s, sql.expect(1):
        _names(s)
    caching_query.clear("text", "people", cache_manager=manager)
    with make() as s, sql.expect(1):
        _names(s)
    with make() as s, sql.expect(0):
        _names(s)


def test_a_hundred_rows_are_stored_and_read(factory, sql):
    make, _ = factory
    for expected in (1, 0):
        with make() as s, sql.expect(expected):
            assert len(_names(s, (1, 100))) == 100


def test_signing_needs_the_binary_client(text_region):
    manager = CacheManager(cache_regions={"signed": {**text_region, "signing_keys": "k" * 32}})
    with pytest.raises(CacheOptionError, match="python-binary-memcached"):
        regions.get_cache("signed", "ns", manager)


def test_a_release_after_takeover_leaves_the_new_holders_lock(factory):
    make, _ = factory
    with make() as s:
        cache, key = s.query(Person).options(FromCache("text", "x")).cache_and_key()
    first = _beaker_internals.server_lock(cache.namespace, backend_key("k"), 30)
    second = _beaker_internals.server_lock(cache.namespace, backend_key("k"), 30)
    assert first is not None and second is not None
    assert first[0]()
    name = cache.namespace._format_key(b"~lock:k")
    cache.namespace.mc.delete(name)  # the first holder's lock expired ...
    assert second[0]()  # ... and was taken over
    first[1]()  # the first holder's late release
    assert cache.namespace.mc.get(name) is not None  # the new holder keeps it
    second[1]()
    assert cache.namespace.mc.get(name) is None


def test_a_region_naming_no_client_gets_the_binary_one(memcached_server):
    """Beaker's "auto" would take python-memcached, installed here beside bmemcached."""
    import bmemcached
    import memcache

    manager = CacheManager(
        cache_regions={
            "auto": {"type": "ext:memcached", "url": memcached_server.url},
            "text": {
                "type": "ext:memcached",
                "url": memcached_server.url,
                "memcache_module": "memcache",
            },
        }
    )
    assert isinstance(regions.get_cache("auto", "ns", manager).namespace.mc, bmemcached.Client)
    assert isinstance(regions.get_cache("text", "ns", manager).namespace.mc, memcache.Client)
    assert manager.regions["auto"].get("memcache_module") is None  # the configuration is left
