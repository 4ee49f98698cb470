"""Flask-SQLAlchemy 3.1 with ``FlaskCachingQuery``: its helpers, cached.

Each test builds its own ``SQLAlchemy`` extension and models (so that
switching automatic invalidation on for one test's ``db.session`` does not
leak into the next) and runs every "request" in an application context of
its own: Flask-SQLAlchemy scopes ``db.session`` to it, so each has a new
session, removed at teardown, as in a real request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import flask_sqlalchemy.query
import pytest
from beaker.cache import CacheManager
from flask import Flask
from sqlalchemy import ForeignKey, func, select
from sqlalchemy.orm import DeclarativeBase, DynamicMapped, Mapped, lazyload, mapped_column
from werkzeug.exceptions import NotFound

import caching_query
from caching_query import CacheOptionError, CachingQuery, FromCache, core, wrapped
from caching_query.flask_sqlalchemy_support import FlaskCachingQuery
from tests.conftest import SQLCounter

BOOKS = FromCache("default", "books")
SHELF_SIZES = {"fiction": 12, "poetry": 3, "empty": 0}


@pytest.fixture(params=["memory", "file"])
def backend(request: pytest.FixtureRequest) -> str:
    """Memory (rows kept as objects of the process) and file (rows pickled)."""
    return request.param


def make_models() -> SimpleNamespace:
    """A fresh extension with shelves and their books (a dynamic relationship)."""

    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(model_class=Base, query_class=FlaskCachingQuery)

    class Shelf(db.Model):  # type: ignore[name-defined,misc]
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]
        books: DynamicMapped[Book] = db.relationship(lazy="dynamic", order_by="Book.id")

    class Book(db.Model):  # type: ignore[name-defined,misc]
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]
        shelf_id: Mapped[int] = mapped_column(ForeignKey("shelf.id"))

    return SimpleNamespace(db=db, Shelf=Shelf, Book=Book)


SQLAlchemy = flask_sqlalchemy.SQLAlchemy


@pytest.fixture
def fsa(tmp_path: Path, cache_manager: CacheManager) -> Iterator[SimpleNamespace]:
    """Models, app, ``request()`` (runs a function in a context of its own) and ``sql``."""
    m = make_models()
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'fsa.db'}"
    m.db.init_app(app)
    caching_query.install(m.db.session, cache_manager)
    with app.app_context():
        m.db.create_all()
        for name, size in SHELF_SIZES.items():
            shelf = m.Shelf(name=name)
            m.db.session.add(shelf)
            for number in range(1, size + 1):
                shelf.books.append(m.Book(title=f"{name} {number}"))
        m.db.session.commit()
        engine = m.db.engine

    def request(fn: Callable[[], Any]) -> Any:
        with app.app_context():
            return fn()

    m.app, m.request, m.manager = app, request, cache_manager
    m.sql = SQLCounter(engine)
    caching_query.reset_statistics()
    yield m
    m.sql.close()
    engine.dispose()


def twice(m: SimpleNamespace, fn: Callable[[], Any], first_sql: int) -> Any:
    """``fn`` in two requests: ``first_sql`` statements, then none; the same answer."""
    with m.sql.expect(first_sql):
        first = m.request(fn)
    with m.sql.expect(0):
        again = m.request(fn)
    assert again == first
    return first


def stats(namespace: str = "books") -> Any:
    return caching_query.statistics()[("default", namespace)]


def page_of(pagination: Any) -> tuple[Any, ...]:
    return (pagination.page, pagination.total, [book.title for book in pagination.items])


# -- the query class --------------------------------------------------------


def test_the_query_class_is_both(fsa):
    assert issubclass(FlaskCachingQuery, CachingQuery)
    assert issubclass(FlaskCachingQuery, flask_sqlalchemy.query.Query)

    def classes():
        shelf = fsa.Shelf.query.filter_by(name="poetry").one()
        return type(fsa.Book.query), type(shelf.books), type(shelf.books.filter_by(id=1))

    query_class, dynamic_class, generated_class = fsa.request(classes)
    assert query_class is FlaskCachingQuery
    # db.relationship gives dynamic relationships the extension's query class
    assert issubclass(dynamic_class, FlaskCachingQuery)
    assert issubclass(generated_class, FlaskCachingQuery)


# -- legacy Query helpers ---------------------------------------------------


# Flask-SQLAlchemy's Query.get_or_404() calls the legacy Query.get()
@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.LegacyAPIWarning")
def test_query_get_or_404(fsa):
    title = twice(fsa, lambda: fsa.Book.query.options(BOOKS).get_or_404(3).title, 1)
    assert title == "fiction 3"
    for _ in range(2):
        with pytest.raises(NotFound):
            fsa.request(lambda: fsa.Book.query.options(BOOKS).get_or_404(999))


def test_query_first_or_404_and_one_or_404(fsa):
    def first() -> str:
        query = fsa.Book.query.options(BOOKS).filter(fsa.Book.title.like("poetry%"))
        return query.order_by(fsa.Book.id.desc()).first_or_404().title

    def one() -> str:
        return fsa.Book.query.options(BOOKS).filter_by(title="poetry 2").one_or_404().title

    assert twice(fsa, first, 1) == "poetry 3"
    assert twice(fsa, one, 1) == "poetry 2"
    with pytest.raises(NotFound):  # no row
        fsa.request(lambda: fsa.Book.query.options(BOOKS).filter_by(title="x").first_or_404())
    with pytest.raises(NotFound):  # two rows
        fsa.request(lambda: fsa.Book.query.options(BOOKS).filter(fsa.Book.id < 3).one_or_404())


def test_query_paginate_caches_the_page_and_the_count(fsa):
    def page(number: int) -> Callable[[], Any]:
        def read() -> Any:
            query = fsa.Book.query.options(BOOKS).order_by(fsa.Book.id)
            return page_of(query.paginate(page=number, per_page=5))

        return read

    assert twice(fsa, page(2), 2) == (2, 15, [f"fiction {n}" for n in range(6, 11)])
    # the page and the COUNT are two entries
    assert (stats().misses, stats().stores, stats().hits) == (2, 2, 2)
    # another page: its rows only; the count is the same statement
    last = ["fiction 11", "fiction 12", "poetry 1", "poetry 2", "poetry 3"]
    assert twice(fsa, page(3), 1) == (3, 15, last)
    assert stats().stores == 3


def test_query_paginate_refuses_an_explicit_key(fsa):
    def paginate() -> Any:
        return fsa.Book.query.with_cache_key("all_books").paginate(page=1, per_page=5)

    with pytest.raises(CacheOptionError, match="explicit cache_key would be shared"):
        fsa.request(paginate)


def test_query_paginate_without_a_cache_option_runs_both(fsa):
    def page() -> Any:
        return page_of(fsa.Book.query.order_by(fsa.Book.id).paginate(page=1, per_page=5))

    with fsa.sql.expect(2):
        first = fsa.request(page)
    with fsa.sql.expect(2):
        assert fsa.request(page) == first


# -- the extension's own helpers --------------------------------------------


def test_db_get_or_404_with_options(fsa):
    db = fsa.db
    title = twice(fsa, lambda: db.get_or_404(fsa.Book, 4, options=[BOOKS]).title, 1)
    assert title == "fiction 4"
    # a missing row is a cached (empty) result too: a 404 without SQL
    with fsa.sql.expect(1), pytest.raises(NotFound):
        fsa.request(lambda: db.get_or_404(fsa.Book, 999, options=[BOOKS]))
    with fsa.sql.expect(0), pytest.raises(NotFound):
        fsa.request(lambda: db.get_or_404(fsa.Book, 999, options=[BOOKS]))


def test_db_first_or_404_and_one_or_404(fsa):
    db, book = fsa.db, fsa.Book

    def first() -> str:
        return db.first_or_404(select(book).options(BOOKS).order_by(book.id.desc())).title

    def one() -> str:
        return db.one_or_404(select(book).options(BOOKS).where(book.title == "poetry 1")).title

    assert twice(fsa, first, 1) == "poetry 3"
    assert twice(fsa, one, 1) == "poetry 1"
    for statement in (
        select(book).options(BOOKS).where(book.title == "x"),  # none
        select(book).options(BOOKS).where(book.id < 3),  # two
    ):
        with pytest.raises(NotFound):
            fsa.request(lambda statement=statement: db.one_or_404(statement))


def test_db_paginate_caches_the_page_and_the_count(fsa):
    db, book = fsa.db, fsa.Book

    def page(number: int) -> Callable[[], Any]:
        statement = select(book).options(BOOKS).order_by(book.id)
        return lambda: page_of(db.paginate(statement, page=number, per_page=5))

    assert twice(fsa, page(1), 2) == (1, 15, [f"fiction {n}" for n in range(1, 6)])
    assert (stats().misses, stats().stores, stats().hits) == (2, 2, 2)
    last = ["fiction 11", "fiction 12", "poetry 1", "poetry 2", "poetry 3"]
    assert twice(fsa, page(3), 1) == (3, 15, last)
    # past the last page: Flask-SQLAlchemy's 404, from the cached (empty) page
    for expected in (1, 0):
        with fsa.sql.expect(expected), pytest.raises(NotFound):
            fsa.request(page(4))


def test_db_paginate_count_has_a_key_of_its_own(fsa):
    """The COUNT Flask-SQLAlchemy runs borrows the page's option, under another key."""
    book = fsa.Book
    statement = select(book).options(BOOKS).order_by(book.id)
    # what SelectPagination._query_count executes, built the same way
    subquery = statement.options(lazyload("*")).order_by(None).subquery()
    count = select(func.count()).select_from(subquery)
    assert wrapped.cache_option(count) is BOOKS
    page = statement.limit(5).offset(0)
    assert core.key_for(BOOKS, count, None) != core.key_for(BOOKS, page, None)


def test_db_paginate_without_a_cache_option_runs_both(fsa):
    db, book = fsa.db, fsa.Book

    def page() -> Any:
        return page_of(db.paginate(select(book).order_by(book.id), page=1, per_page=5))

    with fsa.sql.expect(2):
        first = fsa.request(page)
    with fsa.sql.expect(2):
        assert fsa.request(page) == first


# -- writes: what they do to cached pages and counts ------------------------


def add_book(m: SimpleNamespace, title: str, shelf: str = "poetry") -> None:
    def write() -> None:
        owner = m.db.session.scalars(select(m.Shelf).where(m.Shelf.name == shelf)).one()
        owner.books.append(m.Book(title=title))
        m.db.session.commit()

    m.request(write)


def both_paginators(m: SimpleNamespace, number: int) -> Callable[[], Any]:
    """The same page through ``db.paginate()`` and ``Query.paginate()``."""
    db, book = m.db, m.Book

    def read() -> Any:
        statement = select(book).options(BOOKS).order_by(book.id)
        new = db.paginate(statement, page=number, per_page=5)
        legacy = book.query.options(BOOKS).order_by(book.id).paginate(page=number, per_page=5)
        return page_of(new), page_of(legacy)

    return read


def test_a_committed_write_invalidates_pages_and_counts(fsa):
    caching_query.auto_invalidate(fsa.db.session, fsa.manager)
    last = twice(fsa, both_paginators(fsa, 3), 4)
    titles = ["fiction 11", "fiction 12", "poetry 1", "poetry 2", "poetry 3"]
    assert last == ((3, 15, titles),) * 2
    first = twice(fsa, both_paginators(fsa, 1), 2)  # the counts are cached already
    add_book(fsa, "poetry 4")
    # every page and count read the book table: all run again, once
    assert twice(fsa, both_paginators(fsa, 4), 4) == ((4, 16, ["poetry 4"]),) * 2
    assert twice(fsa, both_paginators(fsa, 1), 2) == tuple((1, 16, p[2]) for p in first)

    # a cached 404 is a result like any other: a write invalidates it too
    def get() -> str:
        return fsa.db.get_or_404(fsa.Book, 17, options=[BOOKS]).title

    for expected in (1, 0):
        with fsa.sql.expect(expected), pytest.raises(NotFound):
            fsa.request(get)
    add_book(fsa, "poetry 5")
    assert twice(fsa, get, 1) == "poetry 5"


def test_without_automatic_invalidation_clear_covers_pages_and_counts(fsa):
    before = twice(fsa, both_paginators(fsa, 3), 4)
    add_book(fsa, "poetry 4")
    with fsa.sql.expect(0):  # stale until invalidated, as documented
        assert fsa.request(both_paginators(fsa, 3)) == before
    caching_query.clear("default", "books", fsa.manager)
    assert twice(fsa, both_paginators(fsa, 3), 4) == ((3, 16, before[0][2]),) * 2


# -- a dynamic relationship: the extension's query class ---------------------


def test_dynamic_relationship_appends_filters_counts_and_caches(fsa):
    caching_query.auto_invalidate(fsa.db.session, fsa.manager)
    shelves = FromCache("default", "shelves")

    def read() -> Any:
        shelf = fsa.db.session.get(fsa.Shelf, 2, options=[shelves])
        books = shelf.books.options(BOOKS)
        return (
            [book.title for book in books],
            books.count(),
            [book.title for book in books.filter(fsa.Book.title > "poetry 1")],
            page_of(books.paginate(page=2, per_page=2)),
        )

    # the shelf, the books, their count, the filter, the page, the page's count
    poetry = ["poetry 1", "poetry 2", "poetry 3"]
    assert twice(fsa, read, 6) == (poetry, 3, poetry[1:], (2, 3, ["poetry 3"]))

    def append() -> None:
        shelf = fsa.db.session.get(fsa.Shelf, 2)
        shelf.books.append(fsa.Book(title="poetry 4"))
        assert shelf.books.count() == 4  # autoflushed, uncommitted: not from the cache
        fsa.db.session.commit()

    fsa.request(append)
    # the shelf's table was not written: only the shelf comes from the cache
    poetry.append("poetry 4")
    assert twice(fsa, read, 5) == (poetry, 4, poetry[1:], (2, 4, poetry[2:]))
