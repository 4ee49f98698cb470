"""Signed entries: with signing keys, what another writer put in the cache is never unpickled."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import beaker.cache
import pytest
from beaker.cache import CacheManager
from sqlalchemy.orm import sessionmaker

import caching_query
from caching_query import CacheOptionError, FromCache
from caching_query.entries import sealing
from caching_query.internals import _beaker_internals
from examples.model import Person

KEY = "a signing key of some length"
OLD_KEY = "the key that signed before rotation"


def _pwned(marker: str) -> None:
    """What a crafted pickle runs when it is unpickled."""
    Path(marker).write_text("pwned")


class Crafted:
    """An object whose unpickling calls ``_pwned``: what an attacker would store."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> Any:
        return (_pwned, (self.marker,))


@pytest.fixture
def serializing(backend: str) -> str:
    if backend == "memory":
        pytest.skip("a memory region stores objects, not pickles: nothing to sign")
    return backend


def _manager(config: dict[str, Any], **own: Any) -> CacheManager:
    return CacheManager(cache_regions={"default": {**config, **own}})


def _session(manager: CacheManager, engine: Any) -> Any:
    return sessionmaker(bind=engine, query_cls=caching_query.query_callable(manager))()


def _query(session: Any) -> Any:
    return (
        session.query(Person)
        .filter(Person.id.in_([3, 4]))
        .order_by(Person.id)
        .options(FromCache("default", "signed"))
    )


def _names(session: Any) -> list[str]:
    return [p.name for p in _query(session).all()]


def _other_writer(namespace: str, config: dict[str, Any]) -> Any:
    """Another writer of the shared server: Beaker's own Cache, no keys, the
    library's key layout (on a Redis Cluster, the namespace as a hash tag)."""
    other = beaker.cache.Cache(namespace, **config)
    _beaker_internals.keep_namespace_on_one_node(other.namespace)
    return other


def _plant(other: Any, key: str, value: bytes) -> None:
    namespace = other.namespace
    namespace.acquire_write_lock()
    try:
        namespace.set_value(key.encode(), value)
    finally:
        namespace.release_write_lock()


@pytest.fixture
def signed(cache_manager: CacheManager, region_config: dict[str, Any]) -> Iterator[CacheManager]:
    sealing._warned_unsigned.clear()  # each test sees its own first warning
    manager = _manager(region_config, signing_keys=[KEY])
    yield manager


def test_signed_entries_hit(serializing, signed, engine, sql):
    with _session(signed, engine) as session, sql.expect(1):
        assert _names(session) == ["person 03", "person 04"]
    with _session(signed, engine) as session, sql.expect(0):
        assert _names(session) == ["person 03", "person 04"]
    with _session(signed, engine) as session:
        cache, key = _query(session).cache_and_key()
    assert cache.sealing.signs
    assert len(cache.get(key)) == 2  # the handed-out Cache reads signed entries


@pytest.mark.parametrize("where", ["beaker record", "sealed, wrong MAC", "sealed, unsigned"])
def test_a_crafted_pickle_under_the_key_is_never_unpickled(
    serializing, signed, region_config, engine, sql, tmp_path, caplog, where
):
    marker = tmp_path / "pwned"
    with _session(signed, engine) as session:
        cache, key = _query(session).cache_and_key()
    # Another writer of the shared server, with Beaker's own API and no keys.
    other = _other_writer(cache.namespace_name, region_config)
    payload = pickle.dumps((0.0, None, Crafted(marker)), protocol=2)
    if where == "beaker record":
        other.put(key, Crafted(marker))  # Beaker pickles its (time, expire, value) record
    elif where == "sealed, wrong MAC":
        _plant(other, key, b"cqs1" + b"\0" * 32 + payload)
    else:
        _plant(other, key, b"cqp1" + payload)
    with caplog.at_level(logging.WARNING, "caching_query"):
        with _session(signed, engine) as session, sql.expect(1):
            assert _names(session) == ["person 03", "person 04"]
        with _session(signed, engine) as session, sql.expect(0):
            assert _names(session) == ["person 03", "person 04"]
    assert not marker.exists(), "the crafted pickle ran"
    assert any("refus" in r.getMessage() or "unreadable" in r.getMessage() for r in caplog.records)


def test_the_crafted_pickle_does_run_without_signing(
    cache_manager, region_config, engine, tmp_path
):
    """The threat is real: without keys, the same value is unpickled (and runs)."""
    if region_config["type"] == "memory":
        pytest.skip("nothing is unpickled in a memory region")
    marker = tmp_path / "pwned"
    plain = _manager(region_config)
    with _session(plain, engine) as session:
        cache, key = _query(session).cache_and_key()
    if region_config["type"] == "ext:memcached":
        # a signed region earlier in this process made the server's shared
        # client refuse classes, for every region on it
        for server in cache.namespace.mc.servers:
            server.unpickler = pickle.Unpickler
    _other_writer(cache.namespace_name, region_config).put(key, Crafted(marker))
    with _session(plain, engine) as session:
        assert _names(session) == ["person 03", "person 04"]
    assert marker.exists()


def test_entries_stored_without_signing_are_refused(
    serializing, region_config, signed, engine, sql, caplog
):
    plain = _manager(region_config)
    with _session(plain, engine) as session, sql.expect(1):
        assert _names(session) == ["person 03", "person 04"]
    sealing._warned_unsigned.clear()
    with caplog.at_level(logging.WARNING, "caching_query"):
        with _session(signed, engine) as session, sql.expect(1):
            assert _names(session) == ["person 03", "person 04"]
    assert [r for r in caplog.records if "not signed" in r.getMessage()]
    with _session(signed, engine) as session, sql.expect(0):
        assert _names(session) == ["person 03", "person 04"], "the miss stored a signed entry"
    with _session(plain, engine) as session, sql.expect(0):
        assert _names(session) == ["person 03", "person 04"], "readers without keys accept it"


def test_key_rotation(serializing, region_config, cache_manager, engine, sql):
    old = _manager(region_config, signing_keys=[OLD_KEY])
    rotating = _manager(region_config, signing_keys=f"{KEY}, {OLD_KEY}")  # as a .ini gives it
    new_only = _manager(region_config, signing_keys=[KEY])
    with _session(old, engine) as session, sql.expect(1):
        assert _names(session) == ["person 03", "person 04"]
    with _session(rotating, engine) as session, sql.expect(0):
        assert _names(session) == ["person 03", "person 04"], "the old key is still accepted"
    with _session(new_only, engine) as session, sql.expect(1):
        assert _names(session) == ["person 03", "person 04"], "refused once the old key is gone"
    with _session(rotating, engine) as session, sql.expect(0):
        assert _names(session) == ["person 03", "person 04"], "signed with the first key"
    with _session(old, engine) as session, sql.expect(1):
        assert _names(session) == ["person 03", "person 04"]


def test_a_wrong_key_is_a_miss_never_a_wrong_answer(
    serializing, region_config, cache_manager, engine, sql
):
    one = _manager(region_config, signing_keys=["one key, at least sixteen"])
    other = _manager(region_config, signing_keys=["another key of sixteen+"])
    for manager in (one, other, one):
        with _session(manager, engine) as session, sql.expect(1):
            assert _names(session) == ["person 03", "person 04"]


@pytest.mark.parametrize(
    "keys, message",
    [("short", "at least 16 bytes"), ([b"x" * 20, 7], "at least 16 bytes")],
)
def test_bad_signing_keys_name_the_setting(keys, message, tmp_path):
    manager = _manager({"type": "file", "data_dir": str(tmp_path)}, signing_keys=keys)
    with pytest.raises(CacheOptionError, match=f"signing_keys.*{message}"):
        FromCache("default", "x", cache_manager=manager).cache()


def test_memory_regions_need_no_signing(engine, sql, cache_manager):
    manager = _manager({"type": "memory"}, signing_keys=[KEY])
    with _session(manager, engine) as session, sql.expect(1):
        assert _names(session) == ["person 03", "person 04"]
    with _session(manager, engine) as session, sql.expect(0):
        assert _names(session) == ["person 03", "person 04"]
    assert not FromCache("default", "signed", cache_manager=manager).cache().sealing.signs


def test_the_region_type_is_not_passed_to_beaker_with_our_settings(tmp_path):
    manager = _manager(
        {"type": "file", "data_dir": str(tmp_path)}, signing_keys=[KEY], max_entry_bytes="5000"
    )
    cache = FromCache("default", "x", cache_manager=manager).cache()
    assert "signing_keys" not in cache.nsargs and "max_entry_bytes" not in cache.nsargs
    assert cache.sealing.max_bytes == 5000


def test_a_signed_entry_copied_under_another_key_is_refused(
    serializing, signed, region_config, engine, sql
):
    """The MAC covers the namespace and key: one query's signed result cannot
    be served as another's."""

    def names(session: Any, ids: list[int]) -> list[str]:
        query = session.query(Person).filter(Person.id.in_(ids)).order_by(Person.id)
        return [p.name for p in query.options(FromCache("default", "signed")).all()]

    with _session(signed, engine) as session, sql.expect(2):
        assert names(session, [3]) == ["person 03"]
        assert names(session, [4]) == ["person 04"]
    with _session(signed, engine) as session:
        query3 = session.query(Person).filter(Person.id.in_([3])).order_by(Person.id)
        cache, key3 = query3.options(FromCache("default", "signed")).cache_and_key()
        query4 = session.query(Person).filter(Person.id.in_([4])).order_by(Person.id)
        _, key4 = query4.options(FromCache("default", "signed")).cache_and_key()
    (sealed,) = _beaker_internals.read_records(cache.namespace, [key3.encode()])
    assert type(sealed) is bytes and sealed.startswith(b"cqs1")
    other = _other_writer(cache.namespace_name, region_config)
    _plant(other, key4, sealed)  # person 03's signed entry, under person 04's key
    with _session(signed, engine) as session, sql.expect(1):
        assert names(session, [4]) == ["person 04"]
    assert caching_query.statistics()[("default", "signed")].refused >= 1


def test_refusals_at_beakers_layer_are_counted_and_warned_once(
    serializing, signed, region_config, engine, sql, tmp_path, caplog
):
    marker = tmp_path / "pwned"
    caching_query.reset_statistics()
    with caplog.at_level(logging.WARNING, "caching_query"):
        for _ in range(2):
            with _session(signed, engine) as session:
                cache, key = _query(session).cache_and_key()
            _other_writer(cache.namespace_name, region_config).put(key, Crafted(marker))
            with _session(signed, engine) as session, sql.expect(1):
                assert _names(session) == ["person 03", "person 04"]
    assert not marker.exists()
    assert caching_query.statistics()[("default", "signed")].refused == 2
    refusals = [r for r in caplog.records if "refusing the entry" in r.getMessage()]
    assert len(refusals) == 1, "once per namespace"


def test_the_handed_out_cache_reads_only_through_the_library(signed, engine, sql, tmp_path):
    with _session(signed, engine) as session, sql.expect(1):
        _names(session)
        cache, key = _query(session).cache_and_key()
    assert key in cache and cache.has_key(key)
    assert "no such key" not in cache
    made = cache.get(key)
    assert cache.get("another", createfunc=lambda: made) is made
    assert len(cache.get("another")) == 2
    with pytest.raises(TypeError, match="holds caching_query entries, not str"):
        cache.put("x", "a str")
    cache.clear()
    assert key not in cache


def test_the_check_command_never_unpickles_what_it_finds(tmp_path):
    """``python -m caching_query check`` opens regions as the application does."""
    from caching_query.operations import probes

    marker = tmp_path / "pwned"
    config = {"type": "file", "data_dir": str(tmp_path / "cache")}
    beaker.cache.Cache(probes.CHECK_NAMESPACE, **config).put("planted", Crafted(marker))
    manager = _manager(config, signing_keys=[KEY])
    probes.probe(manager, "default")
    assert not marker.exists()
    assert probes.probe(manager, "default").ok, "the planted file was removed: probes work again"
