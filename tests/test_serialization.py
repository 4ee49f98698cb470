"""What a hit returns equals what the database returned, on every backend.

A model of this module's own (its own SQLite file) covers the values and
mapping features a pickling backend has to carry: Unicode text, dates,
datetimes, Decimals, NULLs, deferred columns, lazy and eager relationships,
a composite primary key, and joined plus single-table inheritance. Every
test runs once per backend of ``region_config`` (through ``Session``) and
asserts both the values (types included) and the SQL each step sent.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import (
    Date,
    DateTime,
    ForeignKey,
    Numeric,
    Unicode,
    UnicodeText,
    create_engine,
    inspect,
    select,
)
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    defer,
    mapped_column,
    relationship,
    selectinload,
    sessionmaker,
    undefer,
    with_polymorphic,
)
from sqlalchemy.orm import Session as OrmSession

from caching_query import FromCache, install
from tests.conftest import SQLCounter

TITLE = "Grüße, 東京 🚀"
BODY = "deferred ✓ " + "текст " * 20


class Base(DeclarativeBase):
    pass


class Owner(Base):
    __tablename__ = "owner"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(Unicode(100))


class Item(Base):
    __tablename__ = "item"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(Unicode(100))
    born: Mapped[datetime.date] = mapped_column(Date)
    seen_at: Mapped[datetime.datetime] = mapped_column(DateTime)
    price: Mapped[Decimal] = mapped_column(Numeric(12, 4))
    note: Mapped[str | None] = mapped_column(Unicode(100), nullable=True)
    body: Mapped[str] = mapped_column(UnicodeText, deferred=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owner.id"))
    owner: Mapped[Owner] = relationship()  # lazy="select"
    tags: Mapped[list[Tag]] = relationship(order_by="Tag.id")  # lazy="select"


class Tag(Base):
    __tablename__ = "tag"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id"))
    label: Mapped[str] = mapped_column(Unicode(50))


class Grade(Base):
    """A composite primary key, one part of it non-ASCII text."""

    __tablename__ = "grade"

    student: Mapped[str] = mapped_column(Unicode(50), primary_key=True)
    term: Mapped[int] = mapped_column(primary_key=True)
    score: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    taken_on: Mapped[datetime.date] = mapped_column(Date)


class Vehicle(Base):
    __tablename__ = "vehicle"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(Unicode(20))
    name: Mapped[str] = mapped_column(Unicode(50))

    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "vehicle"}


class Car(Vehicle):
    """Joined-table inheritance: ``doors`` lives in its own table."""

    __tablename__ = "car"

    id: Mapped[int] = mapped_column(ForeignKey("vehicle.id"), primary_key=True)
    doors: Mapped[int] = mapped_column()

    __mapper_args__ = {"polymorphic_identity": "car"}


class Boat(Vehicle):
    """Single-table inheritance: ``length`` is a column of ``vehicle``."""

    length: Mapped[Decimal | None] = mapped_column(Numeric(6, 2), nullable=True)

    __mapper_args__ = {"polymorphic_identity": "boat"}


ITEMS = [
    # id, title, born, seen_at, price, note
    (
        1,
        TITLE,
        datetime.date(1999, 12, 31),
        datetime.datetime(2024, 2, 29, 23, 59, 58, 123456),
        Decimal("1234.5678"),
        None,
    ),
    (
        2,
        "plain",
        datetime.date(2000, 1, 1),
        datetime.datetime(2000, 1, 1, 0, 0),
        Decimal("0.0001"),
        "ñ note",
    ),
    (
        3,
        "third 🚀",
        datetime.date(1970, 1, 1),
        datetime.datetime(1970, 1, 1, 0, 0, 0, 1),
        Decimal("-42.5000"),
        "ß",
    ),
]
ITEM_TYPES = [
    (int, str, datetime.date, datetime.datetime, Decimal, type(None)),
    (int, str, datetime.date, datetime.datetime, Decimal, str),
    (int, str, datetime.date, datetime.datetime, Decimal, str),
]
OWNERS = {1: "Zoë 東京", 2: "Ørjan"}
ITEM_OWNER = {1: 1, 2: 2, 3: 1}
TAGS = {1: ["α", "β 🚀"], 2: [], 3: ["γ"]}
BODIES = {1: BODY, 2: "second body", 3: "third body"}
GRADES = [
    ("bob", 1, Decimal("7.00"), datetime.date(2023, 6, 1)),
    ("ålice", 1, Decimal("9.50"), datetime.date(2023, 6, 1)),
    ("ålice", 2, Decimal("8.25"), datetime.date(2024, 1, 15)),
]
VEHICLES = [(1, Car, "Käfer"), (2, Boat, "Ölfähre"), (3, Car, "Mini")]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SimpleNamespace]:
    """This module's database in a file of its own, and its SQL counter."""
    engine = create_engine(f"sqlite:///{tmp_path / 'serialization.db'}")
    Base.metadata.create_all(engine)
    with OrmSession(engine) as session:
        session.add_all(Owner(id=i, name=name) for i, name in OWNERS.items())
        for id_, title, born, seen_at, price, note in ITEMS:
            session.add(
                Item(
                    id=id_,
                    title=title,
                    born=born,
                    seen_at=seen_at,
                    price=price,
                    note=note,
                    body=BODIES[id_],
                    owner_id=ITEM_OWNER[id_],
                    tags=[Tag(label=label) for label in TAGS[id_]],
                )
            )
        session.add_all(Grade(student=s, term=t, score=sc, taken_on=d) for s, t, sc, d in GRADES)
        session.add_all(
            [
                Car(id=1, name="Käfer", doors=2),
                Boat(id=2, name="Ölfähre", length=Decimal("12.50")),
                Car(id=3, name="Mini", doors=3),
            ]
        )
        session.commit()
    counter = SQLCounter(engine)
    yield SimpleNamespace(engine=engine, sql=counter)
    counter.close()
    engine.dispose()


@pytest.fixture
def S(Session: sessionmaker[OrmSession], db: SimpleNamespace) -> sessionmaker[OrmSession]:  # noqa: N802, N803
    """The parametrized ``Session`` (its region on each backend), on this module's database."""
    Session.configure(bind=db.engine)
    install(Session)  # for Session.get() and select()
    return Session


def values(item: Item) -> tuple[Any, ...]:
    return (item.id, item.title, item.born, item.seen_at, item.price, item.note)


def types_of(rows: list[tuple[Any, ...]]) -> list[tuple[type, ...]]:
    return [tuple(type(v) for v in row) for row in rows]


def items(session: OrmSession, *options: Any) -> Any:
    return session.query(Item).order_by(Item.id).options(FromCache("default", "items"), *options)


# -- column values and their types ------------------------------------------------


def test_column_values_and_types_round_trip(S, db):
    with S() as s, db.sql.expect(1):
        first = [values(i) for i in items(s)]
    with S() as s, db.sql.expect(0):
        second = [values(i) for i in items(s)]
    assert first == second == ITEMS
    assert types_of(second) == ITEM_TYPES
    assert second[0][1] == TITLE and second[0][4] == Decimal("1234.5678")
    assert second[0][3].microsecond == 123456


def test_typed_bound_values_in_the_key(S, db):
    """Unicode, date, datetime and Decimal literals make a key on every backend."""

    def load(s):
        return (
            s.query(Item)
            .filter(
                Item.title == TITLE,
                Item.born == datetime.date(1999, 12, 31),
                Item.seen_at == datetime.datetime(2024, 2, 29, 23, 59, 58, 123456),
                Item.price > Decimal("1234.5677"),
            )
            .options(FromCache("default", "typed"))
            .one()
        )

    with S() as s, db.sql.expect(1):
        assert values(load(s)) == ITEMS[0]
    with S() as s, db.sql.expect(0):
        assert values(load(s)) == ITEMS[0]
    with S() as s, db.sql.expect(1):  # another literal, another key
        q = s.query(Item).filter(Item.title == "third 🚀").options(FromCache("default", "typed"))
        assert values(q.one()) == ITEMS[2]


# -- attributes not loaded before caching -----------------------------------------


def test_deferred_column_loads_with_one_statement_after_a_hit(S, db):
    with S() as s, db.sql.expect(1):
        assert [i.id for i in items(s)] == [1, 2, 3]
    with S() as s:
        with db.sql.expect(0):
            cached = items(s).all()
        assert all("body" in inspect(i).unloaded for i in cached)
        with db.sql.expect(1):
            assert cached[0].body == BODY
        with db.sql.expect(1):
            assert cached[1].body == BODIES[2]


def test_defer_option_round_trip(S, db):
    def load(s):
        return items(s, defer(Item.note), undefer(Item.body)).filter(Item.id == 2).one()

    with S() as s, db.sql.expect(1):
        item = load(s)
        assert item.body == BODIES[2]
    with S() as s:
        with db.sql.expect(0):
            item = load(s)
            assert (item.title, item.body) == ("plain", BODIES[2])  # undeferred: stored
        assert "note" in inspect(item).unloaded
        with db.sql.expect(1):
            assert item.note == "ñ note"


def test_lazy_relationships_never_loaded_before_caching(S, db):
    with S() as s, db.sql.expect(1):
        assert len(items(s).all()) == 3
    with S() as s:
        with db.sql.expect(0):
            first = items(s).all()[0]
        assert {"owner", "tags"} <= inspect(first).unloaded
        with db.sql.expect(1):
            assert first.owner.name == OWNERS[1]
        with db.sql.expect(1):
            assert [t.label for t in first.tags] == TAGS[1]
        with db.sql.expect(0):
            assert first.owner.name == OWNERS[1] and [t.label for t in first.tags] == TAGS[1]


def test_selectinload_collection_round_trip(S, db):
    def load(s):
        return items(s, selectinload(Item.tags)).all()

    with S() as s, db.sql.expect(2):
        first = [(i.id, [t.label for t in i.tags]) for i in load(s)]
    with S() as s:
        with db.sql.expect(0):
            cached = load(s)
            second = [(i.id, [t.label for t in i.tags]) for i in cached]
        assert all("tags" not in inspect(i).unloaded for i in cached)
    assert first == second == [(1, TAGS[1]), (2, []), (3, TAGS[3])]


# -- composite primary key ---------------------------------------------------------


def test_composite_primary_key(S, db):
    def load(s):
        q = s.query(Grade).order_by(Grade.student, Grade.term)
        return q.options(FromCache("default", "grades")).all()

    def row(g):
        return (g.student, g.term, g.score, g.taken_on)

    with S() as s, db.sql.expect(1):
        first = [row(g) for g in load(s)]
    with S() as s, db.sql.expect(0):
        cached = load(s)
        second = [row(g) for g in cached]
        assert [inspect(g).identity for g in cached] == [("bob", 1), ("ålice", 1), ("ålice", 2)]
    assert first == second == GRADES
    assert types_of(second) == [(str, int, Decimal, datetime.date)] * 3


def test_composite_primary_key_get(S, db):
    option = FromCache("default", "grade_get")
    with S() as s, db.sql.expect(1):
        grade = s.get(Grade, ("ålice", 2), options=[option])
        assert (grade.score, grade.taken_on) == (Decimal("8.25"), datetime.date(2024, 1, 15))
    with S() as s, db.sql.expect(0):
        grade = s.get(Grade, ("ålice", 2), options=[option])
        assert (grade.student, grade.term, grade.score) == ("ålice", 2, Decimal("8.25"))
        assert type(grade.score) is Decimal


# -- inheritance -------------------------------------------------------------------


def test_polymorphic_base_query(S, db):
    def load(s):
        return s.query(Vehicle).order_by(Vehicle.id).options(FromCache("default", "vehicles"))

    with S() as s:
        plain = s.query(Vehicle).order_by(Vehicle.id).all()
        plain_unloaded = [set(inspect(v).unloaded) for v in plain]
    with S() as s, db.sql.expect(1):
        first = [(v.id, type(v), v.name) for v in load(s)]
    with S() as s:
        with db.sql.expect(0):
            cached = load(s).all()
        assert [(v.id, type(v), v.name) for v in cached] == first == VEHICLES
        # a hit leaves exactly what the plain query leaves unloaded ...
        assert [set(inspect(v).unloaded) for v in cached] == plain_unloaded
        assert plain_unloaded == [{"doors"}, {"length"}, {"doors"}]
        # ... and it loads as it would for the plain query: one statement each
        with db.sql.expect(1):
            assert cached[0].doors == 2
        with db.sql.expect(1):
            assert cached[1].length == Decimal("12.50")
            assert type(cached[1].length) is Decimal


def test_with_polymorphic_round_trip(S, db):
    every = with_polymorphic(Vehicle, [Car, Boat])

    def load(s):
        return s.query(every).order_by(every.id).options(FromCache("default", "vehicles")).all()

    def row(v):
        extra = v.doors if isinstance(v, Car) else v.length
        return (v.id, type(v), v.name, extra)

    with S() as s, db.sql.expect(1):
        first = [row(v) for v in load(s)]
    with S() as s, db.sql.expect(0):
        second = [row(v) for v in load(s)]
    assert (
        first
        == second
        == [(1, Car, "Käfer", 2), (2, Boat, "Ölfähre", Decimal("12.50")), (3, Car, "Mini", 3)]
    )
    assert type(second[1][3]) is Decimal


def test_subclass_query(S, db):
    def load(s):
        q = s.query(Car).order_by(Car.id)
        return [(c.id, type(c), c.name, c.doors) for c in q.options(FromCache("default", "cars"))]

    with S() as s, db.sql.expect(1):
        first = load(s)
    with S() as s, db.sql.expect(0):
        assert load(s) == first == [(1, Car, "Käfer", 2), (3, Car, "Mini", 3)]


# -- result shapes -----------------------------------------------------------------


def test_column_rows(S, db):
    columns = (Item.id, Item.title, Item.born, Item.seen_at, Item.price, Item.note)

    def load(s):
        return s.query(*columns).order_by(Item.id).options(FromCache("default", "columns")).all()

    with S() as s, db.sql.expect(1):
        first = load(s)
    with S() as s, db.sql.expect(0):
        second = load(s)
    assert [tuple(r) for r in first] == [tuple(r) for r in second] == ITEMS
    assert types_of([tuple(r) for r in second]) == ITEM_TYPES
    assert list(second[0]._fields) == ["id", "title", "born", "seen_at", "price", "note"]
    assert second[2].title == "third 🚀"


def test_multi_entity_rows(S, db):
    def load(s):
        q = (
            s.query(Item, Owner, Tag.label)
            .join(Item.owner)
            .outerjoin(Item.tags)
            .order_by(Item.id, Tag.id)
            .options(FromCache("default", "multi"))
        )
        return [(type(i), i.title, type(o), o.name, label) for i, o, label in q]

    expected = [
        (Item, TITLE, Owner, OWNERS[1], "α"),
        (Item, TITLE, Owner, OWNERS[1], "β 🚀"),
        (Item, "plain", Owner, OWNERS[2], None),
        (Item, "third 🚀", Owner, OWNERS[1], "γ"),
    ]
    with S() as s, db.sql.expect(1):
        assert load(s) == expected
    with S() as s, db.sql.expect(0):
        assert load(s) == expected


def test_none_results_are_cached(S, db):
    def no_row(s):
        q = s.query(Item).filter(Item.title == "nobody 🚫")
        return q.options(FromCache("default", "none")).one_or_none()

    def null_value(s):
        q = s.query(Item.note).filter(Item.id == 1)
        return q.options(FromCache("default", "none")).scalar()

    def missing_get(s):
        return s.get(Grade, ("nobody", 9), options=[FromCache("default", "none")])

    for fetch in (no_row, null_value, missing_get):
        with S() as s, db.sql.expect(1):
            assert fetch(s) is None
        with S() as s, db.sql.expect(0):
            assert fetch(s) is None, fetch.__name__


def test_empty_results_are_cached(S, db):
    def entities(s):
        q = s.query(Item).filter(Item.price > Decimal("1e6"))
        return q.options(FromCache("default", "empty")).all()

    def columns(s):
        q = s.query(Item.id, Item.title).filter(Item.born > datetime.date(2100, 1, 1))
        return q.options(FromCache("default", "empty")).all()

    def selected(s):
        stmt = select(Grade).where(Grade.term > 99).options(FromCache("default", "empty"))
        return s.scalars(stmt).all()

    for fetch in (entities, columns, selected):
        with S() as s, db.sql.expect(1):
            assert fetch(s) == []
        with S() as s, db.sql.expect(0):
            assert fetch(s) == [], fetch.__name__
