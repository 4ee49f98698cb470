"""The cache server going away: queries keep working on the database alone.

A real memcached or Redis server (tests/servers.py) is killed in the middle of
a test and started again on the same port. ``health`` must log one warning per
outage, skip the dead backend for ``retry_seconds``, and log an info record
when the backend answers again, after which caching resumes.

Every test leaves its server running (see the ``cache_server`` fixture), so
later tests sharing the session-scoped server still have it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import beaker.cache
import bmemcached
import pytest
import redis
from beaker.cache import CacheManager
from beaker.ext.memcached import MemcachedNamespaceManager
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from caching_query import FromCache, health, query_callable
from examples.model import Person

pytestmark = pytest.mark.server

REGION = "outage"
EXPECTED = [(1, "person 01"), (2, "person 02"), (3, "person 03")]
RUNS_WHILE_DOWN = 4


class CacheServer:
    """One of the session's servers, with the region configuration that uses it."""

    def __init__(self, kind: str, server: Any, lock_dir: Path) -> None:
        self.kind, self.server = kind, server
        if kind == "memcached":
            self.config: dict[str, Any] = {
                "type": "ext:memcached",
                "url": server.url,
                "memcache_module": "bmemcached",
                "lock_dir": str(lock_dir),
            }
        else:
            self.config = {"type": "ext:redis", "url": server.url}

    def flush(self) -> None:
        if self.kind == "memcached":
            client = bmemcached.Client([self.server.url])
            try:
                client.flush_all()
            finally:
                client.disconnect_all()
        else:
            client = redis.Redis.from_url(self.server.url)
            try:
                client.flushdb()
            finally:
                client.close()


def _memcached_protocols(url: str) -> list[Any]:
    """The connections of the bmemcached client Beaker shares for ``url``."""
    client = MemcachedNamespaceManager.clients.get(
        ("bmemcached", url), bmemcached.Client, url.split(";")
    )
    return list(client.servers)


@pytest.fixture(params=["memcached", "redis"])
def cache_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CacheServer]:
    """A running server, flushed; whatever the test did, it is running afterwards."""
    server = request.getfixturevalue(f"{request.param}_server")
    if not server.alive():
        server.start()
    target = CacheServer(request.param, server, tmp_path / "lock")
    target.flush()
    protocols: list[Any] = []
    if request.param == "memcached":
        # bmemcached refuses to reconnect for 5 s after a failed connect (its
        # retry_delay). Without this, "caching resumes after the restart"
        # would depend on how long the test took; with 0 it reconnects at
        # the first call after the restart. This configures the real client
        # Beaker uses; it does not replace it.
        protocols = _memcached_protocols(server.url)
        for protocol in protocols:
            protocol.set_retry_delay(0)
            protocol.reconnects_deferred_until = None
    try:
        yield target
    finally:
        if not server.alive():
            server.start()
        for protocol in protocols:
            protocol.set_retry_delay(5)
            protocol.reconnects_deferred_until = None


@pytest.fixture
def fast_retry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(health, "retry_seconds", 0)
    health.reset()
    yield
    health.reset()


@pytest.fixture
def slow_retry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(health, "retry_seconds", 60)
    health.reset()
    yield
    health.reset()


@pytest.fixture
def OutageSession(  # noqa: N802
    engine: Engine, cache_server: CacheServer
) -> Iterator[sessionmaker[Session]]:
    """Sessions whose ``outage`` region lives on ``cache_server``."""
    saved = dict(beaker.cache.cache_regions)
    manager = CacheManager(cache_regions={REGION: dict(cache_server.config)})
    try:
        yield sessionmaker(bind=engine, query_cls=query_callable(manager))
    finally:
        beaker.cache.cache_regions.clear()
        beaker.cache.cache_regions.update(saved)


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="caching_query")
    return caplog


def people_query(session: Session) -> Any:
    return (
        session.query(Person)
        .filter(Person.id < 4)
        .order_by(Person.id)
        .options(FromCache(REGION, "people"))
    )


def run(session_factory: sessionmaker[Session]) -> list[tuple[int, str]]:
    with session_factory() as session:
        return [(p.id, p.name) for p in people_query(session)]


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "caching_query" and r.levelno == level]


def warnings_(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return records(caplog, logging.WARNING)


def backs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in records(caplog, logging.INFO) if "is back" in r.getMessage()]


def the_cache(session_factory: sessionmaker[Session]) -> Any:
    with session_factory() as session:
        return people_query(session).cache_and_key()[0]


# -- retry_seconds = 0: every query tries the server again ---------------------


def test_queries_keep_working_while_down_and_caching_resumes(
    OutageSession, cache_server, sql, fast_retry, log
):
    server = cache_server.server
    with sql.expect(1):
        assert run(OutageSession) == EXPECTED
    with sql.expect(0):
        assert run(OutageSession) == EXPECTED

    server.kill()
    for _ in range(RUNS_WHILE_DOWN):
        with sql.expect(1):  # the database answers, no exception
            assert run(OutageSession) == EXPECTED
    assert warnings_(log), "the outage was not reported"

    log.clear()
    server.start()
    with sql.expect(1):  # the restarted server is empty: a miss
        assert run(OutageSession) == EXPECTED
    with sql.expect(0):  # ... that was stored: caching resumed
        assert run(OutageSession) == EXPECTED
    with sql.expect(0):
        assert run(OutageSession) == EXPECTED
    assert len(backs(log)) == 1, [r.getMessage() for r in log.records]
    assert server.url in backs(log)[0].getMessage()
    assert warnings_(log) == []
    assert health.available(the_cache(OutageSession))


def test_one_warning_per_outage_not_one_per_query(
    OutageSession, cache_server, sql, fast_retry, log
):
    """The memcached case is the hard one (it failed at 69756d9, fixed in 03f9147).

    bmemcached answers ``get`` on a dead server with None, exactly as for an
    absent key. If a read that found nothing counts as the backend answering,
    the outage "ends" ("... is back") although the server is still dead, and
    the write that follows starts a new outage with a new warning: one
    warning and one false "is back" per retried query.
    """
    server = cache_server.server
    with sql.expect(1):
        assert run(OutageSession) == EXPECTED
    with sql.expect(0):
        assert run(OutageSession) == EXPECTED
    assert warnings_(log) == []

    server.kill()
    for _ in range(RUNS_WHILE_DOWN):
        with sql.expect(1):
            assert run(OutageSession) == EXPECTED
    messages = [r.getMessage() for r in log.records]
    assert len(warnings_(log)) == 1, messages
    warning = warnings_(log)[0].getMessage()
    assert "unavailable" in warning and server.url in warning
    assert backs(log) == [], f"reported back while still down: {messages}"

    server.start()
    with sql.expect(1):
        assert run(OutageSession) == EXPECTED
    with sql.expect(0):
        assert run(OutageSession) == EXPECTED
    assert len(warnings_(log)) == 1, [r.getMessage() for r in log.records]
    assert len(backs(log)) == 1, [r.getMessage() for r in log.records]


def test_a_second_outage_warns_again(OutageSession, cache_server, sql, fast_retry, log):
    server = cache_server.server
    with sql.expect(1):
        assert run(OutageSession) == EXPECTED
    for outage in (1, 2):
        with sql.expect(0):
            assert run(OutageSession) == EXPECTED
        server.kill()
        with sql.expect(1):
            assert run(OutageSession) == EXPECTED
        assert len(warnings_(log)) == outage
        server.start()
        with sql.expect(1):  # a miss on the empty restarted server
            assert run(OutageSession) == EXPECTED
        assert len(backs(log)) == outage


# -- retry_seconds = 60: the server is left alone until the wait is over -------


def test_dead_backend_is_skipped_until_retry(OutageSession, cache_server, sql, slow_retry, log):
    server = cache_server.server
    cache = the_cache(OutageSession)
    with sql.expect(1):
        assert run(OutageSession) == EXPECTED
    with sql.expect(0):
        assert run(OutageSession) == EXPECTED
    assert health.available(cache)

    server.kill()
    with sql.expect(1):
        assert run(OutageSession) == EXPECTED
    assert len(warnings_(log)) == 1
    assert not health.available(cache)
    for _ in range(RUNS_WHILE_DOWN):
        with sql.expect(1):
            assert run(OutageSession) == EXPECTED
    assert len(warnings_(log)) == 1  # no new warning: nothing was tried
    assert backs(log) == []
    assert not health.available(cache)

    # The proof that the server is not even asked: once it is back, the
    # queries still go to the database and nothing reports it back, because
    # nothing reads or writes it before the 60 s are over.
    server.start()
    for _ in range(2):
        with sql.expect(1):
            assert run(OutageSession) == EXPECTED
    assert backs(log) == []
    assert not health.available(cache)

    health.reset()
    assert health.available(cache)
    with sql.expect(1):
        assert run(OutageSession) == EXPECTED
    with sql.expect(0):
        assert run(OutageSession) == EXPECTED
    assert len(warnings_(log)) == 1
