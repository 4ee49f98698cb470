"""Changing a loaded object's value in place never changes the cached entry.

A memory region hands out the very rows it holds; a JSON dict or a
pickled list in them would otherwise be shared by every object built from
the entry, and an in-place change made in one session would show up in
every later hit.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import JSON, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker
from sqlalchemy.orm import Session as OrmSession

from caching_query import FromCache
from tests.conftest import SQLCounter


class Base(DeclarativeBase):
    pass


class Document(Base):
    __tablename__ = "document"

    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SimpleNamespace]:
    engine = create_engine(f"sqlite:///{tmp_path / 'mutable.db'}")
    Base.metadata.create_all(engine)
    with OrmSession(engine) as session:
        session.add_all([Document(id=1, body={"tags": ["a"]}), Document(id=2, body={"tags": []})])
        session.commit()
    counter = SQLCounter(engine)
    yield SimpleNamespace(engine=engine, sql=counter)
    counter.close()
    engine.dispose()


@pytest.fixture
def S(Session: sessionmaker[OrmSession], db: SimpleNamespace) -> sessionmaker[OrmSession]:  # noqa: N802
    Session.configure(bind=db.engine)
    return Session


def documents(session: OrmSession) -> list[Document]:
    query = session.query(Document).order_by(Document.id)
    return query.options(FromCache("default", "documents")).all()


def test_in_place_change_after_a_miss_does_not_reach_the_entry(S, db):  # noqa: N803
    with S() as s, db.sql.expect(1):
        documents(s)[0].body["tags"].append("changed in place")
    with S() as s, db.sql.expect(0):
        assert [d.body for d in documents(s)] == [{"tags": ["a"]}, {"tags": []}]


def test_in_place_change_after_a_hit_does_not_reach_the_entry(S, db):  # noqa: N803
    with S() as s:
        documents(s)
    with S() as s, db.sql.expect(0):
        documents(s)[1].body["tags"].append("changed in place")
    with S() as s, db.sql.expect(0):
        assert [d.body for d in documents(s)] == [{"tags": ["a"]}, {"tags": []}]
