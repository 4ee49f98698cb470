"""AsyncSession: invalidation by an async commit, cache_all(), lazy loads of awaitable_attrs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, ForeignKey, String, create_engine, select, update
from sqlalchemy.ext.asyncio import (
    AsyncAttrs,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, sessionmaker

import caching_query
from caching_query import FromCache, NoCache, RelationshipCache, install
from examples.model import Person
from tests.conftest import SQLCounter
from tests.test_async import async_engine_for, counting, disposed


@pytest.fixture
def aengine(writable_engine: Engine) -> Iterator[AsyncEngine]:
    yield from disposed(async_engine_for(writable_engine))


@pytest.fixture
def asql(aengine: AsyncEngine) -> Iterator[SQLCounter]:
    yield from counting(aengine)


def people(number: int):
    return select(Person).where(Person.id == number).options(FromCache("default", "people"))


async def name_of(factory: async_sessionmaker[AsyncSession], number: int) -> str:
    async with factory() as s:
        return (await s.scalars(people(number))).one().name


async def rename(factory: async_sessionmaker[AsyncSession], number: int, name: str) -> None:
    async with factory() as s:
        (await s.get(Person, number)).name = name
        await s.commit()


def test_an_async_commit_invalidates(aengine, cache_manager, asql):
    Async = async_sessionmaker(aengine)  # noqa: N806
    caching_query.auto_invalidate(Async, cache_manager)

    async def main() -> None:
        with asql.expect(1):
            assert await name_of(Async, 7) == "person 07"
        with asql.expect(0):
            assert await name_of(Async, 7) == "person 07"
        await rename(Async, 7, "seven")
        with asql.expect(1):  # its table was written: a miss, with the new row
            assert await name_of(Async, 7) == "seven"
        with asql.expect(0):
            assert await name_of(Async, 7) == "seven"
        async with Async() as s:  # a Core UPDATE, committed
            await s.execute(update(Person).where(Person.id == 7).values(name="sept"))
            await s.commit()
        with asql.expect(1):
            assert await name_of(Async, 7) == "sept"

    asyncio.run(main())


def test_async_and_sync_commits_invalidate_each_other(
    aengine, writable_engine, cache_manager, asql
):
    Async = async_sessionmaker(aengine)  # noqa: N806
    Sync = sessionmaker(bind=writable_engine)  # noqa: N806
    caching_query.auto_invalidate(Async, cache_manager)
    caching_query.auto_invalidate(Sync, cache_manager)
    sql = SQLCounter(writable_engine)

    def sync_name() -> str:
        with Sync() as s:
            return s.scalars(people(8)).one().name

    try:
        assert sync_name() == "person 08"  # stored by sync
        with asql.expect(0):  # a hit for async
            assert asyncio.run(name_of(Async, 8)) == "person 08"
        asyncio.run(rename(Async, 8, "eight"))  # committed by async
        with sql.expect(1):
            assert sync_name() == "eight"
        with Sync() as s:  # committed by sync
            s.get(Person, 8).name = "huit"
            s.commit()
        with asql.expect(1):
            assert asyncio.run(name_of(Async, 8)) == "huit"
        with sql.expect(0):
            assert sync_name() == "huit"  # stored by async, a hit for sync
    finally:
        sql.close()


def test_uncommitted_async_changes_bypass_the_cache(aengine, cache_manager, asql):
    Async = async_sessionmaker(aengine)  # noqa: N806
    caching_query.auto_invalidate(Async, cache_manager)

    async def main() -> None:
        assert await name_of(Async, 9) == "person 09"
        async with Async() as s:
            (await s.get(Person, 9)).name = "not yet"
            with asql.expect(2):  # the flush and the query: not served from the cache
                assert (await s.scalars(people(9))).one().name == "not yet"
            await s.rollback()
        with asql.expect(0):
            assert await name_of(Async, 9) == "person 09"

    asyncio.run(main())


def test_cache_all(aengine, cache_manager, asql):
    Async = async_sessionmaker(aengine)  # noqa: N806
    caching_query.cache_all(Async, "default", cache_manager=cache_manager)
    plain = select(Person.name).where(Person.id < 4).order_by(Person.id)

    async def run(statement) -> list[str]:
        async with Async() as s:
            return list(await s.scalars(statement))

    async def main() -> None:
        with asql.expect(1):
            assert await run(plain) == ["person 01", "person 02", "person 03"]
        with asql.expect(0):
            assert await run(plain) == ["person 01", "person 02", "person 03"]
        with asql.expect(1):
            await run(plain.options(NoCache()))
        await rename(Async, 2, "two")
        with asql.expect(1):
            assert await run(plain) == ["person 01", "two", "person 03"]

    asyncio.run(main())


# -- AsyncAttrs.awaitable_attrs: a lazy load awaited, served by RelationshipCache ------------


class Base(AsyncAttrs, DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "author"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    books: Mapped[list[Book]] = relationship(order_by="Book.id")


class Book(Base):
    __tablename__ = "book"

    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("author.id"))
    title: Mapped[str] = mapped_column(String(50))


@pytest.fixture
def library(
    tmp_path, cache_manager
) -> Iterator[tuple[async_sessionmaker[AsyncSession], SQLCounter]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'library.db'}")
    Base.metadata.create_all(engine)
    with sessionmaker(bind=engine)() as s:
        s.add_all([Author(id=1, name="ann"), Author(id=2, name="bo")])
        s.add_all([Book(id=n, author_id=1 + n % 2, title=f"book {n}") for n in range(1, 6)])
        s.commit()
    async_engine = async_engine_for(engine)
    factory = async_sessionmaker(async_engine)
    install(factory, cache_manager)
    counter = SQLCounter(async_engine.sync_engine)
    yield factory, counter
    counter.close()
    asyncio.run(async_engine.dispose())
    engine.dispose()


def test_awaitable_attrs_lazy_load_from_the_cache(library):
    factory, asql = library
    statement = (
        select(Author)
        .order_by(Author.id)
        .options(RelationshipCache("default", "books", Author.books))
    )

    async def titles() -> list[list[str]]:
        async with factory() as s:
            authors = (await s.scalars(statement)).all()
            return [[b.title for b in await a.awaitable_attrs.books] for a in authors]

    with asql.expect(3):  # the authors, then each author's books
        first = asyncio.run(titles())
    assert first == [["book 2", "book 4"], ["book 1", "book 3", "book 5"]]
    with asql.expect(1):  # the authors only: both collections come from the cache
        assert asyncio.run(titles()) == first
