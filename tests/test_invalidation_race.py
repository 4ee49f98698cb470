"""The classic race: a reader's query runs before a writer's commit, and
its result is stored after the writer announced the commit.

Driven deterministically with two threads: the reader is held right after
its SELECT ran (before it reads or stores anything more) until the writer
has committed. The blog database is in WAL mode (see ``blog_template``),
so the reader's open cursor does not block the writer. The entry it then
stores recorded the versions read before its query, so it is never served:
the next read is a miss with the committed rows.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import create_engine, event, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

import caching_query
from caching_query import FromCache
from examples import blog
from examples.blog import User
from tests.conftest import SQLCounter


def bob(session: Session) -> str:
    query = select(User.name).where(User.id == 2).options(FromCache("default", "race"))
    return session.scalars(query).one()


def test_reader_storing_after_a_commit_leaves_no_stale_entry(
    blog_engine, cache_manager, monkeypatch
):
    Reader = sessionmaker(bind=blog_engine)  # noqa: N806
    caching_query.auto_invalidate(Reader)
    sql = SQLCounter(blog_engine)
    queried, committed = threading.Event(), threading.Event()

    def hold_reader(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if threading.current_thread().name == "reader" and statement.startswith("SELECT"):
            queried.set()  # the reader's query has run: old rows in hand
            assert committed.wait(30)

    event.listen(blog_engine, "after_cursor_execute", hold_reader)
    seen: list[str] = []

    def read() -> None:
        with Reader() as session:
            seen.append(bob(session))

    reader = threading.Thread(target=read, name="reader")
    reader.start()
    assert queried.wait(30)
    with Session(blog_engine) as writer:  # a plain session, in another thread
        writer.get(User, 2).name = "robert"
        writer.commit()
    committed.set()
    reader.join(30)
    event.remove(blog_engine, "after_cursor_execute", hold_reader)

    assert seen == ["bob"]  # read before the commit: right for its moment
    sql.reset()
    with Reader() as session:
        assert bob(session) == "robert"  # the stored entry was not served
    assert sql.count == 1
    with Reader() as session:
        assert bob(session) == "robert"
    assert sql.count == 1  # and the fresh result is cached
    sql.close()


def test_commit_between_versions_and_query_only_costs_a_miss(
    blog_engine, cache_manager, monkeypatch
):
    """The writer commits after the reader took the versions but before its
    query: the reader reads new rows, stores them under old versions, and the
    next read is a miss that returns the same new rows (never old ones)."""
    Reader = sessionmaker(bind=blog_engine)  # noqa: N806
    caching_query.auto_invalidate(Reader)
    from caching_query.invalidation import versions

    real = versions.Watch.before_query

    def then_commit(self: Any, current: Any) -> Any:
        tokens = real(self, current)
        with Session(blog_engine) as writer:
            writer.get(User, 2).name = "robert"
            writer.commit()
        monkeypatch.setattr(versions.Watch, "before_query", real)
        return tokens

    monkeypatch.setattr(versions.Watch, "before_query", then_commit)
    with Reader() as session:
        assert bob(session) == "robert"
    sql = SQLCounter(blog_engine)
    with Reader() as session:
        assert bob(session) == "robert"
    with Reader() as session:
        assert bob(session) == "robert"
    assert sql.count == 1
    sql.close()


@pytest.mark.server
def test_repeatable_read_snapshot_is_not_stored(postgres_server, cache_manager):
    """Under REPEATABLE READ a transaction reads the snapshot of its first
    statement: a miss after that may read rows older than the versions it
    took, so its result is served to that transaction but not stored."""
    engine = create_engine(postgres_server.url, poolclass=NullPool)
    blog.Base.metadata.drop_all(engine)
    blog.Base.metadata.create_all(engine)
    with Session(engine) as session:
        blog.seed(session)
    snapshots = engine.execution_options(isolation_level="REPEATABLE READ")
    Reader = sessionmaker(bind=snapshots)  # noqa: N806
    caching_query.auto_invalidate(Reader)
    with Reader() as session:
        session.execute(select(User.id)).all()  # the snapshot is taken here
        with Session(engine) as writer:
            writer.get(User, 2).name = "robert"
            writer.commit()
        assert bob(session) == "bob"  # what this transaction's snapshot holds
    sql = SQLCounter(engine)
    with Reader() as session:
        assert bob(session) == "robert"
    with Reader() as session:
        assert bob(session) == "robert"
    assert sql.count == 1  # a miss first: the snapshot's rows were not stored
    sql.close()
    engine.dispose()
