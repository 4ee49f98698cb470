"""invalidate(), get_value(), set_value(), cache_and_key() and expiry."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import inspect
from sqlalchemy.orm import joinedload, selectinload

from caching_query import CacheEntry, FromCache
from examples.model import Address, Person


def query(s, *options):
    return (
        s.query(Person)
        .filter(Person.id.in_([3, 4]))
        .order_by(Person.id)
        .options(FromCache("default", "handles"), *options)
    )


@pytest.mark.parametrize(
    "options, statements",
    [
        ((), 1),
        ((joinedload(Person.addresses),), 1),
        ((selectinload(Person.addresses).joinedload(Address.postal_code),), 2),
    ],
    ids=["plain", "joinedload", "selectin+joined"],
)
def test_invalidate_removes_the_key_execution_used(session, sql, options, statements):
    q = query(session, *options)
    q.all()
    cache, key = q.cache_and_key()
    assert isinstance(cache.get(key), CacheEntry)
    with sql.expect(0):
        q.all()
    query(session, *options).invalidate()  # a rebuilt query finds the same key
    assert key not in cache
    with sql.expect(statements):
        q.all()


def test_cache_and_key_reads_the_entry_directly(session):
    q = query(session)
    objects = q.all()
    cache, key = q.cache_and_key()
    entry = cache.get(key)
    # A shared region stores the rows the cursor returned, not objects.
    assert entry.kind == "rows"
    assert [tuple(row) for row in entry] == [(p.id, p.name) for p in objects]
    assert [row.person_name for row in entry] == ["person 03", "person 04"]
    assert len(entry) == 2


def test_get_value_absent_raises_keyerror(session):
    with pytest.raises(KeyError):
        query(session).get_value()


def test_get_value_createfunc_and_merge(session, sql, Session):
    with Session() as other:
        made = other.query(Person).filter(Person.id.in_([3, 4])).order_by(Person.id).all()
        with sql.expect(0):
            got = query(session).get_value(createfunc=lambda: made)
    assert [p.name for p in got] == ["person 03", "person 04"]
    assert all(inspect(p).session is session for p in got)
    with sql.expect(0):
        assert [p.name for p in query(session).all()] == ["person 03", "person 04"]
    detached = query(session).get_value(merge=False)
    assert all(inspect(p).detached for p in detached)


def test_set_value_then_query_hits(session, sql, Session):
    with Session() as other:
        value = other.query(Person).filter(Person.id == 7).all()
    query(session).set_value(value)
    with sql.expect(0):
        assert [p.name for p in query(session).all()] == ["person 07"]


def test_set_value_columns(session, sql):
    q = (
        session.query(Person.name, Person.id)
        .filter(Person.id == 1)
        .options(FromCache("default", "c"))
    )
    q.set_value([("someone", 99)])
    with sql.expect(0):
        assert [tuple(r) for r in q.all()] == [("someone", 99)]


def test_region_expire(cache_manager, session, sql):
    cache_manager.regions["default"]["expire"] = 1
    q = query(session)
    with sql.expect(1):
        q.all()
    with sql.expect(0):
        q.all()
    time.sleep(1.2)
    with sql.expect(1):
        q.all()
    with sql.expect(0):
        q.all()


def test_option_expire_overrides_region(cache_manager, session, sql):
    cache_manager.regions["default"]["expire"] = 3600
    q = session.query(Person).filter(Person.id == 9).options(FromCache("default", "e", expire=1))
    with sql.expect(1):
        q.all()
    time.sleep(1.2)
    with sql.expect(1):
        q.all()
    with sql.expect(0):
        q.all()


def test_with_cache_key(session, sql, Session):
    q = session.query(Person).filter(Person.id.in_([2, 3])).with_cache_key("u2andu3")
    with sql.expect(1):
        assert len(q.all()) == 2
    cache, key = q.cache_and_key()
    assert key == "u2andu3"
    with Session() as s, sql.expect(0):
        # the explicit key wins: a different query under the same key reads it
        assert len(s.query(Person).with_cache_key("u2andu3").all()) == 2
    with sql.expect(1):  # another namespace is another entry
        assert (
            len(
                session.query(Person)
                .filter(Person.id.in_([2, 3]))
                .with_cache_key("u2andu3", namespace="other")
                .all()
            )
            == 2
        )
