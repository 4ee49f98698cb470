"""2.0-style select()/Session.execute() and get-by-primary-key."""

from __future__ import annotations

import pytest
from beaker.cache import CacheManager
from sqlalchemy import ForeignKey, String, create_engine, exc, select
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    joinedload,
    mapped_column,
    selectinload,
    sessionmaker,
)

import caching_query
from caching_query import CachingQuery, FromCache, install, query_callable
from examples.model import Address, Person
from tests.conftest import SQLCounter


@pytest.fixture
def Session2(engine, cache_manager):  # noqa: N802
    Session = sessionmaker(bind=engine)  # plain Query class: only install()
    install(Session)
    return Session


def by_range(*options):
    return (
        select(Person)
        .where(Person.name.between("person 40", "person 45"))
        .order_by(Person.id)
        .options(FromCache("default", "select"), *options)
    )


@pytest.mark.parametrize(
    "fetch",
    [
        pytest.param(lambda s, st: [p.name for p in s.scalars(st)], id="scalars"),
        pytest.param(lambda s, st: [r.Person.name for r in s.execute(st)], id="execute"),
        pytest.param(lambda s, st: [s.execute(st.limit(1)).scalar_one().name], id="scalar_one"),
        pytest.param(lambda s, st: [s.scalars(st).first().name], id="first"),
        pytest.param(
            lambda s, st: [p.name for p in s.execute(st).scalars().all()], id="scalars_all"
        ),
    ],
)
def test_fetch_styles(Session2, sql, fetch):
    with Session2() as s:
        expected = fetch(s, by_range().options())
    with Session2() as s, sql.expect(0):
        assert fetch(s, by_range()) == expected == fetch(s, by_range())


def test_first_run_sql_second_none(Session2, sql):
    with Session2() as s, sql.expect(1):
        first = [p.name for p in s.scalars(by_range())]
    with Session2() as s, sql.expect(0):
        assert [p.name for p in s.scalars(by_range())] == first
    with Session2() as s:
        plain = [
            p.name
            for p in s.scalars(
                select(Person)
                .where(Person.name.between("person 40", "person 45"))
                .order_by(Person.id)
            )
        ]
    assert first == plain


def test_multi_entity_and_columns(Session2, sql):
    def load(s):
        both = (
            select(Person, Address).join(Person.addresses).where(Person.id < 3).order_by(Address.id)
        )
        cols = select(Person.name, Person.id).where(Person.id < 3).order_by(Person.id)
        return (
            [(p.name, a.street) for p, a in s.execute(both.options(FromCache("default", "m")))],
            [tuple(r) for r in s.execute(cols.options(FromCache("default", "m")))],
        )

    with Session2() as s, sql.expect(2):
        first = load(s)
    with Session2() as s, sql.expect(0):
        assert load(s) == first
    assert first[1] == [("person 01", 1), ("person 02", 2)]


def test_joined_collection_needs_unique_on_hit_too(Session2, sql):
    stmt = by_range(joinedload(Person.addresses))
    with Session2() as s:
        result = s.execute(stmt)
        with pytest.raises(exc.InvalidRequestError, match="unique"):
            result.all()
    with Session2() as s, sql.expect(0):
        result = s.execute(stmt)
        with pytest.raises(exc.InvalidRequestError, match="unique"):
            result.all()
    with Session2() as s, sql.expect(0):
        people = s.execute(stmt).unique().scalars().all()
        assert [len(p.addresses) for p in people] == [2] * 6


def test_selectinload_with_select(Session2, sql):
    with Session2() as s, sql.expect(2):
        first = [
            (p.name, len(p.addresses)) for p in s.scalars(by_range(selectinload(Person.addresses)))
        ]
    with Session2() as s, sql.expect(0):
        assert [
            (p.name, len(p.addresses)) for p in s.scalars(by_range(selectinload(Person.addresses)))
        ] == first


def test_invalidate_a_select(Session2, sql):
    option = FromCache("default", "inv")
    stmt = select(Person).where(Person.id == 4)
    with Session2() as s, sql.expect(1):
        s.scalars(stmt.options(option)).one()
    with Session2() as s, sql.expect(0):
        s.scalars(stmt.options(option)).one()
    caching_query.invalidate(stmt, option)  # without the option applied
    with Session2() as s, sql.expect(1):
        s.scalars(stmt.options(option)).one()
    caching_query.invalidate(stmt.options(option), option)  # or with it
    with Session2() as s, sql.expect(1):
        s.scalars(stmt.options(option)).one()


def test_query_and_select_key_by_their_own_shape(Session2, sql):
    # a legacy Query and a select() of the same rows return differently
    # shaped results, so they keep separate entries
    with Session2() as s, sql.expect(1):
        s.scalars(select(Person).where(Person.id == 1).options(FromCache())).one()
    with sessionmaker(bind=Session2.kw["bind"], query_cls=CachingQuery)() as s, sql.expect(1):
        s.query(Person).filter(Person.id == 1).options(FromCache()).one()


def test_query_callable_sessions_need_only_install(engine, sql):
    manager = CacheManager(cache_regions={"own": {"type": "memory"}})
    Session = sessionmaker(bind=engine, query_cls=query_callable(manager))
    install(Session)
    for count in (1, 0):
        with Session() as s, sql.expect(count):
            assert (
                s.scalars(select(Person).where(Person.id == 8).options(FromCache("own"))).one().id
                == 8
            )


# -- get ----------------------------------------------------------------------


def test_session_get_cached(Session2, sql):
    with Session2() as s, sql.expect(1):
        assert s.get(Person, 5, options=[FromCache("default", "byid")]).name == "person 05"
    with Session2() as s, sql.expect(0):
        assert s.get(Person, 5, options=[FromCache("default", "byid")]).name == "person 05"
    with Session2() as s, sql.expect(1):
        assert s.get(Person, 6, options=[FromCache("default", "byid")]).name == "person 06"


def test_get_missing_row_is_cached_as_none(Session2, sql):
    for count in (1, 0):
        with Session2() as s, sql.expect(count):
            assert s.get(Person, 9999, options=[FromCache("default", "byid")]) is None


def test_identity_map_wins_for_get(Session2, sql):
    with Session2() as s:
        mine = s.scalars(select(Person).where(Person.id == 5)).one()
        with sql.expect(0):
            assert s.get(Person, 5, options=[FromCache("default", "byid")]) is mine


def test_legacy_query_get(Session, sql):
    for count in (1, 0):
        with Session() as s, sql.expect(count):
            with pytest.warns(exc.LegacyAPIWarning):
                assert (
                    s.query(Person).options(FromCache("default", "byid")).get(7).name == "person 07"
                )


class Base(DeclarativeBase):
    pass


class Stock(Base):
    __tablename__ = "stock"
    warehouse: Mapped[str] = mapped_column(String(10), primary_key=True)
    sku: Mapped[int] = mapped_column(primary_key=True)
    quantity: Mapped[int]


class Reservation(Base):
    __tablename__ = "reservation"
    id: Mapped[int] = mapped_column(primary_key=True)
    warehouse: Mapped[str] = mapped_column(String(10), ForeignKey("stock.warehouse"))


def test_composite_primary_key(tmp_path, cache_manager):
    engine = create_engine(f"sqlite:///{tmp_path / 'stock.db'}")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add_all(
            [
                Stock(warehouse="a", sku=1, quantity=5),
                Stock(warehouse="a", sku=2, quantity=7),
                Stock(warehouse="b", sku=1, quantity=9),
            ]
        )
        s.commit()
    sql = SQLCounter(engine)
    Session_ = sessionmaker(bind=engine)
    install(Session_)
    option = FromCache("default", "stock")
    for count in (3, 0):
        with Session_() as s, sql.expect(count):
            got = [
                s.get(Stock, key, options=[option]).quantity
                for key in (("a", 1), ("a", 2), {"warehouse": "b", "sku": 1})
            ]
            assert got == [5, 7, 9]
    engine.dispose()
