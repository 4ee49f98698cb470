"""Beaker caching for SQLAlchemy ORM queries.

Swap in the query class, mark the queries to cache::

    Session = sessionmaker(bind=engine, query_cls=CachingQuery)
    session.query(Person).options(FromCache("default", "by_name")).filter(...)

2.0-style ``select()`` and ``Session.get()`` need ``install(Session)`` once;
``auto_invalidate(Session)`` also makes committed writes invalidate what
they affect, and ``cache_all(Session)`` caches every query that way.
"""

from .entries.entry import CacheEntry
from .exc import (
    CacheOptionError,
    CachingQueryError,
    UncacheableQueryError,
    UnknownRegionError,
)
from .handles import clear, invalidate
from .installation import install
from .invalidation import auto_invalidate, cache_all, invalidate_tables
from .local_session import ScopedSessionNamespace
from .operations.stats import NamespaceStatistics, reset_statistics, statistics
from .options import FromCache, NoCache, RelationshipCache
from .query import CachingQuery, query_callable

__all__ = [
    "CacheEntry",
    "CacheOptionError",
    "CachingQuery",
    "CachingQueryError",
    "FromCache",
    "NamespaceStatistics",
    "NoCache",
    "RelationshipCache",
    "ScopedSessionNamespace",
    "UncacheableQueryError",
    "UnknownRegionError",
    "auto_invalidate",
    "cache_all",
    "clear",
    "install",
    "invalidate",
    "invalidate_tables",
    "query_callable",
    "reset_statistics",
    "statistics",
]

__version__ = "0.2.0"
