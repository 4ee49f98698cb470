"""A commit while the cache server is unreachable.

Redis is frozen (SIGSTOP: it keeps its data, the stale entry included, and
answers nothing) while another session commits a write. The commit
succeeds; this process, knowing it could not announce the write, reads
nothing from that server until the retry has published it, and never
returns the old rows, neither during the outage nor once the server
answers again with the old entry and the old versions still in it.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
import time
from typing import Any

import pytest
import redis
from beaker.cache import CacheManager
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import caching_query
from caching_query import FromCache, health, regions
from caching_query.invalidation import publish, versions
from examples.blog import User
from tests.conftest import SQLCounter
from tests.servers import find_binary, redis_process

pytestmark = pytest.mark.server


def name_of_2(factory: sessionmaker[Session]) -> str:
    with factory() as session:
        query = select(User.name).where(User.id == 2).options(FromCache("default", "outage"))
        return session.scalars(query).one()


def _published_and_not_served(
    factory: sessionmaker[Session], sql: SQLCounter, past_health_wait: float = 0.0
) -> None:
    """Once the retry has published the write, the old entry (still in the
    server, under the old versions) is a miss, and the new one a hit."""
    deadline = time.monotonic() + 20
    while publish.owed() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not publish.owed(), "the retry never published the write"
    time.sleep(past_health_wait)  # so that the cache is read again
    with sql.expect(1):
        assert name_of_2(factory) == "robert"
    with sql.expect(0):
        assert name_of_2(factory) == "robert"


def test_commit_while_redis_is_frozen(redis_server, blog_engine, monkeypatch, caplog):
    if not redis_server.alive():
        redis_server.start()
    redis.Redis.from_url(redis_server.url).flushdb()
    monkeypatch.setattr(health, "retry_seconds", 0.5)
    health.reset()
    url = f"{redis_server.url}?socket_timeout=0.5&socket_connect_timeout=0.5"
    manager = CacheManager(cache_regions={"default": {"type": "ext:redis", "url": url}})
    Reader = sessionmaker(bind=blog_engine)  # noqa: N806
    caching_query.auto_invalidate(Reader, manager)
    sql = SQLCounter(blog_engine)
    try:
        assert name_of_2(Reader) == "bob"
        with sql.expect(0):
            assert name_of_2(Reader) == "bob"

        pid = redis_server._proc.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            with caplog.at_level(logging.WARNING, logger="caching_query"):
                with Session(blog_engine) as writer:
                    writer.get(User, 2).name = "robert"
                    writer.commit()  # succeeds: the database committed
            assert "unavailable" in caplog.text
            assert publish.owed()
            for _ in range(2):
                with sql.expect(1):  # the cache is not read: its versions are stale
                    assert name_of_2(Reader) == "robert"
        finally:
            os.kill(pid, signal.SIGCONT)

        _published_and_not_served(Reader, sql, past_health_wait=0.6)
    finally:
        sql.close()
        publish.forget()
        health.reset()


def test_a_retry_in_flight_still_owes_the_publication(blog_engine, monkeypatch):
    """Between the retry taking up the missed tables and its write landing,
    the entry is as stale as before: it must still be bypassed.

    A private Redis saves its data (the entry, the old versions), is killed,
    misses a commit's publication, and comes back with what it saved: as a
    promoted replica would. The retry's write is held until a reader has
    been served."""
    server = redis_process(find_binary("redis-server", "redis-server"), "redis-retry")
    server.start()
    monkeypatch.setattr(health, "retry_seconds", 0.3)
    health.reset()
    manager = CacheManager(cache_regions={"default": {"type": "ext:redis", "url": server.url}})
    Reader = sessionmaker(bind=blog_engine)  # noqa: N806
    caching_query.auto_invalidate(Reader, manager)
    cache = regions.get_cache("default", "outage", manager)
    writing, go = threading.Event(), threading.Event()
    real_write = versions.write

    def write_when_told(target: Any, tokens: Any) -> Any:
        writing.set()
        go.wait(10)
        return real_write(target, tokens)

    sql = SQLCounter(blog_engine)
    try:
        assert name_of_2(Reader) == "bob"
        with sql.expect(0):
            assert name_of_2(Reader) == "bob"
        with redis.Redis.from_url(server.url) as client:
            client.save()
        server.stop(signal.SIGKILL)
        with Session(blog_engine) as writer:
            writer.get(User, 2).name = "robert"
            writer.commit()
        assert publish.owed()
        monkeypatch.setattr(versions, "write", write_when_told)
        server.start()  # back with the saved entry and the old versions
        assert writing.wait(10), "the retry never tried to publish"
        try:
            assert health.available(cache)  # only the owed publication keeps it out
            with sql.expect(1):
                assert name_of_2(Reader) == "robert"
            assert publish.owed()
        finally:
            go.set()
        _published_and_not_served(Reader, sql)
    finally:
        go.set()
        sql.close()
        publish.forget()
        health.reset()
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)
