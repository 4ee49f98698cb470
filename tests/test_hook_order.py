"""Other ``do_orm_execute`` hooks: what they do must be what gets cached.

A hook running after the cache hook may change the statement (a global
``with_loader_criteria``) or run it itself (horizontal sharding). Shared
regions are bypassed while such a hook follows, with a warning; calling
``install()`` again puts the cache hook behind it, and then its results are
cached as it shaped them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from beaker.cache import CacheManager
from sqlalchemy import String, create_engine, event, select
from sqlalchemy.ext.horizontal_shard import ShardedSession
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    sessionmaker,
    with_loader_criteria,
)
from sqlalchemy.pool import StaticPool

from caching_query import FromCache, core, install
from tests.conftest import SQLCounter


class Base(DeclarativeBase):
    pass


class Member(Base):
    __tablename__ = "member"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


def _engine(rows: list[tuple[int, str]]):
    engine = create_engine("sqlite://", poolclass=StaticPool)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all([Member(id=i, name=n) for i, n in rows])
        session.commit()
    return engine


@pytest.fixture
def manager(cache_manager: CacheManager, monkeypatch: pytest.MonkeyPatch) -> CacheManager:
    monkeypatch.setattr(core, "_warned_hooks", set())  # warned once per process
    return cache_manager


@pytest.fixture
def db() -> Iterator[tuple[sessionmaker[Session], SQLCounter]]:
    engine = _engine([(1, "one"), (2, "two"), (3, "three")])
    counter = SQLCounter(engine)
    yield sessionmaker(engine), counter
    counter.close()


def _hide_first(state):
    if state.is_select:
        state.statement = state.statement.options(
            with_loader_criteria(Member, Member.id != 1, include_aliases=True)
        )


def _ids(session: Session, *options) -> list[int]:
    statement = select(Member).order_by(Member.id).options(*options)
    return [m.id for m in session.scalars(statement)]


def test_hook_after_the_cache_hook_bypasses_shared_regions(db, manager, caplog):
    maker, sql = db
    install(maker, manager)
    event.listen(maker, "do_orm_execute", _hide_first)
    with maker() as s:
        expected = _ids(s)
    with caplog.at_level(logging.WARNING, logger="caching_query"):
        for _ in range(2):
            with maker() as s, sql.expect(1):
                assert _ids(s, FromCache("default", "ordered")) == expected == [2, 3]
    assert "_hide_first" in caplog.text and "install()" in caplog.text


def test_installing_again_caches_what_the_hook_shaped(db, manager):
    maker, sql = db
    install(maker, manager)
    event.listen(maker, "do_orm_execute", _hide_first)
    install(maker)  # the cache hook now runs last
    with maker() as s, sql.expect(1):
        assert _ids(s, FromCache("default", "shaped")) == [2, 3]
    with maker() as s, sql.expect(0):
        assert _ids(s, FromCache("default", "shaped")) == [2, 3]


def test_sharded_session_reads_every_shard(manager, caplog):
    shards = {"east": _engine([(1, "east one")]), "west": _engine([(2, "west two")])}
    maker = sessionmaker(
        class_=ShardedSession,
        shards=shards,
        shard_chooser=lambda *args, **kw: "east",
        identity_chooser=lambda *args, **kw: ["east", "west"],
        execute_chooser=lambda context: ["east", "west"],
    )
    install(maker, manager)

    def loaded(session: Session, *options) -> list[tuple[int, str]]:
        people = session.scalars(select(Member).options(*options))
        return sorted((m.id, session.identity_key(instance=m)[2]) for m in people)

    with maker() as s:
        expected = loaded(s)
    with caplog.at_level(logging.WARNING, logger="caching_query"), maker() as s:
        assert loaded(s, FromCache("default", "sharded")) == expected
    assert expected == [(1, "east"), (2, "west")]
    assert "shared cache regions are bypassed" in caplog.text
