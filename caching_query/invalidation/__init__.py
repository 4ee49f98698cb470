"""Automatic invalidation: a committed write makes every entry it affects a miss, in every process.

The parts, one concept each:

* ``dependencies`` -- which tables a cached result was read from;
* ``statements`` and ``tracking`` -- which writes happened, and when they
  were committed;
* ``versions`` -- where table versions live, and the check an entry passes;
* ``publish`` -- where a committed write is announced, and outages;
* ``switch`` -- which session factories have it on, and what their entries
  are checked against.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from beaker.cache import CacheManager
from sqlalchemy import Table, inspect

from ..exc import CachingQueryError
from ..options import DEFAULT_REGION, FromCache
from . import publish, switch, tracking
from .statements import EVERYTHING, table_name

if TYPE_CHECKING:
    from sqlalchemy.orm import Mapper

    from ..async_session import SessionTarget

__all__ = ["auto_invalidate", "cache_all", "invalidate_tables", "EVERYTHING"]


def auto_invalidate(
    target: SessionTarget,
    cache_manager: CacheManager | None = None,
    *,
    exclude_regions: Iterable[str] = (),
) -> None:
    """Turn automatic invalidation on for sessions made by ``target``.

    ``target`` is what ``install()`` takes (a ``sessionmaker``,
    ``scoped_session``, ``Session`` class or session, or their async
    counterparts), and this installs the hook as ``install()`` does. From
    then on every write committed through any engine of this process (ORM
    or Core, with or without the cache) replaces the versions of the tables
    it wrote, and the cached results of these sessions are served only
    while their tables' versions are unchanged. ``exclude_regions`` keep explicit invalidation only;
    ``FromCache(..., auto_invalidate=False)`` does the same for one query.
    """
    _switch_on(target, cache_manager, switch.Settings(frozenset(exclude_regions)))


def cache_all(
    target: SessionTarget,
    region: str = DEFAULT_REGION,
    namespace: str | None = "all",
    expire: int | None = None,
    cache_manager: CacheManager | None = None,
    *,
    exclude_regions: Iterable[str] = (),
) -> None:
    """Cache every ORM SELECT of ``target``'s sessions in ``region``, invalidated automatically.

    A query opts out with ``NoCache()`` or ``execution_options(cache=False)``;
    see ``caching_query.every_query`` for what is never cached.
    """
    option = FromCache(region, namespace, expire=expire, cache_manager=cache_manager)
    _switch_on(target, cache_manager, switch.Settings(frozenset(exclude_regions), option))


def _switch_on(target: Any, cache_manager: CacheManager | None, settings: switch.Settings) -> None:
    from .. import installation  # it imports the core, which imports this package

    resolved, manager = installation._install(target, cache_manager)
    if settings.cache_all is not None and manager is not None:
        settings = switch.Settings(
            settings.excluded_regions,
            settings.cache_all.bound_to(manager),
        )
    tracking.start()
    publish.add_target(manager, settings.excluded_regions)
    switch.switch_on(resolved, settings)


def invalidate_tables(*tables: str | Table | type) -> None:
    """Announce writes made outside this application: by table name, ``Table`` or mapped class.

    With no argument, everything cached is invalidated. Every backend that
    regions with automatic invalidation use is told; if one cannot be, it
    is retried in the background and this raises ``CachingQueryError``.
    """
    names: set[str] = set()
    for table in tables:
        names.update(_names_of(table))
    if not tables:
        names.add(EVERYTHING)
    failed = publish.publish(names)
    if failed:
        raise CachingQueryError(
            "could not announce the invalidation to "
            + ", ".join(" ".join(part for part in backend if part) for backend in failed)
            + "; it is retried in the background"
        )


def _names_of(table: str | Table | type) -> list[str]:
    if isinstance(table, str):
        if not table:
            raise ValueError("a table name must not be empty")
        return [table_name(table)]
    if isinstance(table, Table):
        return [table_name(table.name)]
    mapper: Mapper[Any] | None = inspect(table, raiseerr=False)
    if mapper is None or not hasattr(mapper, "tables"):
        raise TypeError(
            f"invalidate_tables() takes table names, Table objects or mapped classes, not {table!r}"
        )
    return [table_name(t.name) for t in mapper.tables]
