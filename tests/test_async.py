"""AsyncSession (aiosqlite): every entrance, the set-up on async targets, one key shared with sync.

Each test drives the event loop with ``asyncio.run``; the async engine has
no pool, so no connection outlives the loop it was opened on. SQL is
counted on the async engine's ``sync_engine``, where SQLAlchemy sends it.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from beaker.cache import CacheManager
from sqlalchemy import Engine, event, func, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_scoped_session,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

import caching_query
from caching_query import FromCache, RelationshipCache, install, task_locks
from examples.model import Address, City, Person, PostalCode
from tests.conftest import SQLCounter

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")  # a coroutine never awaited


def async_engine_for(engine: Engine) -> AsyncEngine:
    """The same SQLite file through aiosqlite."""
    return create_async_engine(engine.url.set(drivername="sqlite+aiosqlite"), poolclass=NullPool)


def disposed(async_engine: AsyncEngine) -> Iterator[AsyncEngine]:
    """Yield ``async_engine``; dispose of it afterwards (a fixture's body)."""
    yield async_engine
    asyncio.run(async_engine.dispose())


def counting(async_engine: AsyncEngine) -> Iterator[SQLCounter]:
    """Yield a counter of ``async_engine``'s statements (a fixture's body)."""
    counter = SQLCounter(async_engine.sync_engine)
    yield counter
    counter.close()


@pytest.fixture
def aengine(engine: Engine) -> Iterator[AsyncEngine]:
    yield from disposed(async_engine_for(engine))


@pytest.fixture
def asql(aengine: AsyncEngine) -> Iterator[SQLCounter]:
    yield from counting(aengine)


@pytest.fixture
def Async(aengine: AsyncEngine, cache_manager: CacheManager) -> async_sessionmaker[AsyncSession]:  # noqa: N802
    factory = async_sessionmaker(aengine)
    install(factory, cache_manager)
    return factory


def by_range() -> Any:
    return (
        select(Person)
        .where(Person.name.between("person 40", "person 45"))
        .order_by(Person.id)
        .options(FromCache("default", "select"))
    )


EXPECTED = [f"person {n}" for n in range(40, 46)]


async def names(session: AsyncSession) -> list[str]:
    return [p.name for p in await session.scalars(by_range())]


def test_execute_scalars_scalar_run_sql_once(Async, asql):
    async def main() -> None:
        async with Async() as s:
            with asql.expect(1):
                assert await names(s) == EXPECTED
        async with Async() as s:
            with asql.expect(0):
                assert await names(s) == EXPECTED
                assert [r.Person.name for r in await s.execute(by_range())] == EXPECTED
                assert (await s.execute(by_range())).scalars().all()[0].name == "person 40"
        async with Async() as s:
            with asql.expect(1):  # another statement: its own key
                assert (await s.scalar(by_range().offset(1))).name == "person 41"
            with asql.expect(0):
                assert (await s.scalar(by_range().offset(1))).name == "person 41"

    asyncio.run(main())


def test_stream_and_stream_scalars(Async, asql):
    async def main() -> None:
        async with Async() as s:
            with asql.expect(1):
                assert [p.name async for p in await s.stream_scalars(by_range())] == EXPECTED
            with asql.expect(0):
                assert [p.name async for p in await s.stream_scalars(by_range())] == EXPECTED
                rows = await s.stream(by_range())
                assert [r.Person.name async for r in rows] == EXPECTED

    asyncio.run(main())


def test_get_by_primary_key(Async, asql):
    option = [FromCache("default", "byid")]

    async def main() -> None:
        async with Async() as s:
            with asql.expect(1):
                assert (await s.get(Person, 5, options=option)).name == "person 05"
        async with Async() as s:
            with asql.expect(0):
                assert (await s.get(Person, 5, options=option)).name == "person 05"
        async with Async() as s:
            with asql.expect(1):
                assert await s.get(Person, 9999, options=option) is None

    asyncio.run(main())


def test_relationship_lazy_loads_inside_run_sync(Async, asql):
    cached = (
        RelationshipCache("default", "byid", Address.postal_code)
        .and_(RelationshipCache("default", "byid", PostalCode.city))
        .and_(RelationshipCache("default", "byid", City.country))
    )
    statement = select(Address).where(Address.id < 5).order_by(Address.id).options(cached)

    def report(session: Session) -> list[str]:  # lazy loads: sync code, in the greenlet
        return [str(a) for a in session.scalars(statement)]

    async def main() -> list[list[str]]:
        async with Async() as s:
            first = await s.run_sync(report)
        async with Async() as s:
            with asql.expect(1):  # only the addresses themselves
                again = await s.run_sync(report)
        return [first, again]

    first, again = asyncio.run(main())
    assert first == again and len(first) == 4 and "Main Street" in first[0]


def test_async_scoped_session(aengine, cache_manager, asql):
    scoped = async_scoped_session(async_sessionmaker(aengine), scopefunc=asyncio.current_task)
    install(scoped, cache_manager)

    async def main() -> None:
        with asql.expect(1):
            assert await names(scoped()) == EXPECTED
        await scoped.remove()
        with asql.expect(0):
            assert await names(scoped()) == EXPECTED
        await scoped.remove()

    asyncio.run(main())


class AppSession(AsyncSession):
    pass


def test_asyncsession_subclass_and_instance(aengine, cache_manager, asql):
    install(AppSession, cache_manager)
    assert AppSession.sync_session_class is not Session  # its own: Session stays unhooked

    async def main() -> None:
        async with AppSession(aengine) as s:
            with asql.expect(1):
                assert await names(s) == EXPECTED
        async with AppSession(aengine) as s:
            with asql.expect(0):
                assert await names(s) == EXPECTED
        plain = AsyncSession(aengine)
        with asql.expect(1):  # not installed: runs the query
            assert await names(plain) == EXPECTED
        install(plain, cache_manager)  # one instance only
        with asql.expect(0):
            assert await names(plain) == EXPECTED
        await plain.close()
        async with AsyncSession(aengine) as other:
            with asql.expect(1):
                assert await names(other) == EXPECTED

    asyncio.run(main())


def test_async_sessionmaker_hooks_only_its_own_sessions(Async, aengine, engine, asql, sql):
    assert Async.kw["sync_session_class"] is not Session
    assert install(Async) is None  # again: same private class, moved behind later hooks

    async def main() -> None:
        async with Async() as s:
            await names(s)
        async with AsyncSession(aengine) as s:
            with asql.expect(1):
                assert await names(s) == EXPECTED

    asyncio.run(main())
    with Session(engine) as s, sql.expect(1):  # a plain Session is not cached either
        assert [p.name for p in s.scalars(by_range())] == EXPECTED


@pytest.mark.parametrize(
    "target",
    [
        pytest.param(lambda e: e, id="AsyncEngine"),
        pytest.param(lambda e: e.connect(), id="AsyncConnection"),
        pytest.param(lambda e: "AsyncSession", id="str"),
    ],
)
def test_install_rejects_other_objects(aengine, target):
    thing = target(aengine)
    with pytest.raises(TypeError, match="async_sessionmaker, async_scoped_session, AsyncSession"):
        install(thing)
    with pytest.raises(TypeError, match=re.escape(repr(thing))):
        caching_query.auto_invalidate(thing)


def test_sync_and_async_share_one_entry_both_ways(aengine, engine, cache_manager, asql, sql):
    Async = async_sessionmaker(aengine)  # noqa: N806
    Sync = sessionmaker(bind=engine)  # noqa: N806
    install(Async, cache_manager)
    install(Sync, cache_manager)
    one = by_range()
    other = by_range().where(Person.id > 41)
    with Sync() as s, sql.expect(1):  # written by sync ...
        assert [p.name for p in s.scalars(one)] == EXPECTED

    async def main() -> None:
        async with Async() as s:
            with asql.expect(0):  # ... a hit for async
                assert await names(s) == EXPECTED
        async with Async() as s:
            with asql.expect(1):  # written by async ...
                assert [p.name for p in await s.scalars(other)] == EXPECTED[2:]

    asyncio.run(main())
    with Sync() as s, sql.expect(0):  # ... a hit for sync
        assert [p.name for p in s.scalars(other)] == EXPECTED[2:]


def test_concurrent_tasks_missing_one_key_run_the_query_once(aengine, region_config, backend, asql):
    """Ten tasks of one loop miss one key: one runs the query, the others
    wait for it with ``await`` (a blocking wait would stop the loop, and the
    query with it: server-lock backends then gave up after ``lock_wait``,
    each running the query; Beaker's per-thread locks let every task in)."""
    ten_tasks_run_the_query_once(aengine, region_config, asql)


def ten_tasks_run_the_query_once(
    async_engine: AsyncEngine, region_config: dict[str, Any], counter: SQLCounter
) -> None:
    """Ten tasks of one loop missing one key send one SELECT, and ten hits none."""
    manager = CacheManager(cache_regions={"default": {**region_config, "lock_wait": 20}})
    factory = async_sessionmaker(async_engine)
    install(factory, manager)

    async def one() -> list[str]:
        async with factory() as s:
            return await names(s)

    async def main() -> list[list[str]]:
        return await asyncio.gather(*(one() for _ in range(10)))

    with counter.expect(1):
        assert asyncio.run(main()) == [EXPECTED] * 10
    with counter.expect(0):
        assert asyncio.run(main()) == [EXPECTED] * 10


def test_tasks_missing_different_keys_do_not_wait_for_each_other(Async, asql):
    """Each task holds its own key's lock while awaiting the database."""

    async def one(number: int) -> str:
        async with Async() as s:
            return (await s.get(Person, number, options=[FromCache("default", "byid")])).name

    async def main() -> list[str]:
        return await asyncio.gather(*(one(n) for n in range(1, 9)))

    with asql.expect(8):
        assert asyncio.run(main()) == [f"person {n:02d}" for n in range(1, 9)]
    with asql.expect(0):
        assert asyncio.run(main()) == [f"person {n:02d}" for n in range(1, 9)]


def test_cancelled_holder_and_waiter_leave_the_key_to_the_next_task(engine, cache_manager):
    """The task running the query and one waiting for it are cancelled: the
    last waiter takes the key over and runs the query itself."""
    async_engine = async_engine_for(engine)
    inside, go_on = threading.Event(), threading.Event()

    def pause(value: int) -> int:  # runs in aiosqlite's thread: the loop goes on
        inside.set()
        go_on.wait(10)
        return value

    event.listen(
        async_engine.sync_engine,
        "connect",
        lambda connection, record: connection.create_function("pause", 1, pause),
    )
    asql = SQLCounter(async_engine.sync_engine)
    factory = async_sessionmaker(async_engine)
    install(factory, cache_manager)
    statement = (
        select(Person)
        .where(Person.id == 3, func.pause(1) == 1)
        .options(FromCache("default", "slow"))
    )

    async def one() -> list[str]:
        async with factory() as s:
            return [p.name for p in await s.scalars(statement)]

    async def main() -> list[str]:
        holder = asyncio.create_task(one())
        while not inside.is_set():
            await asyncio.sleep(0.01)
        first, last = asyncio.create_task(one()), asyncio.create_task(one())
        await asyncio.sleep(0.05)
        (key_lock,) = task_locks._registry[asyncio.get_running_loop()].values()
        assert len(key_lock.waiters) == 2 and key_lock.owner is not None
        first.cancel()
        holder.cancel()
        go_on.set()
        names = await last
        with pytest.raises(asyncio.CancelledError):
            await first
        # cancelled mid-statement, SQLAlchemy may invalidate the holder's
        # connection, and closing its session then raises that instead
        with pytest.raises((asyncio.CancelledError, sa_exc.PendingRollbackError)):
            await holder
        assert task_locks._registry[asyncio.get_running_loop()] == {}
        return names

    try:
        assert asyncio.run(main()) == ["person 03"]
        assert asql.count == 2  # the cancelled holder's SELECT and the last waiter's
        with asql.expect(0):
            assert asyncio.run(one()) == ["person 03"]
    finally:
        go_on.set()
        asql.close()
        asyncio.run(async_engine.dispose())


@pytest.mark.parametrize("backend", ["memory", "redis"], indirect=True)
def test_stale_while_revalidate_one_task_regenerates(aengine, region_config, backend, asql):
    """An expired entry: one task runs the query, the nine others are served the old entry."""
    config = {**region_config, "expire": 1, "stale_while_revalidate": 60, "lock_wait": 20}
    factory = async_sessionmaker(aengine)
    install(factory, CacheManager(cache_regions={"default": config}))

    async def one() -> list[str]:
        async with factory() as s:
            return await names(s)

    async def main() -> list[list[str]]:
        return await asyncio.gather(*(one() for _ in range(10)))

    with asql.expect(1):
        assert asyncio.run(one()) == EXPECTED
    time.sleep(2.1)  # past expire=1
    caching_query.reset_statistics()
    with asql.expect(1):
        assert asyncio.run(main()) == [EXPECTED] * 10
    assert caching_query.statistics()[("default", "select")].stale_served == 9
