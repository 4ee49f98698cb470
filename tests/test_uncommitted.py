"""A session with uncommitted changes neither reads nor writes shared regions.

Documented policy: pending objects, or any flush in the current
transaction, make cached queries go to the database; caching resumes
after commit or rollback.
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from caching_query import CachingQuery, FromCache
from examples.model import Person
from tests.conftest import SQLCounter


def names(session):
    q = session.query(Person).filter(Person.id < 4).order_by(Person.id)
    return [p.name for p in q.options(FromCache("default", "uncommitted"))]


def test_flushed_changes_are_not_published(writable_engine, cache_manager):
    Session = sessionmaker(bind=writable_engine, query_cls=CachingQuery)
    sql = SQLCounter(writable_engine)
    writer = Session()
    writer.get(Person, 1).name = "renamed"
    writer.flush()
    with sql.expect(1):
        assert names(writer)[0] == "renamed"  # sees its own write
    with Session() as other, sql.expect(1):
        assert names(other)[0] == "person 01"  # nothing uncommitted was cached
    with Session() as other, sql.expect(0):
        assert names(other)[0] == "person 01"
    with sql.expect(1):
        assert names(writer)[0] == "renamed"  # not handed the stale entry
    writer.rollback()
    with sql.expect(0):
        assert names(writer)[0] == "person 01"  # clean again: cache in use
    writer.close()


def test_pending_changes_bypass_before_autoflush(writable_engine, cache_manager):
    Session = sessionmaker(bind=writable_engine, query_cls=CachingQuery)
    sql = SQLCounter(writable_engine)
    with Session() as warm:
        names(warm)
    with Session() as s:
        s.add(Person("person 00"))
        with sql.expect(2):  # autoflush INSERT + the query itself
            names(s)
        s.commit()
    with Session() as s, sql.expect(0):
        assert names(s) == ["person 01", "person 02", "person 03"]


def test_committed_changes_need_invalidation(writable_engine, cache_manager):
    Session = sessionmaker(bind=writable_engine, query_cls=CachingQuery)
    sql = SQLCounter(writable_engine)
    with Session() as s:
        names(s)
        s.get(Person, 2).name = "changed"
        s.commit()
    with Session() as s, sql.expect(0):
        assert names(s)[1] == "person 02"  # the cache says what it was told
        q = (
            s.query(Person)
            .filter(Person.id < 4)
            .order_by(Person.id)
            .options(FromCache("default", "uncommitted"))
        )
        q.invalidate()
    with Session() as s, sql.expect(1):
        assert names(s)[1] == "changed"


def test_flush_before_the_first_cached_query_of_a_fresh_session_class(
    writable_engine, cache_manager
):
    Session = sessionmaker(bind=writable_engine, query_cls=CachingQuery)
    sql = SQLCounter(writable_engine)
    writer = Session()
    writer.add(Person("zz new"))
    writer.flush()
    with sql.expect(1):
        names(writer)
    with Session() as other, sql.expect(1):
        names(other)
    writer.rollback()
    writer.close()


def test_orm_and_text_dml_mark_the_transaction(writable_engine, cache_manager):
    from sqlalchemy import text, update

    from caching_query import install

    Session = sessionmaker(bind=writable_engine, query_cls=CachingQuery)
    install(Session)
    sql = SQLCounter(writable_engine)
    with Session() as warm:
        names(warm)
    for dml in (
        update(Person).where(Person.id == 1).values(name="bulk"),
        text("UPDATE person SET name = 'text' WHERE id = 1"),
    ):
        with Session() as s:
            s.execute(dml)
            with sql.expect(1):
                assert names(s)[0] in ("bulk", "text")
            s.rollback()
            with sql.expect(0):
                assert names(s)[0] == "person 01"


def test_dml_marking_does_not_resolve_the_bind_early(writable_engine, cache_manager):
    """SQLAlchemy resolves the bind of an ORM UPDATE once; the hook must not add a call."""
    from sqlalchemy import update

    from caching_query import install

    class CountingSession(Session):
        binds: list[str] = []

        def get_bind(self, *args, **kwargs):
            CountingSession.binds.append("bind")
            return super().get_bind(*args, **kwargs)

    def bind_calls(factory):
        CountingSession.binds = []
        with factory() as s:
            s.execute(update(Person).where(Person.id == 1).values(name="x"))
            s.rollback()
        return len(CountingSession.binds)

    plain = bind_calls(sessionmaker(bind=writable_engine, class_=CountingSession))
    hooked = sessionmaker(bind=writable_engine, class_=CountingSession, query_cls=CachingQuery)
    install(hooked)
    assert bind_calls(hooked) == plain


def test_direct_session_does_not_hook_every_session(writable_engine, cache_manager):
    from sqlalchemy import event

    from caching_query import core

    with Session(writable_engine, query_cls=CachingQuery) as s:
        names(s)
        assert event.contains(s, "do_orm_execute", core._on_do_orm_execute)
    assert not event.contains(Session, "do_orm_execute", core._on_do_orm_execute)
    sql = SQLCounter(writable_engine)
    with Session(writable_engine, query_cls=CachingQuery) as s, sql.expect(0):
        names(s)  # a second direct session still serves from the cache
