"""Miss and hit through the legacy Query API: counts, shapes, attachment."""

from __future__ import annotations

import pytest
from beaker.cache import CacheManager
from sqlalchemy import inspect
from sqlalchemy.orm import joinedload, selectinload, sessionmaker, subqueryload

from caching_query import CachingQuery, FromCache, query_callable
from examples.model import Address, Person, PostalCode

NAMES = ("person 20", "person 30")


def people(session, *options):
    return (
        session.query(Person)
        .filter(Person.name.between(*NAMES))
        .order_by(Person.id)
        .options(FromCache("default", "people"), *options)
    )


def test_second_run_emits_no_sql(Session, sql):
    with Session() as s, sql.expect(1):
        first = [p.name for p in people(s).all()]
    with Session() as s, sql.expect(0):
        second = [p.name for p in people(s).all()]
    assert first == second == [f"person {n}" for n in range(20, 31)]


def test_hit_equals_uncached_rows(Session, sql):
    with Session() as s:
        plain = [
            (p.id, p.name)
            for p in s.query(Person).filter(Person.id < 20).order_by(Person.name.desc())
        ]
    for _ in range(2):
        with Session() as s:
            q = s.query(Person).filter(Person.id < 20).order_by(Person.name.desc())
            cached = [(p.id, p.name) for p in q.options(FromCache("default", "x"))]
        assert cached == plain


@pytest.mark.parametrize(
    "fetch",
    [
        pytest.param(lambda q: list(q), id="iter"),
        pytest.param(lambda q: q.all(), id="all"),
        pytest.param(lambda q: [q.first()], id="first"),
        pytest.param(lambda q: [q.filter(Person.name == "person 25").one()], id="one"),
        pytest.param(
            lambda q: [q.filter(Person.name == "person 25").one_or_none()], id="one_or_none"
        ),
        pytest.param(
            lambda q: [q.with_entities(Person.name).filter(Person.id == 5).scalar()], id="scalar"
        ),
        pytest.param(lambda q: q[1:3], id="slice"),
        pytest.param(lambda q: [q[2]], id="index"),
    ],
)
def test_every_fetch_method_is_cached(Session, sql, fetch):
    with Session() as s:
        expected = fetch(s.query(Person).filter(Person.name.between(*NAMES)).order_by(Person.id))
        expected = [getattr(x, "name", x) for x in expected]
    with Session() as s, sql.expect(1):
        assert [getattr(x, "name", x) for x in fetch(people(s))] == expected
    with Session() as s, sql.expect(0):
        assert [getattr(x, "name", x) for x in fetch(people(s))] == expected


def test_result_shapes(Session, sql):
    def shapes(s):
        opt = FromCache("default", "shapes")
        return [
            [
                (p.name, a.street)
                for p, a in s.query(Person, Address)
                .join(Person.addresses)
                .filter(Person.id < 4)
                .order_by(Address.id)
                .options(opt)
            ],
            [
                tuple(r)
                for r in s.query(Person.name, Person.id)
                .filter(Person.id < 4)
                .order_by(Person.id)
                .options(opt)
            ],
            [
                (n, a.street)
                for n, a in s.query(Person.name, Address)
                .join(Person.addresses)
                .filter(Person.id < 3)
                .order_by(Address.id)
                .options(opt)
            ],
            [
                r.name
                for r in s.query(Person.name).filter(Person.id < 4).order_by(Person.id).options(opt)
            ],
        ]

    with Session() as s, sql.expect(4):
        first = shapes(s)
    with Session() as s, sql.expect(0):
        second = shapes(s)
    assert first == second
    assert first[0][0] == ("person 01", "1 Main Street")
    assert first[3] == ["person 01", "person 02", "person 03"]


@pytest.mark.parametrize(
    "loader, statements",
    [(joinedload, 1), (selectinload, 2), (subqueryload, 2)],
    ids=["joinedload", "selectinload", "subqueryload"],
)
def test_eager_loads_come_back_without_sql(Session, sql, loader, statements):
    def load(s):
        return people(s, loader(Person.addresses).joinedload(Address.postal_code)).all()

    with Session() as s, sql.expect(statements):
        first = [(p.name, [(a.street, a.postal_code.code) for a in p.addresses]) for p in load(s)]
    with Session() as s, sql.expect(0):
        second = [(p.name, [(a.street, a.postal_code.code) for a in p.addresses]) for p in load(s)]
    assert first == second
    assert all(len(addresses) == 2 for _, addresses in first)


def test_hit_objects_belong_to_the_session_and_are_copies(Session, sql):
    with Session() as s:
        people(s).all()
    with Session() as s:
        q = people(s)
        hit = q.all()
        cache, key = q.cache_and_key()
        stored = cache.get(key)
        assert all(inspect(p).session is s for p in hit)
        # the entry holds column values only: no object is shared with it
        assert all(type(value) in (int, str) for row in stored for value in row)
        hit[0].name = "changed"
        assert cache.get(key)[0].person_name == "person 20"
        s.rollback()


def test_hit_after_storing_session_committed_modified_and_closed(Session, sql, writable_engine):
    Session = sessionmaker(bind=writable_engine, query_cls=CachingQuery)
    counter = type(sql)(writable_engine)
    s1 = Session()
    stored = people(s1, joinedload(Person.addresses)).all()
    s1.commit()  # expires s1's objects
    stored[0].name  # reload in s1
    with Session() as s2, counter.expect(0):
        names = [(p.name, len(p.addresses)) for p in people(s2, joinedload(Person.addresses))]
    s1.close()
    with Session() as s3, counter.expect(0):
        assert [
            (p.name, len(p.addresses)) for p in people(s3, joinedload(Person.addresses))
        ] == names
    counter.close()


def test_identity_map_wins_on_hit(Session, sql):
    with Session() as s:
        people(s).all()
    with Session() as s:
        mine = s.get(Person, 20)
        with sql.expect(0):
            hit = people(s).all()
        assert hit[0] is mine


def test_expired_object_in_session_is_refreshed_from_the_entry(Session, sql):
    with Session() as s:
        people(s).all()
    with Session() as s:
        mine = s.get(Person, 20)
        s.expire(mine)
        with sql.expect(0):
            hit = people(s).all()
            assert hit[0] is mine and mine.name == "person 20"


def test_unloaded_attributes_load_normally_after_a_hit(Session, sql):
    with Session() as s:
        people(s).all()
    with Session() as s:
        hit = people(s).all()
        with sql.expect(1):
            assert len(hit[0].addresses) == 2


def test_query_callable_uses_its_manager(engine, sql):
    manager = CacheManager(cache_regions={"private": {"type": "memory"}})
    Session = sessionmaker(bind=engine, query_cls=query_callable(manager))
    assert query_callable(manager) is query_callable(manager)
    for count in (1, 0):
        with Session() as s, sql.expect(count):
            q = s.query(Person).filter(Person.id == 3).options(FromCache("private", "pc"))
            assert q.one().name == "person 03"


def test_class_default_region_resolution_uses_beaker_globals(cache_manager, engine, sql):
    Session = sessionmaker(bind=engine, query_cls=CachingQuery)
    for count in (1, 0):
        with Session() as s, sql.expect(count):
            assert s.query(PostalCode).options(FromCache()).count() == 5


def test_with_entities_keeps_the_cache_option(Session, sql):
    def run():
        with Session() as s:
            q = people(s).with_entities(Person.name)
            assert q.cache_option().namespace == "people"
            return [r.name for r in q]

    with sql.expect(1):
        first = run()
    with sql.expect(0):
        assert run() == first
