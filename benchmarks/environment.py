"""What every measurement shares: engine, regions, the two kinds of session.

The cache hook is installed on a ``Session`` subclass of its own, never on
``Session`` itself: SQLAlchemy propagates class-level listeners to
subclasses, so installing on ``Session`` would put the hook on the
"plain" baseline sessions too and hide the very overhead measured.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from beaker.cache import CacheManager
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Query, Session, sessionmaker

import caching_query
from caching_query import FromCache, handles, query_callable
from examples.model import Person

from .timing import Plan

# Always configured: concurrency and the entry size are measured on it.
MEMORY_REGION = "memory"


class CachedSession(Session):
    """Sessions that serve cache options (the hook is installed on this class)."""


class PlainSession(Session):
    """Sessions without the hook and with the stock ``Query``: the baseline."""


@dataclass
class Bench:
    """The shared state handed to every measurement."""

    engine: Engine
    manager: CacheManager
    cached: sessionmaker[CachedSession]
    plain: sessionmaker[PlainSession]
    plan: Plan
    quick: bool


def make_bench(
    engine: Engine, regions: dict[str, dict[str, Any]], plan: Plan, quick: bool
) -> Bench:
    """Sessionmakers bound to ``engine`` and a manager holding ``regions``."""
    manager = CacheManager(cache_regions={MEMORY_REGION: {"type": "memory"}, **regions})
    cached = sessionmaker(bind=engine, class_=CachedSession, query_cls=query_callable(manager))
    caching_query.install(cached)  # the 2.0 select() path; takes the manager from query_cls
    plain = sessionmaker(bind=engine, class_=PlainSession, query_cls=Query)
    return Bench(engine, manager, cached, plain, plan, quick)


def session_pairs(
    first: Callable[[], Session], second: Callable[[], Session]
) -> Callable[[], tuple[Session, Session]]:
    """A setup for two calls measured together: a fresh session of each factory."""
    return lambda: (first(), second())


def close_pair(pair: tuple[Session, Session]) -> None:
    """The teardown of ``session_pairs``."""
    for session in pair:
        session.close()


# -- the queries measured: n people, by primary key order -------------------


def legacy_all(session: Session, rows: int, option: FromCache | None = None) -> list[Person]:
    """``session.query(Person)`` for the first ``rows`` people."""
    query = session.query(Person).filter(Person.id <= rows).order_by(Person.id)
    if option is not None:
        query = query.options(option)
    return query.all()


def select_all(session: Session, rows: int, option: FromCache | None = None) -> list[Person]:
    """``session.scalars(select(Person))`` for the first ``rows`` people."""
    statement = select(Person).where(Person.id <= rows).order_by(Person.id)
    if option is not None:
        statement = statement.options(option)
    return list(session.scalars(statement).all())


def stored_entry(bench: Bench, api: str, rows: int, option: FromCache) -> tuple[Any, str]:
    """Run the ``api`` query for ``rows`` people with ``option`` (storing its entry
    on a miss); the cache and the key that entry is under."""
    with bench.cached() as session:
        QUERIES[api](session, rows, option)
        if api == "legacy":
            query = session.query(Person).filter(Person.id <= rows).order_by(Person.id)
            return query.options(option).cache_and_key()  # type: ignore[attr-defined,no-any-return]
        statement = select(Person).where(Person.id <= rows).order_by(Person.id).options(option)
        return handles.cache_and_key(session, statement, option)


def invalidate(session: Session, api: str, rows: int, option: FromCache) -> None:
    """Remove the entry the ``api`` query for ``rows`` people is cached under."""
    if api == "legacy":
        query = session.query(Person).filter(Person.id <= rows).order_by(Person.id)
        query.options(option).invalidate()  # type: ignore[attr-defined]
    else:
        statement = select(Person).where(Person.id <= rows).order_by(Person.id)
        caching_query.invalidate(statement, option, session=session)


QUERIES: dict[str, Callable[..., list[Person]]] = {"legacy": legacy_all, "2.0": select_all}


@contextmanager
def count_sql(engine: Engine) -> Iterator[list[str]]:
    """Collect the statements ``engine`` sends inside the block."""
    sent: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", seen)
