"""What a type checker must conclude about the public API (``python3 tasks.py typecheck``).

Never run: ``mypy --strict`` reads it, and each ``assert_type`` fails the
check when the library's annotations stop saying what they should. The
functions take their objects as arguments so that nothing here needs a
database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, assert_type, cast

from beaker.cache import Cache, CacheManager
from sqlalchemy import ForeignKey, select
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Query,
    Session,
    mapped_column,
    relationship,
    scoped_session,
    sessionmaker,
)

import caching_query
from caching_query import (
    CacheEntry,
    CachingQuery,
    FromCache,
    NamespaceStatistics,
    NoCache,
    RelationshipCache,
    query_callable,
)


class Base(DeclarativeBase):
    pass


class Address(Base):
    __tablename__ = "address"
    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))


class Person(Base):
    __tablename__ = "person"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    addresses: Mapped[list[Address]] = relationship()


def caching_query_keeps_its_type(query: CachingQuery[Person]) -> None:
    """``CachingQuery[T]`` stays one through the generative methods."""
    assert_type(query.options(FromCache("default", "people")), CachingQuery[Person])
    assert_type(query.filter(Person.name == "x"), CachingQuery[Person])
    assert_type(query.filter_by(name="x"), CachingQuery[Person])
    assert_type(query.order_by(Person.id).limit(3), CachingQuery[Person])
    assert_type(query.with_cache_key("by_name", namespace="people"), CachingQuery[Person])
    chained = (
        query.filter(Person.id > 1)
        .options(FromCache("default"), RelationshipCache("default", "a", Person.addresses))
        .with_cache_key("k", expire=60)
    )
    assert_type(chained, CachingQuery[Person])
    assert_type(chained.all(), list[Person])
    assert_type(chained.first(), Person | None)
    assert_type(chained.one(), Person)


def handles_on_the_entry(query: CachingQuery[Person]) -> None:
    assert_type(query.cache_option(), FromCache)
    assert_type(query.cache_and_key(), tuple[Cache, str])
    assert_type(query.invalidate(), None)
    assert_type(query.get_value(), list[Any])
    assert_type(query.set_value([]), None)


def options_fit_sqlalchemy_without_casts(session: Session) -> None:
    """The options are accepted where SQLAlchemy takes options, and keep its types."""
    legacy = session.query(Person).options(FromCache("default", "people"))
    assert_type(legacy, Query[Person])
    assert_type(session.query(Person).options(NoCache()), Query[Person])
    relationship_cache = RelationshipCache("default", "addresses", Person.addresses)
    assert_type(relationship_cache.and_(relationship_cache), RelationshipCache)
    assert_type(session.query(Person).options(relationship_cache), Query[Person])

    statement = select(Person).options(FromCache("default", "people"), relationship_cache)
    assert_type(session.scalars(statement).all(), Sequence[Person])
    assert_type(session.scalars(select(Person).options(NoCache())).first(), Person | None)
    assert_type(session.get(Person, 5, options=[FromCache("default", "by_id")]), Person | None)
    caching_query.invalidate(statement, FromCache("default", "people"))

    # Session.query() is Query[T] to a type checker whatever query_cls is: the
    # documented way to reach the CachingQuery methods
    cached = cast(CachingQuery[Person], session.query(Person))
    assert_type(cached.with_cache_key("everyone").all(), list[Person])


def setting_up(
    factory: sessionmaker[Session], scoped: scoped_session[Session], manager: CacheManager
) -> None:
    """Every kind of session target ``install()`` documents is accepted."""
    caching_query.install(factory)
    caching_query.install(scoped, manager)
    caching_query.install(Session)
    caching_query.auto_invalidate(factory, manager, exclude_regions=["static"])
    caching_query.cache_all(scoped, "default", expire=60)
    assert_type(query_callable(manager), type[CachingQuery[Any]])
    sessionmaker(query_cls=query_callable(manager))
    sessionmaker(query_cls=CachingQuery)


def operating(manager: CacheManager) -> None:
    caching_query.clear("default", "people", manager)
    caching_query.invalidate_tables("person", Person, Base.metadata.tables["address"])
    assert_type(caching_query.statistics(), dict[tuple[str, str], NamespaceStatistics])
    assert_type(caching_query.statistics()["default", "people"].hit_rate, float | None)
    caching_query.reset_statistics()


def entries(entry: CacheEntry) -> None:
    assert_type(len(entry), int)
    assert_type(entry.meta, dict[str, Any])
