"""AsyncSession on real servers: asyncpg on the PostgreSQL fixture, a cache server killed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from beaker.cache import CacheManager
from sqlalchemy import Engine, create_engine, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import NullPool

import caching_query
from caching_query import FromCache, health, install
from examples import fixture_data
from examples.model import Person
from tests.conftest import SQLCounter
from tests.servers import find_binary, memcached_process, redis_process
from tests.test_async import (
    EXPECTED,
    async_engine_for,
    by_range,
    names,
    ten_tasks_run_the_query_once,
)

pytestmark = pytest.mark.server

DATABASE = "cq_async"


@pytest.fixture(scope="module")
def pg_engine(postgres_server: Any) -> Iterator[Engine]:
    """The examples' data in a database of its own on the PostgreSQL fixture (psycopg2)."""
    url = make_url(postgres_server.url)
    admin = psycopg2.connect(host=url.host, port=url.port, user=url.username, dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
        if cursor.fetchone() is None:
            cursor.execute(f"CREATE DATABASE {DATABASE}")
    admin.close()
    engine = create_engine(url.set(database=DATABASE), poolclass=NullPool)
    fixture_data.install(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_async(pg_engine: Engine) -> Iterator[AsyncEngine]:
    """The same database through asyncpg."""
    url = pg_engine.url.set(drivername="postgresql+asyncpg")
    engine = create_async_engine(url, poolclass=NullPool)
    yield engine
    asyncio.run(engine.dispose())


@pytest.fixture
def pg_asql(pg_async: AsyncEngine) -> Iterator[SQLCounter]:
    counter = SQLCounter(pg_async.sync_engine)
    yield counter
    counter.close()


def test_asyncpg_hits_and_shares_entries_with_psycopg2(pg_async, pg_engine, cache_manager, pg_asql):
    Async = async_sessionmaker(pg_async)  # noqa: N806
    Sync = sessionmaker(bind=pg_engine)  # noqa: N806
    install(Async, cache_manager)
    install(Sync, cache_manager)
    sql = SQLCounter(pg_engine)
    option = [FromCache("default", "byid")]

    async def main() -> None:
        async with Async() as s:
            with pg_asql.expect(1):
                assert await names(s) == EXPECTED
            with pg_asql.expect(0):
                assert await names(s) == EXPECTED
                assert (await s.scalar(by_range())).name == "person 40"
                assert [p.name async for p in await s.stream_scalars(by_range())] == EXPECTED
        async with Async() as s:
            with pg_asql.expect(1):  # a server-side cursor, read whole on a miss
                stream = await s.stream_scalars(by_range().offset(1))
                assert [p.name async for p in stream] == EXPECTED[1:]
            with pg_asql.expect(0):
                stream = await s.stream_scalars(by_range().offset(1))
                assert [p.name async for p in stream] == EXPECTED[1:]
            with pg_asql.expect(1):
                assert (await s.get(Person, 3, options=option)).name == "person 03"
        async with Async() as s:
            with pg_asql.expect(0):
                assert (await s.get(Person, 3, options=option)).name == "person 03"

    try:
        asyncio.run(main())
        with Sync() as s, sql.expect(0):  # stored through asyncpg, a hit through psycopg2
            assert [p.name for p in s.scalars(by_range())] == EXPECTED
            assert s.get(Person, 3, options=option).name == "person 03"
        with Sync() as s, sql.expect(1):  # and the other way round
            assert s.get(Person, 4, options=option).name == "person 04"
        with pg_asql.expect(0):
            assert asyncio.run(_get(Async, 4)) == "person 04"
    finally:
        sql.close()


async def _get(factory: async_sessionmaker[AsyncSession], number: int) -> str:
    async with factory() as s:
        return (await s.get(Person, number, options=[FromCache("default", "byid")])).name


def test_asyncpg_tasks_missing_one_key_run_the_query_once(
    pg_async, region_config, backend, pg_asql
):
    ten_tasks_run_the_query_once(pg_async, region_config, pg_asql)


def test_asyncpg_commit_invalidates(pg_async, cache_manager, pg_asql):
    Async = async_sessionmaker(pg_async)  # noqa: N806
    caching_query.auto_invalidate(Async, cache_manager)

    async def rename(name: str) -> None:
        async with Async() as s:
            (await s.get(Person, 11)).name = name
            await s.commit()

    async def main() -> None:
        with pg_asql.expect(1):
            assert await _get(Async, 11) == "person 11"
        with pg_asql.expect(0):
            assert await _get(Async, 11) == "person 11"
        await rename("eleven")
        try:
            with pg_asql.expect(1):
                assert await _get(Async, 11) == "eleven"
            with pg_asql.expect(0):
                assert await _get(Async, 11) == "eleven"
        finally:
            await rename("person 11")

    asyncio.run(main())


# -- a cache server killed while tasks run --------------------------------------------------


@pytest.fixture(params=["memcached", "redis"])
def doomed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, dict]]:
    """A private server (this test kills it) and a region on it."""
    if request.param == "memcached":
        server = memcached_process(find_binary("memcached", "memcached"), "memcached-async")
        config = {
            "type": "ext:memcached",
            "url": server.url,
            "memcache_module": "bmemcached",
            "lock_dir": str(tmp_path / "lock"),
        }
    else:
        server = redis_process(find_binary("redis-server", "redis-server"), "redis-async")
        config = {"type": "ext:redis", "url": server.url}
    server.start()
    health.reset()
    try:
        yield server, {**config, "lock_wait": 20}
    finally:
        server.kill()
        health.reset()


TASKS, QUERIES = 10, 6


def test_server_killed_while_tasks_run(doomed, engine):
    """Ten tasks query one key over and over; the server dies between two of
    their queries. Every query answers; each one begun before the kill was a
    hit, each one begun after it ran its SELECT (nothing could be stored)."""
    server, config = doomed
    async_engine = async_engine_for(engine)
    asql = SQLCounter(async_engine.sync_engine)
    factory = async_sessionmaker(async_engine)
    install(factory, CacheManager(cache_regions={"default": config}))
    started_after_kill: list[bool] = []
    killed = False

    async def worker(number: int) -> list[list[str]]:
        nonlocal killed
        results = []
        for query in range(QUERIES):
            if number == 0 and query == QUERIES // 2:
                server.kill()
                killed = True
            async with factory() as s:
                started_after_kill.append(killed)  # the hook reads the cache before any await
                results.append(await names(s))
            await asyncio.sleep(0)
        return results

    async def main() -> list[list[list[str]]]:
        async with factory() as s:  # stored before the tasks start
            await names(s)
        asql.reset()
        return await asyncio.gather(*(worker(n) for n in range(TASKS)))

    try:
        assert asyncio.run(main()) == [[EXPECTED] * QUERIES] * TASKS
        assert len(started_after_kill) == TASKS * QUERIES
        after = sum(started_after_kill)
        assert 0 < after < TASKS * QUERIES
        assert asql.count == after, asql.statements
    finally:
        asql.close()
        asyncio.run(async_engine.dispose())
