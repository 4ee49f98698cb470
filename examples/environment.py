"""Shared set-up for the examples: engine, cache regions, Session, SQL counter.

The backend comes from the environment, so every example runs against any
of them::

    CACHE_BACKEND=memory      (default)
    CACHE_BACKEND=file        (CACHE_DIR, default examples/.cache)
    CACHE_BACKEND=memcached   CACHE_URL=127.0.0.1:11211
    CACHE_BACKEND=redis       CACHE_URL=redis://127.0.0.1:6379/0
    CACHE_BACKEND=rediscluster    CACHE_URL=redis://127.0.0.1:7000,redis://127.0.0.1:7001
    CACHE_BACKEND=memcached-pool  CACHE_URL="127.0.0.1:11211;127.0.0.1:11212"

The database is a SQLite file (``DATABASE_URL`` overrides it), filled with
the fixture data on first use.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from beaker.cache import CacheManager
from sqlalchemy import create_engine, event
from sqlalchemy.orm import scoped_session, sessionmaker

from caching_query import install, query_callable
from caching_query.local_session import ScopedSessionNamespace

from . import fixture_data
from .regions import shared_region

HERE = Path(__file__).resolve().parent
DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{HERE / 'examples.db'}")


engine = create_engine(DATABASE_URL)
Session = scoped_session(sessionmaker(bind=engine))

cache_manager = CacheManager(
    cache_regions={
        "default": shared_region(
            os.environ.get("CACHE_BACKEND", "memory"), os.environ.get("CACHE_URL")
        ),
        "local_session": {"type": "ext:local_session", "scoped_session": Session},
    }
)
Session.configure(query_cls=query_callable(cache_manager))
# The one line 2.0-style select()/Session.get() callers need.
install(Session, cache_manager)

ScopedSessionNamespace  # noqa: B018 - registered through the beaker.backends entry point


class SQLCounter:
    """Counts the statements the engine sends, for the examples' printouts."""

    def __init__(self) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *args: Any) -> None:
        self.count += 1

    def take(self) -> int:
        """Statements since the last call."""
        count, self.count = self.count, 0
        return count


sql = SQLCounter()


def report(step: int, what: str, expected_sql: int, note: str | None = None) -> None:
    """Print what a step did and how much SQL it ran; assert the count."""
    count = sql.take()
    if note is None:
        note = "from cache" if count == 0 else ""
    plural = "" if count == 1 else "s"
    print(f"step {step}: {what} -> {count} SQL statement{plural}" + (f" ({note})" if note else ""))
    assert count == expected_sql, f"step {step}: expected {expected_sql} SQL, got {count}"


if fixture_data.install(engine):
    print("(installed the fixture data)")
sql.take()
