"""RelationshipCache: lazy loads served from the cache."""

from __future__ import annotations

import pickle

import pytest
from beaker.cache import CacheManager
from sqlalchemy import ForeignKey, String, create_engine, select
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    joinedload,
    mapped_column,
    relationship,
    scoped_session,
    sessionmaker,
    with_polymorphic,
)

from caching_query import CachingQuery, FromCache, RelationshipCache, install, query_callable
from examples.model import Address, City, Person, PostalCode
from tests.conftest import SQLCounter

cache_address_bits = (
    RelationshipCache("default", "byid", PostalCode.city)
    .and_(RelationshipCache("default", "byid", City.country))
    .and_(RelationshipCache("default", "byid", Address.postal_code))
)


def full_report(session):
    people = session.query(Person).options(joinedload(Person.addresses), cache_address_bits)
    return [person.format_full() for person in people.order_by(Person.id)]


def test_second_run_is_one_statement(Session, sql):
    Session = scoped_session(Session)
    with sql.expect(11):  # 1 + 5 postal codes + 3 cities + 2 countries
        first = full_report(Session())
    Session.remove()
    with sql.expect(1):
        second = full_report(Session())
    Session.remove()
    assert first == second and len(first) == 100


def test_uncached_run_matches(Session, sql):
    with Session() as s:
        plain = [
            p.format_full()
            for p in s.query(Person).options(joinedload(Person.addresses)).order_by(Person.id)
        ]
    with Session() as s:
        full_report(s)
    with Session() as s:
        assert full_report(s) == plain


def test_one_to_many_collection(Session, sql):
    option = RelationshipCache("default", "by_person", Person.addresses)

    def load(s):
        people = s.query(Person).filter(Person.id < 4).order_by(Person.id).options(option).all()
        return [(p.name, [a.street for a in p.addresses]) for p in people]

    with Session() as s, sql.expect(4):
        first = load(s)
    with Session() as s, sql.expect(1):
        assert load(s) == first
    assert first[0] == ("person 01", ["1 Main Street", "1 Side Street"])


def test_option_that_is_not_propagated_to_this_relationship_is_ignored(Session, sql):
    option = RelationshipCache("default", "byid", PostalCode.city)
    with Session() as s:
        p = s.query(Person).options(option).filter(Person.id == 1).one()
        with sql.expect(1):
            p.addresses  # not covered: a normal lazy load
    with Session() as s:
        p = s.query(Person).options(option).filter(Person.id == 1).one()
        with sql.expect(1):
            p.addresses


def test_works_after_the_same_shape_ran_without_the_option(Session, sql):
    """SQLAlchemy caches lazy-load statements per shape; the option must survive."""

    def touch(s, *options):
        for a in s.query(Address).filter(Address.id < 5).order_by(Address.id).options(*options):
            a.postal_code.code

    with Session() as s, sql.expect(1 + 4):
        touch(s)
    with Session() as s, sql.expect(1 + 4):
        touch(s, RelationshipCache("default", "byid", Address.postal_code))
    with Session() as s, sql.expect(1):
        touch(s, RelationshipCache("default", "byid", Address.postal_code))
    with Session() as s, sql.expect(1 + 4):
        touch(s)  # and without it again, the database


def test_combined_with_fromcache_no_sql_at_all(Session, sql):
    """The advanced scenario: names from FromCache, addresses from RelationshipCache."""

    def load(s):
        q = (
            s.query(Person)
            .filter(Person.name.between("person 20", "person 25"))
            .options(
                FromCache("default", "name_range"),
                RelationshipCache("default", "by_person", Person.addresses),
            )
        )
        return [(p.name, [a.street for a in p.addresses]) for p in q]

    with Session() as s, sql.expect(1 + 6):
        first = load(s)
    with Session() as s, sql.expect(0):
        assert load(s) == first


def test_option_pickles_and_keeps_hitting_from_a_pickling_region(tmp_path, engine, sql):
    manager = CacheManager(cache_regions={"default": {"type": "file", "data_dir": str(tmp_path)}})
    Session = scoped_session(sessionmaker(bind=engine, query_cls=query_callable(manager)))
    unpickled = pickle.loads(pickle.dumps(cache_address_bits))
    assert [link.key for link in unpickled.links()] == ["city", "country", "postal_code"]
    with sql.expect(11):
        first = full_report(Session())
    Session.remove()
    # postal codes come back unpickled and carry the option: their own lazy
    # loads must find the entries written from database-loaded parents
    with sql.expect(1):
        assert full_report(Session()) == first
    Session.remove()


def test_2_0_style_lazy_loads(Session, sql):
    install(Session)
    stmt = (
        select(Address)
        .where(Address.id < 3)
        .options(RelationshipCache("default", "byid", Address.postal_code))
    )
    with Session() as s, sql.expect(3):
        first = [a.postal_code.code for a in s.scalars(stmt)]
    with Session() as s, sql.expect(1):
        assert [a.postal_code.code for a in s.scalars(stmt)] == first


def test_rejects_a_non_relationship():
    with pytest.raises(TypeError, match="relationship attribute"):
        RelationshipCache("default", "x", Person.name)


# -- inheritance --------------------------------------------------------------


class Base(DeclarativeBase):
    pass


class Department(Base):
    __tablename__ = "department"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


class Employee(Base):
    __tablename__ = "employee"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"))
    department: Mapped[Department] = relationship()
    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "employee"}


class Engineer(Employee):
    __tablename__ = "engineer"
    id: Mapped[int] = mapped_column(ForeignKey("employee.id"), primary_key=True)
    language: Mapped[str] = mapped_column(String(20))
    __mapper_args__ = {"polymorphic_identity": "engineer"}


@pytest.fixture
def company(tmp_path, cache_manager):
    engine = create_engine(f"sqlite:///{tmp_path / 'company.db'}")
    Base.metadata.create_all(engine)
    Session = sessionmaker(bind=engine, query_cls=CachingQuery)
    with Session() as s:
        s.add_all([Department(id=1, name="R&D"), Department(id=2, name="Ops")])
        s.add_all([Engineer(id=i, department_id=1 + i % 2, language="py") for i in range(1, 5)])
        s.add(Employee(id=9, department_id=1))
        s.commit()
    yield Session, SQLCounter(engine)
    engine.dispose()


def test_subclass_lazy_load_uses_base_class_option(company):
    Session, sql = company
    option = RelationshipCache("default", "dept", Employee.department)

    def load(s):
        rows = s.query(Engineer).order_by(Engineer.id).options(option).all()
        return [(e.id, e.department.name) for e in rows]

    with Session() as s, sql.expect(3):
        first = load(s)
    with Session() as s, sql.expect(1):
        assert load(s) == first
    assert first == [(1, "Ops"), (2, "R&D"), (3, "Ops"), (4, "R&D")]


def test_polymorphic_fromcache(company):
    Session, sql = company
    everyone = with_polymorphic(Employee, [Engineer])
    for count in (1, 0):
        with Session() as s, sql.expect(count):
            rows = (
                s.query(everyone).order_by(everyone.id).options(FromCache("default", "emp")).all()
            )
            assert [type(e).__name__ for e in rows] == ["Engineer"] * 4 + ["Employee"]
            assert rows[0].language == "py"


def test_subclass_attribute_not_loaded_loads_after_hit(company):
    Session, sql = company
    for count in (2, 1):  # the hit still lazily loads what was never loaded
        with Session() as s, sql.expect(count):
            rows = (
                s.query(Employee).order_by(Employee.id).options(FromCache("default", "emp")).all()
            )
            assert rows[0].language == "py"


def test_parent_query_compiled_without_the_option_first(Session, sql):
    """The parent query's shape compiled once without the option must not drop it."""
    option = RelationshipCache("default", "by_person", Person.addresses)

    def load(s, *options):
        people = s.query(Person).filter(Person.id < 3).order_by(Person.id).options(*options)
        return [[a.street for a in p.addresses] for p in people]

    with Session() as s, sql.expect(3):
        load(s)  # same shape, no option: compiled and cached by SQLAlchemy
    with Session() as s, sql.expect(3):
        first = load(s, option)
    with Session() as s, sql.expect(1):
        assert load(s, option) == first
