"""The server fixtures start real servers that answer, and restart in place."""

from __future__ import annotations

import os

import bmemcached
import pytest
import redis
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.server


def test_memcached_set_get(memcached_server):
    client = bmemcached.Client([memcached_server.url])
    try:
        assert client.set("cq-key", "value")
        assert client.get("cq-key") == "value"
    finally:
        client.disconnect_all()


def test_redis_set_get(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.set("cq-key", b"value")
        assert client.get("cq-key") == b"value"
    finally:
        client.close()


def test_postgres_select_1(postgres_server):
    engine = create_engine(postgres_server.url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
            assert conn.execute(text("SELECT current_database()")).scalar_one() == "cq_test"
    finally:
        engine.dispose()


def test_memcached_kill_and_restart_same_port(memcached_server):
    port, url = memcached_server.port, memcached_server.url
    client = bmemcached.Client([url])
    try:
        assert client.set("before", "1")
        memcached_server.kill()
        assert client.get("before") is None  # nobody answers now
        memcached_server.start()
        assert (memcached_server.port, memcached_server.url) == (port, url)
        assert client.get("before") is None  # a fresh, empty server
        assert client.set("after", "2")
        assert client.get("after") == "2"
    finally:
        client.disconnect_all()


def test_redis_kill_and_restart_same_port(redis_server):
    port, url = redis_server.port, redis_server.url
    client = redis.Redis.from_url(url)
    try:
        client.set("before", b"1")
        redis_server.kill()
        with pytest.raises(redis.ConnectionError):
            client.get("before")
        redis_server.start()
        assert (redis_server.port, redis_server.url) == (port, url)
        assert client.get("before") is None  # no persistence: the restart is empty
        client.set("after", b"2")
        assert client.get("after") == b"2"
    finally:
        client.close()


def test_postgres_stop_kill_and_restart(postgres_server):
    for halt in (postgres_server.stop, postgres_server.kill):  # clean shutdown, then a crash
        halt()
        postgres_server.start()
        engine = create_engine(postgres_server.url)
        try:
            with engine.connect() as conn:
                assert conn.execute(text("SELECT 1")).scalar_one() == 1
        finally:
            engine.dispose()


def test_runuser_is_found_without_sbin_on_path(monkeypatch):
    from tests.servers import runuser

    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    found = runuser()
    assert os.path.basename(found) == "runuser" and os.access(found, os.X_OK)
