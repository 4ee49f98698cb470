"""The direct entrance: a cached legacy Query served without ``Session.execute``.

Each test checks results and SQL counts; ``calls`` counts the session's
``execute`` calls, which is how a test tells the direct entrance (none on a
hit) from the hook path (one per fetch).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from beaker.cache import CacheManager
from sqlalchemy import event, update
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import scoped_session, selectinload, sessionmaker

import caching_query
from caching_query import CachingQuery, FromCache, RelationshipCache, query_callable
from caching_query.exc import CacheOptionError
from examples.model import Person
from tests.servers import Server, _serve, find_binary, redis_process

# the conftest's CQ_LEGACY_PATH=hook leaves this module on the direct path
CHOOSES_ITS_PATH = True


class Calls:
    """Counts ``Session.execute`` calls of every session of a factory."""

    def __init__(self) -> None:
        self.count = 0

    def watch(self, session: OrmSession) -> OrmSession:
        execute = session.execute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return execute(*args, **kwargs)

        session.execute = counted  # type: ignore[method-assign]
        return session


@pytest.fixture
def calls() -> Calls:
    return Calls()


def _people(session: OrmSession, namespace: str = "people", **option: Any) -> Any:
    return (
        session.query(Person)
        .filter(Person.id.between(3, 6))
        .order_by(Person.id)
        .options(FromCache("default", namespace, **option))
    )


def test_hit_emits_no_sql_and_skips_session_execute(Session, sql, calls):
    with Session() as s, sql.expect(1):
        first = [p.name for p in _people(calls.watch(s)).all()]
    assert calls.count == 0  # the miss ran through the core, not Session.execute
    with Session() as s, sql.expect(0):
        second = [p.name for p in _people(calls.watch(s)).all()]
    assert first == second == [f"person {n:02d}" for n in range(3, 7)]
    assert calls.count == 0


@pytest.mark.parametrize(
    "fetch, expected",
    [
        pytest.param(lambda q: [p.id for p in q], [3, 4, 5, 6], id="iter"),
        pytest.param(lambda q: [q.first().id], [3], id="first"),
        pytest.param(lambda q: [q.filter(Person.id == 4).one().id], [4], id="one"),
        pytest.param(lambda q: [q.filter(Person.id == 99).one_or_none()], [None], id="one_or_none"),
        pytest.param(
            lambda q: [q.with_entities(Person.name).filter(Person.id == 5).scalar()],
            ["person 05"],
            id="scalar",
        ),
        pytest.param(lambda q: [p.id for p in q[1:3]], [4, 5], id="slice"),
        pytest.param(lambda q: [q.count()], [4], id="count"),
        pytest.param(
            lambda q: [tuple(r) for r in q.with_entities(Person.id, Person.name)],
            [(n, f"person {n:02d}") for n in range(3, 7)],
            id="columns",
        ),
    ],
)
def test_every_fetch_hits_directly(Session, sql, calls, fetch, expected):
    with Session() as s, sql.expect(1):
        assert fetch(_people(calls.watch(s))) == expected
    with Session() as s, sql.expect(0):
        assert fetch(_people(calls.watch(s))) == expected
    assert calls.count == 0


def test_direct_and_hook_paths_share_one_entry(Session, sql, calls, monkeypatch):
    """The entry a hit reads directly is the one the hook path and cache_and_key() name."""

    def through_the_hook(session: OrmSession) -> list[int]:
        with monkeypatch.context() as patched:
            patched.setattr(CachingQuery, "_fetch_directly", lambda query: None)
            return [p.id for p in _people(calls.watch(session))]

    with Session() as s, sql.expect(1):
        assert through_the_hook(s) == [3, 4, 5, 6]
    assert calls.count == 1
    with Session() as s, sql.expect(0):
        assert [p.id for p in _people(calls.watch(s))] == [3, 4, 5, 6]
    assert calls.count == 1  # read directly
    with Session() as s:
        cache, key = _people(s).cache_and_key()
        assert cache.get(key) is not None
        _people(s).invalidate()
    with Session() as s, sql.expect(1):
        assert [p.id for p in _people(calls.watch(s))] == [3, 4, 5, 6]
    assert calls.count == 1  # stored directly
    with Session() as s, sql.expect(0):
        assert through_the_hook(s) == [3, 4, 5, 6]
    assert calls.count == 2


def test_identity_map_wins_and_objects_belong_to_the_session(Session, sql):
    with Session() as s:
        _people(s).all()
    with Session() as s:
        held = s.get(Person, 4)
        with sql.expect(0):
            hit = _people(s).all()
        assert hit[1] is held
        assert all(p in s for p in hit)
        with sql.expect(0):
            assert [p.name for p in hit] == [f"person {n:02d}" for n in range(3, 7)]
    with Session() as a, Session() as b, sql.expect(0):
        assert not set(map(id, _people(a).all())) & set(map(id, _people(b).all()))


def test_pending_changes_bypass_once(writable_engine, cache_manager, calls):
    factory = sessionmaker(bind=writable_engine, query_cls=CachingQuery)
    caching_query.reset_statistics()
    with factory() as s:
        _people(s).all()
    with factory() as s:
        calls.watch(s)
        s.get(Person, 4).name = "renamed"
        assert [p.name for p in _people(s).all()][1] == "renamed"  # autoflushed, run uncached
        assert calls.count == 2  # get() and the bypassed query, both via Session.execute
        s.rollback()
    figures = caching_query.statistics()[("default", "people")]
    assert figures.bypassed["uncommitted"] == 1
    assert figures.hits == 0 and figures.misses == 1


def test_other_hooks_take_session_execute(Session, sql, calls):
    seen: list[Any] = []
    with Session() as s:
        _people(s).all()

    class Hooked(OrmSession):
        pass

    def spy(state: Any) -> None:
        seen.append(state.statement)

    event.listen(Hooked, "do_orm_execute", spy)
    factory = sessionmaker(bind=Session.kw["bind"], class_=Hooked, query_cls=CachingQuery)
    caching_query.install(factory)  # the cache hook behind the spy: results still cached
    with factory() as s, sql.expect(0):
        assert [p.id for p in _people(calls.watch(s))] == [3, 4, 5, 6]
    assert calls.count == 1 and len(seen) == 1


def test_relationship_cache_only_leaves_nested_loads_to_the_hook(Session, sql):
    def query(s: OrmSession) -> Any:
        return (
            s.query(Person)
            .filter(Person.id.between(3, 4))
            .order_by(Person.id)
            .options(
                selectinload(Person.addresses),
                RelationshipCache("default", "addr", Person.addresses),
            )
        )

    with Session() as s, sql.expect(2):
        first = [[a.street for a in p.addresses] for p in query(s)]
    with Session() as s, sql.expect(1):  # the people run, their addresses are a hit
        assert [[a.street for a in p.addresses] for p in query(s)] == first
    assert first and all(first)


def test_clear_and_expiry_are_seen(Session, sql):
    with Session() as s, sql.expect(1):
        _people(s, expire=1).all()
    caching_query.clear("default", "people")
    with Session() as s, sql.expect(1):
        _people(s, expire=1).all()
    with Session() as s, sql.expect(0):
        _people(s, expire=1).all()
    time.sleep(1.6)
    with Session() as s, sql.expect(1):
        _people(s, expire=1).all()


def test_committed_write_invalidates_automatically(writable_engine, cache_manager, calls):
    factory = sessionmaker(bind=writable_engine, query_cls=CachingQuery)
    caching_query.auto_invalidate(factory)
    with factory() as s:
        _people(s).all()
    with factory() as s:
        s.execute(update(Person).where(Person.id == 5).values(name="five"))
        s.commit()
    counter = _counter(writable_engine)
    with factory() as s:
        assert [p.name for p in _people(calls.watch(s))][2] == "five"
    assert len(counter) == 1 and calls.count == 0
    with factory() as s:
        assert [p.name for p in _people(s)][2] == "five"
    assert len(counter) == 1


def _counter(engine: Any) -> list[str]:
    sent: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: sent.append(args[2]))
    return sent


def test_yield_per_is_refused(Session):
    with Session() as s, pytest.raises(CacheOptionError, match="yield_per"):
        _people(s).yield_per(2).all()


def test_populate_existing_refreshes_through_the_cache(Session, sql):
    with Session() as s:
        _people(s).all()
    with Session() as s:
        held = s.get(Person, 4)
        s.expire(held)
        with sql.expect(0):
            hit = _people(s).populate_existing().all()
        assert hit[1] is held and held.name == "person 04"


def test_query_callable_manager_is_used(engine, sql, tmp_path):
    manager = CacheManager(cache_regions={"own": {"type": "file", "data_dir": str(tmp_path)}})
    factory = sessionmaker(bind=engine, query_cls=query_callable(manager))
    for expected in (1, 0):
        with factory() as s, sql.expect(expected):
            q = s.query(Person).filter(Person.id == 7).options(FromCache("own", "one"))
            assert [p.name for p in q] == ["person 07"]


@pytest.fixture
def private_redis() -> Iterator[Server]:
    """A Redis of this test's own, which it may stop."""
    server = redis_process(find_binary("redis-server", "redis-server"), "redis-direct")
    yield from _serve(server, server.start)


@pytest.mark.server
def test_outage_answers_from_the_database(engine, sql, private_redis, caplog):
    server = private_redis
    manager = CacheManager(
        cache_regions={"r": {"type": "ext:redis", "url": server.url, "retry_seconds": 60}}
    )
    factory = sessionmaker(bind=engine, query_cls=query_callable(manager))

    def run() -> list[str]:
        with factory() as s:
            q = s.query(Person).filter(Person.id == 8).options(FromCache("r", "one"))
            return [p.name for p in q]

    with sql.expect(1):
        assert run() == ["person 08"]
    with sql.expect(0):
        assert run() == ["person 08"]
    server.stop()
    with caplog.at_level(logging.WARNING, "caching_query"), sql.expect(2):
        assert run() == run() == ["person 08"]


@pytest.fixture
def local_factory(engine: Any) -> Iterator[Any]:
    scoped = scoped_session(sessionmaker(bind=engine, query_cls=CachingQuery))
    manager = CacheManager(
        cache_regions={"local": {"type": "ext:local_session", "scoped_session": scoped}}
    )
    yield scoped, manager
    scoped.remove()


def test_session_local_region_keeps_identity(local_factory, sql):
    scoped, manager = local_factory
    option = FromCache("local", "mine").bound_to(manager)
    with sql.expect(1):
        first = scoped.query(Person).filter(Person.id == 9).options(option).all()
    with sql.expect(0):
        again = scoped.query(Person).filter(Person.id == 9).options(option).all()
    assert first[0] is again[0] and first[0].name == "person 09"
