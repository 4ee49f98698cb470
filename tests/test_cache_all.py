"""The "cache every query" mode: what it caches, and what it never does.

Every test asserts the rows and the statements sent: a cached query sends
one statement on its first run and none on its second; one the mode must
not cache sends one every time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from beaker.cache import CacheManager
from sqlalchemy import Engine, func, literal, select, text
from sqlalchemy.orm import Session, sessionmaker

import caching_query
from caching_query import FromCache, NoCache, query_callable
from examples.blog import Post, User
from tests.conftest import SQLCounter


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.server)])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def Blog(blog_engine: Engine, cache_manager: CacheManager) -> sessionmaker[Session]:  # noqa: N802
    factory = sessionmaker(bind=blog_engine)
    caching_query.cache_all(factory, "default")
    return factory


def twice(
    factory: sessionmaker[Session], blog_sql: SQLCounter, read: Callable[[Session], Any]
) -> list[tuple[Any, int]]:
    """``read`` in two fresh sessions: what each returned and the statements it sent."""
    runs = []
    for _ in range(2):
        before = blog_sql.count
        with factory() as session:
            runs.append((read(session), blog_sql.count - before))
    return runs


def test_select_is_cached(Blog, blog_sql):
    read = lambda s: s.scalars(select(User.name).order_by(User.id)).all()
    assert twice(Blog, blog_sql, read) == [
        (["ann", "bob", "cat", "dan"], 1),
        (["ann", "bob", "cat", "dan"], 0),
    ]


def test_legacy_query_is_cached(Blog, blog_sql):
    read = lambda s: [p.title for p in s.query(Post).filter(Post.author_id == 2).order_by(Post.id)]
    assert twice(Blog, blog_sql, read) == [
        (["Bob on cheese", "Bob on bread"], 1),
        (["Bob on cheese", "Bob on bread"], 0),
    ]


def test_get_and_lazy_loads_are_cached(Blog, blog_sql):
    read = lambda s: [u.name for u in s.get(User, 4).following]
    assert twice(Blog, blog_sql, read) == [(["bob", "cat"], 2), (["bob", "cat"], 0)]


def test_counts_are_cached(Blog, blog_sql):
    read = lambda s: s.query(Post).count()
    assert twice(Blog, blog_sql, read) == [(4, 1), (4, 0)]


@pytest.mark.parametrize(
    "opt_out",
    [
        lambda q: q.options(NoCache()),
        lambda q: q.execution_options(cache=False),
    ],
    ids=["NoCache()", "cache=False"],
)
def test_a_query_opts_out(Blog, blog_sql, opt_out):
    read = lambda s: s.scalars(opt_out(select(User.name).where(User.id == 1))).all()
    assert twice(Blog, blog_sql, read) == [(["ann"], 1), (["ann"], 1)]


@pytest.mark.parametrize(
    "opt_out, second_run_sql",
    [
        (lambda q: q.options(NoCache()), 1),
        (lambda q: q.execution_options(cache=False), 1),
        (lambda q: q, 0),  # the control: the same query is cached
    ],
    ids=["NoCache()", "cache=False", "cached"],
)
def test_a_caching_query_opts_out(blog_engine, cache_manager, blog_sql, opt_out, second_run_sql):
    """The direct entrance sees a Query's own execution options, as the hook does."""
    factory = sessionmaker(bind=blog_engine, query_cls=query_callable(cache_manager))
    caching_query.cache_all(factory, "default")
    read = lambda s: [u.name for u in opt_out(s.query(User).filter(User.id == 1))]
    assert twice(factory, blog_sql, read) == [(["ann"], 1), (["ann"], second_run_sql)]


NEVER_CACHED = {
    "with_for_update": lambda: select(User.name).where(User.id == 1).with_for_update(),
    "func.now()": lambda: select(User.name, func.now()).where(User.id == 1),
    "current_timestamp": lambda: select(User.name, func.current_timestamp()).where(User.id == 1),
    "func.random()": lambda: select(User.name).where(User.id == 1).order_by(func.random()),
    "datetime('now')": lambda: select(User.name, func.datetime("now")).where(User.id == 1),
    "sql text naming tables": lambda: select(User.name).where(
        User.id.in_(text("SELECT id FROM user_account WHERE id = 1"))
    ),
    "explicit FromCache with_for_update": lambda: (
        select(User.name)
        .where(User.id == 1)
        .with_for_update()
        .options(FromCache("default", "explicit"))
    ),
}


@pytest.mark.parametrize("name", list(NEVER_CACHED))
def test_never_cached(Blog, blog_sql, name):
    read = lambda s: s.execute(NEVER_CACHED[name]()).scalars().first()
    assert twice(Blog, blog_sql, read) == [("ann", 1), ("ann", 1)]


def test_textual_statements_are_not_cached(Blog, blog_sql):
    read = lambda s: (
        s.scalars(select(User).from_statement(text("SELECT * FROM user_account WHERE id = 1")))
        .one()
        .name
    )
    assert twice(Blog, blog_sql, read) == [("ann", 1), ("ann", 1)]
    read = lambda s: s.execute(text("SELECT name FROM user_account WHERE id = 1")).scalar()
    assert twice(Blog, blog_sql, read) == [("ann", 1), ("ann", 1)]


def test_core_select_without_entities_runs_uncached(Blog, blog_sql):
    read = lambda s: s.execute(
        select(User.__table__.c.name).where(User.__table__.c.id == 1)
    ).scalar()
    assert twice(Blog, blog_sql, read) == [("ann", 1), ("ann", 1)]
    read = lambda s: s.execute(select(literal(1))).scalar()
    assert twice(Blog, blog_sql, read) == [(1, 1), (1, 1)]


def test_populate_existing_is_not_cached(Blog, blog_sql):
    read = lambda s: s.scalars(
        select(User.name).where(User.id == 1).execution_options(populate_existing=True)
    ).one()
    assert twice(Blog, blog_sql, read) == [("ann", 1), ("ann", 1)]


def test_transaction_that_wrote_reads_the_database(Blog, blog_sql):
    read = lambda s: s.scalars(select(User.name).where(User.id == 2)).one()
    assert twice(Blog, blog_sql, read)[1] == ("bob", 0)
    with Blog() as session:
        session.get(User, 2).name = "robert"
        session.flush()
        before = blog_sql.count
        assert read(session) == "robert"  # its own uncommitted write
        assert blog_sql.count - before == 1
        session.rollback()
    assert twice(Blog, blog_sql, read) == [("bob", 0), ("bob", 0)]


def test_commit_then_read_sees_it(Blog, blog_sql):
    read = lambda s: s.scalars(select(User.name).where(User.id == 2)).one()
    assert twice(Blog, blog_sql, read)[1] == ("bob", 0)
    with Blog() as session:
        session.get(User, 2).name = "robert"
        session.commit()
    assert twice(Blog, blog_sql, read) == [("robert", 1), ("robert", 0)]
