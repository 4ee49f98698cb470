"""Beaker caching for SQLAlchemy ORM queries.

Swap in the query class, mark the queries to cache::

    Session = sessionmaker(bind=engine, query_cls=CachingQuery)
    session.query(Person).options(FromCache("default", "by_name")).filter(...)

2.0-style ``select()`` and ``Session.get()`` need ``install(Session)`` once.
"""

from .core import clear, install, invalidate
from .entry import CacheEntry
from .exc import (
    CacheOptionError,
    CachingQueryError,
    UncacheableQueryError,
    UnknownRegionError,
)
from .options import FromCache, RelationshipCache
from .query import CachingQuery, query_callable

__all__ = [
    "CacheEntry",
    "CacheOptionError",
    "CachingQuery",
    "CachingQueryError",
    "FromCache",
    "RelationshipCache",
    "UncacheableQueryError",
    "UnknownRegionError",
    "clear",
    "install",
    "invalidate",
    "query_callable",
]

__version__ = "0.2.0"
