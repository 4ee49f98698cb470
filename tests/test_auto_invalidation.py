"""Automatic invalidation in one process, on every backend: for every kind of
write, a cached result is a hit before it, a miss right after its commit
(with the new rows), and a hit again after that.

Each case names a query and a write. The write runs in a session or on a
connection of its own, never the reader's; the reader's sessions are fresh
for every run, so only the cache can carry a result from one to the next.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from beaker.cache import CacheManager
from sqlalchemy import (
    Engine,
    select,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

import caching_query
from caching_query import FromCache, store
from caching_query.invalidation import versions
from examples.blog import Tag, User
from tests.conftest import SQLCounter
from tests.write_cases import (
    CASES,
    REGION,
    _rename_bob,
    _session_write,
    cached,
    fresh_rows,
    tag_names,
    users_named_bob,
)


@pytest.fixture
def Reader(blog_engine: Engine, cache_manager: CacheManager) -> sessionmaker[Session]:  # noqa: N802
    factory = sessionmaker(bind=blog_engine)
    caching_query.auto_invalidate(factory)
    return factory


@pytest.fixture
def Writer(blog_engine: Engine) -> sessionmaker[Session]:  # noqa: N802
    """Writes through a plain factory: no cache, no install() -- still seen."""
    return sessionmaker(bind=blog_engine)


def run(
    Reader: sessionmaker[Session], blog_sql: SQLCounter, query: Callable[[Session], Any]
) -> tuple[Any, int]:  # noqa: N803
    before = blog_sql.count
    with Reader() as session:
        rows = query(session)
    return rows, blog_sql.count - before


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_committed_write_invalidates(case, Reader, Writer, blog_engine, blog_sql):
    rows, miss_sql = run(Reader, blog_sql, case.query)
    assert miss_sql >= 1
    assert run(Reader, blog_sql, case.query) == (rows, 0)

    case.write(Writer, blog_engine)

    expected = fresh_rows(blog_engine, lambda s: case.query(s))  # a plain session: no cache
    assert expected != rows or case.name.startswith(("DDL", "unrecognised"))
    after, sql = run(Reader, blog_sql, case.query)
    assert after == expected
    assert sql >= 1, "served the entry cached before the write"
    assert run(Reader, blog_sql, case.query) == (expected, 0)


def test_unrelated_table_write_keeps_hit(Reader, Writer, blog_engine, blog_sql):
    rows, _ = run(Reader, blog_sql, users_named_bob)
    _session_write(lambda s: s.add(Tag(name="unrelated")))(Writer, blog_engine)
    assert run(Reader, blog_sql, users_named_bob) == (rows, 0)


def test_rollback_keeps_hit(Reader, Writer, blog_engine, blog_sql):
    rows, _ = run(Reader, blog_sql, users_named_bob)
    with Writer() as session:
        _rename_bob(session)
        session.flush()
        session.rollback()
    with blog_engine.connect() as connection:
        connection.execute(update(User.__table__).values(name=User.name + "x"))
        connection.rollback()
    assert run(Reader, blog_sql, users_named_bob) == (rows, 0)


def test_rolled_back_savepoint_keeps_hit(Reader, Writer, blog_engine, blog_sql):
    rows, _ = run(Reader, blog_sql, users_named_bob)
    with Writer() as session:
        session.add(Tag(name="kept"))
        with session.begin_nested() as savepoint:
            _rename_bob(session)
            session.flush()
            savepoint.rollback()
        session.commit()
    assert run(Reader, blog_sql, users_named_bob) == (rows, 0)
    assert run(Reader, blog_sql, tag_names)[1] == 1


def test_released_savepoint_waits_for_outer_commit(Reader, Writer, blog_engine, blog_sql):
    rows, _ = run(Reader, blog_sql, users_named_bob)
    for outcome in ("rollback", "commit"):
        with Writer() as session:
            session.add(Tag(name=f"before the savepoint, then {outcome}"))
            session.flush()  # pysqlite begins its transaction at the first write
            with session.begin_nested():
                _rename_bob(session)
            # released, not yet committed: other sessions still read the old rows
            assert run(Reader, blog_sql, users_named_bob) == (rows, 0)
            getattr(session, outcome)()
        if outcome == "rollback":
            assert run(Reader, blog_sql, users_named_bob) == (rows, 0)
    assert run(Reader, blog_sql, users_named_bob) == ([(2, "bobby")], 1)


def test_savepoint_as_first_statement_on_sqlite(Reader, Writer, blog_engine, blog_sql):
    """pysqlite: a SAVEPOINT opened before any write is the transaction, its RELEASE commits."""
    rows, _ = run(Reader, blog_sql, users_named_bob)
    with Writer() as session:
        with session.begin_nested():
            _rename_bob(session)
        session.rollback()  # too late: SQLite committed at the RELEASE
    assert fresh_rows(blog_engine, users_named_bob) == [(2, "bobby")]
    assert run(Reader, blog_sql, users_named_bob) == ([(2, "bobby")], 1)


def test_deleted_version_key_is_a_miss(Reader, blog_engine, blog_sql, cache_manager):
    rows, _ = run(Reader, blog_sql, users_named_bob)
    cache = caching_query.regions.get_cache(REGION, versions.VERSIONS_NAMESPACE, None)
    store.remove(cache, versions.version_key("user_account").decode())
    assert run(Reader, blog_sql, users_named_bob) == (rows, 1)
    assert run(Reader, blog_sql, users_named_bob) == (rows, 0)


def test_option_can_opt_out(Reader, Writer, blog_engine, blog_sql):
    def query(s: Session) -> Any:
        statement = select(User.name).where(User.id == 2)
        return s.scalars(statement.options(FromCache(REGION, "out", auto_invalidate=False))).all()

    assert run(Reader, blog_sql, query) == (["bob"], 1)
    _session_write(_rename_bob)(Writer, blog_engine)
    assert run(Reader, blog_sql, query) == (["bob"], 0)  # explicit invalidation only


def test_region_can_opt_out(blog_engine, cache_manager, blog_sql, Writer):
    cache_manager.regions["static"] = {"type": "memory"}
    factory = sessionmaker(bind=blog_engine)
    caching_query.auto_invalidate(factory, cache_manager, exclude_regions=["static"])

    def query(s: Session) -> Any:
        return s.scalars(select(User.name).where(User.id == 2).options(FromCache("static"))).all()

    assert run(factory, blog_sql, query) == (["bob"], 1)
    _session_write(_rename_bob)(Writer, blog_engine)
    assert run(factory, blog_sql, query) == (["bob"], 0)


def test_session_local_region_sees_own_flush(blog_engine, cache_manager, blog_sql):
    from sqlalchemy.orm import scoped_session

    scoped = scoped_session(sessionmaker(bind=blog_engine))
    cache_manager.regions["local"] = {"type": "ext:local_session", "scoped_session": scoped}
    caching_query.auto_invalidate(scoped, cache_manager)
    query = select(User.name).where(User.id == 2).options(FromCache("local"))
    session = scoped()
    try:
        with blog_sql.expect(1):
            assert session.scalars(query).all() == ["bob"]
        with blog_sql.expect(0):
            assert session.scalars(query).all() == ["bob"]
        session.get(User, 2).name = "bobby"
        session.flush()
        with blog_sql.expect(1):
            assert session.scalars(query).all() == ["bobby"]
    finally:
        scoped.remove()


def test_entry_without_versions_is_not_trusted(blog_engine, Reader, cache_manager, blog_sql):
    """An entry stored by a session without automatic invalidation may be stale."""
    plain = sessionmaker(bind=blog_engine)
    caching_query.install(plain)
    with plain() as session:
        session.scalars(cached(select(User).where(User.name.like("bob%")))).all()
    assert run(Reader, blog_sql, users_named_bob)[1] == 1
    assert run(Reader, blog_sql, users_named_bob)[1] == 0


def test_set_value_and_get_value_respect_versions(Reader, Writer, blog_engine, blog_sql):
    """An entry handed over with set_value() is invalidated by any later commit."""
    with Reader(query_cls=caching_query.CachingQuery) as session:
        query = session.query(User).filter(User.id == 2).options(FromCache(REGION, "handmade"))
        query.set_value([session.get(User, 2)])
        assert [u.name for u in query.get_value()] == ["bob"]
    _session_write(lambda s: s.add(Tag(name="any write")))(Writer, blog_engine)
    with Reader(query_cls=caching_query.CachingQuery) as session:
        query = session.query(User).filter(User.id == 2).options(FromCache(REGION, "handmade"))
        with pytest.raises(KeyError):
            query.get_value()
        with blog_sql.expect(1):
            assert [u.name for u in query.all()] == ["bob"]
        with blog_sql.expect(0):
            assert [u.name for u in query.get_value()] == ["bob"]
