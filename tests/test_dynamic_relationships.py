"""``lazy="dynamic"`` relationships with ``CachingQuery`` as the session's query class.

SQLAlchemy builds a dynamic relationship's queries with the session's query
class (or, with ``relationship(query_class=...)``, with a subclass of that
class mixing in its appender): appending, filtering, counting keep working,
and a ``FromCache`` on such a query caches it per parent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from beaker.cache import CacheManager
from sqlalchemy import ForeignKey, create_engine
from sqlalchemy.orm import (
    DeclarativeBase,
    DynamicMapped,
    Mapped,
    Session,
    mapped_column,
    relationship,
    sessionmaker,
)

import caching_query
from caching_query import CachingQuery, FromCache
from tests.conftest import SQLCounter

CHILDREN = FromCache("default", "children")


class Base(DeclarativeBase):
    pass


class Parent(Base):
    __tablename__ = "dyn_parent"
    id: Mapped[int] = mapped_column(primary_key=True)
    # the session's query class builds these queries
    children: DynamicMapped[Child] = relationship(lazy="dynamic", order_by="Child.id")
    # a subclass of CachingQuery mixing in the appender
    kids: DynamicMapped[Child] = relationship(
        lazy="dynamic", order_by="Child.id", query_class=CachingQuery, viewonly=True
    )


class Child(Base):
    __tablename__ = "dyn_child"
    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("dyn_parent.id"))
    name: Mapped[str]


@pytest.fixture(params=["memory", "file"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=["children", "kids"])
def relation(request: pytest.FixtureRequest) -> str:
    """The relationship without and with ``query_class=CachingQuery``."""
    return request.param


@pytest.fixture
def factory(tmp_path: Path, cache_manager: CacheManager) -> Iterator[Any]:
    engine = create_engine(f"sqlite:///{tmp_path / 'dynamic.db'}")
    Base.metadata.create_all(engine)
    Session = sessionmaker(bind=engine, query_cls=CachingQuery)  # noqa: N806
    caching_query.auto_invalidate(Session, cache_manager)
    with Session() as session:
        for parent_id, names in ((1, ["a", "b", "c"]), (2, ["d"])):
            parent = Parent(id=parent_id)
            session.add(parent)
            for name in names:
                parent.children.append(Child(name=name))
        session.commit()
    Session.sql = SQLCounter(engine)
    caching_query.reset_statistics()
    yield Session
    Session.sql.close()
    engine.dispose()


def names(children: Any) -> list[str]:
    return [child.name for child in children]


def test_the_queries_are_caching_queries(factory, relation):
    with factory() as session:
        query = getattr(session.get(Parent, 1), relation)
        assert isinstance(query.filter(Child.name != ""), CachingQuery)
        if relation == "kids":
            assert isinstance(query, CachingQuery)


def test_append_to_a_transient_and_a_persistent_parent(factory):
    parent = Parent(id=3)
    parent.children.append(Child(name="x"))
    assert names(parent.children) == ["x"]  # no session: the pending items
    assert parent.children.count() == 1
    with factory() as session:
        session.add(parent)
        parent.children.append(Child(name="y"))
        # uncommitted changes: the cache is bypassed (autoflush, then SQL)
        assert names(parent.children.options(CHILDREN)) == ["x", "y"]
        session.commit()
    for expected in (2, 0):  # a fresh session: the parent, then its children
        with factory() as session, factory.sql.expect(expected):
            parent = session.get(Parent, 3, options=[FromCache("default", "parents")])
            assert names(parent.children.options(CHILDREN)) == ["x", "y"]


def test_filter_count_and_cache_per_parent(factory, relation):
    def read(session: Session, parent_id: int) -> tuple[list[str], int, list[str]]:
        query = getattr(session.get(Parent, parent_id), relation)
        return (
            names(query.options(CHILDREN)),
            query.options(CHILDREN).count(),
            names(query.filter(Child.name > "a").options(CHILDREN)),
        )

    with factory() as session:
        kept = session.get(Parent, 1), session.get(Parent, 2)  # identity map: no SQL below
        with factory.sql.expect(6):
            assert read(session, 1) == (["a", "b", "c"], 3, ["b", "c"])
            assert read(session, 2) == (["d"], 1, ["d"])
    with factory() as session:
        kept = session.get(Parent, 1), session.get(Parent, 2)
        with factory.sql.expect(0):
            assert read(session, 1) == (["a", "b", "c"], 3, ["b", "c"])
            assert read(session, 2) == (["d"], 1, ["d"])
        assert len(kept) == 2
    stats = caching_query.statistics()[("default", "children")]
    assert (stats.stores, stats.hits) == (6, 6)


def test_an_appended_child_invalidates_the_cached_queries(factory, relation):
    def read() -> tuple[list[str], int]:
        with factory() as session:
            query = getattr(session.get(Parent, 1), relation).options(CHILDREN)
            return names(query), query.count()

    assert read() == (["a", "b", "c"], 3)
    with factory() as session:
        session.get(Parent, 1).children.append(Child(name="e"))
        session.commit()
    with factory.sql.expect(3):  # the parent, the children, the count
        assert read() == (["a", "b", "c", "e"], 4)
    with factory.sql.expect(1):  # the parent (not cached here)
        assert read() == (["a", "b", "c", "e"], 4)
