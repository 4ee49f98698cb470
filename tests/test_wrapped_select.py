"""A SELECT over a cached SELECT borrows its ``FromCache`` (``caching_query.wrapped``).

What paginators run (Flask-SQLAlchemy's ``db.paginate()`` counts with
``select(func.count()).select_from(statement.subquery())``) is cached under
a key of its own, in the inner option's region and namespace, and
invalidated like any entry.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

import caching_query
from caching_query import CachingQuery, FromCache, NoCache, core, wrapped
from examples.model import Address, Person
from tests.conftest import SQLCounter

PEOPLE = FromCache("default", "people")


@pytest.fixture(params=["memory", "file"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def Session(engine, cache_manager):  # noqa: N802
    factory = sessionmaker(bind=engine, query_cls=CachingQuery)
    caching_query.install(factory, cache_manager)
    caching_query.reset_statistics()
    return factory


def count_of(statement: Any) -> Any:
    return select(func.count()).select_from(statement.subquery())


def run_twice(Session: Any, sql: SQLCounter, statement: Any, second_sql: int) -> Any:  # noqa: N803
    with Session() as session, sql.expect(1):
        first = session.execute(statement).scalar()
    with Session() as session, sql.expect(second_sql):
        assert session.execute(statement).scalar() == first
    return first


def people_stats() -> Any:
    return caching_query.statistics().get(("default", "people"))


def test_a_count_over_a_cached_select_is_cached(Session, sql):
    people = select(Person).where(Person.id > 10).options(PEOPLE)
    assert run_twice(Session, sql, count_of(people), 0) == 90
    with Session() as session:
        expected = session.execute(count_of(select(Person).where(Person.id > 10))).scalar()
    assert expected == 90
    # its own key: the inner statement's entry is another one
    assert core.key_for(PEOPLE, count_of(people), None) != core.key_for(PEOPLE, people, None)
    assert (people_stats().stores, people_stats().hits) == (1, 1)


def test_each_bound_value_has_its_entry(Session, sql):
    for low, expected in ((10, 90), (50, 50)):
        statement = count_of(select(Person).where(Person.id > low).options(PEOPLE))
        assert run_twice(Session, sql, statement, 0) == expected


def test_legacy_query_over_a_cached_subquery(Session, sql):
    def count() -> int:
        with Session() as session:
            inner = session.query(Person).filter(Person.id <= 30).options(PEOPLE)
            return session.query(func.count()).select_from(inner.subquery()).scalar()

    with sql.expect(1):
        assert count() == 30
    with sql.expect(0):
        assert count() == 30


def test_nested_wrapping_borrows_the_innermost_option(Session, sql):
    inner = select(Person).where(Person.id > 95).options(PEOPLE).subquery()
    middle = select(inner.c.id).select_from(inner)
    assert wrapped.cache_option(count_of(middle)) is PEOPLE
    assert run_twice(Session, sql, count_of(middle), 0) == 5


@pytest.mark.parametrize(
    "case",
    ["outer options", "explicit key", "join", "two froms", "no option", "core select"],
)
def test_what_is_not_borrowed(Session, sql, case):
    people = select(Person).where(Person.id > 10)
    cached = people.options(PEOPLE).subquery()
    statement = {
        # an option of its own (here NoCache) decides for the outer statement
        "outer options": count_of(people.options(PEOPLE)).options(NoCache()),
        # an explicit key would make the count share the inner statement's entry
        "explicit key": count_of(people.options(FromCache("default", "people", "p"))),
        "join": select(func.count()).select_from(
            cached.join(Address, Address.person_id == cached.c.id)
        ),
        "two froms": select(func.count())
        .select_from(cached, Address.__table__)
        .where(Address.person_id == cached.c.id),
        "no option": count_of(people),
        # no ORM entity: not an ORM result, never cached
        "core select": count_of(select(Person.__table__).options(PEOPLE)),
    }[case]
    if case != "core select":
        assert wrapped.cache_option(statement) is None
    run_twice(Session, sql, statement, 1)
    stats = people_stats()
    assert stats is None or stats.stores == 0


def test_a_committed_write_invalidates_the_count(writable_engine, cache_manager):
    factory = sessionmaker(bind=writable_engine, query_cls=CachingQuery)
    caching_query.auto_invalidate(factory, cache_manager)
    sql = SQLCounter(writable_engine)
    statement = count_of(select(Person).options(PEOPLE))
    try:
        assert run_twice(factory, sql, statement, 0) == 100
        with factory() as session:
            session.add(Person("person 101"))
            session.commit()
        assert run_twice(factory, sql, statement, 0) == 101
        caching_query.clear("default", "people", cache_manager)
        with factory() as session, sql.expect(1):
            assert session.execute(statement).scalar() == 101
    finally:
        sql.close()


def test_the_borrowed_option_keeps_its_settings(writable_engine, cache_manager):
    """``auto_invalidate=False`` on the inner statement keeps the count out of it too."""
    factory = sessionmaker(bind=writable_engine, query_cls=CachingQuery)
    caching_query.auto_invalidate(factory, cache_manager)
    sql = SQLCounter(writable_engine)
    option = FromCache("default", "people", auto_invalidate=False)
    statement = count_of(select(Person).options(option))
    try:
        assert run_twice(factory, sql, statement, 0) == 100
        with factory() as session:
            session.add(Person("person 101"))
            session.commit()
        with factory() as session, sql.expect(0):
            assert session.execute(statement).scalar() == 100
    finally:
        sql.close()


def test_cache_all_mode_uses_the_inner_option(writable_engine, cache_manager):
    factory = sessionmaker(bind=writable_engine)
    caching_query.cache_all(factory, "default", cache_manager=cache_manager)
    caching_query.reset_statistics()
    sql = SQLCounter(writable_engine)
    try:
        run_twice(factory, sql, count_of(select(Person).options(PEOPLE)), 0)
    finally:
        sql.close()
    assert people_stats().stores == 1
    assert ("default", "all") not in caching_query.statistics()
