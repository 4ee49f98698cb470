"""Where a committed write is announced, and what happens when that fails.

A commit replaces the versions of the tables it wrote in every backend
that regions with automatic invalidation use (each backend once, however
many regions share it), in one round trip per backend. The commit itself
has already happened: a backend that fails here is reported to ``health``,
never raised into the application.

A backend whose versions could not be replaced holds entries that may now
be stale, and this process knows it: until a retry has published the
missed tables, this process neither reads nor writes entries on that
backend. The retry runs in a background timer every
``health.retry_seconds``, so other processes (which cannot know) are
exposed only until the backend answers again.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterable
from typing import Any

import beaker.cache
from beaker.cache import Cache, CacheManager

from .. import health, regions
from . import versions
from .dependencies import ANY_TABLE

log = logging.getLogger("caching_query")

# manager (or None for Beaker's global regions) -> region names left out
_targets: weakref.WeakKeyDictionary[CacheManager, frozenset[str]] = weakref.WeakKeyDictionary()
_global_excluded: frozenset[str] | None = None
_lock = threading.Lock()
# backend -> (versions cache, tables not yet published there)
_unpublished: dict[tuple[str, str], tuple[Cache, set[str]]] = {}
_timer: threading.Timer | None = None
# Tables SQL-table backends keep entries in: writes to them are the cache's own
cache_tables: set[str] = {"beaker_cache"}
_publishing = threading.local()


def add_target(manager: CacheManager | None, excluded: Iterable[str] = ()) -> None:
    """Publish writes to ``manager``'s regions (Beaker's global ones for None)."""
    global _global_excluded
    names = frozenset(excluded)
    with _lock:
        if manager is None:
            _global_excluded = names if _global_excluded is None else _global_excluded & names
        else:
            previous = _targets.get(manager)
            _targets[manager] = names if previous is None else previous & names
        for config in (
            manager.regions if manager is not None else beaker.cache.cache_regions
        ).values():
            _note_cache_table(config)


def _configured() -> list[tuple[str, dict[str, Any], CacheManager | None]]:
    found: list[tuple[str, dict[str, Any], CacheManager | None]] = []
    with _lock:
        targets = list(_targets.items())
        global_excluded = _global_excluded
    for manager, excluded in targets:
        found.extend(
            (name, config, manager)
            for name, config in manager.regions.items()
            if name not in excluded
        )
    if global_excluded is not None:
        found.extend(
            (name, config, None)
            for name, config in beaker.cache.cache_regions.items()
            if name not in global_excluded
        )
    return found


def versions_caches(unopened: list[tuple[str, str]] | None = None) -> dict[tuple[str, str], Cache]:
    """The versions namespace of every backend that auto-invalidated regions use.

    Regions whose backend cannot even be opened are left out, and added to
    ``unopened`` as ``("region", name)``.
    """
    caches: dict[tuple[str, str], Cache] = {}
    for name, config, manager in _configured():
        _note_cache_table(config)
        try:
            cache = regions.get_cache(name, versions.VERSIONS_NAMESPACE, manager)
        except Exception as error:  # a backend that cannot be opened
            health.failed_region(name, error)
            if unopened is not None:
                unopened.append(("region", name))
            continue
        if regions.is_session_local(cache):
            continue
        caches.setdefault(health.backend_of(cache), cache)
    return caches


def _note_cache_table(config: dict[str, Any]) -> None:
    if config.get("type") == "ext:database":
        cache_tables.add(str(config.get("table_name", "beaker_cache")).lower())
    elif config.get("type") == "ext:sqla" and config.get("table") is not None:
        cache_tables.add(config["table"].name.lower())


def publish(tables: Iterable[str]) -> list[tuple[str, str]]:
    """Announce a committed write of ``tables`` to every backend; never raises.

    Returns the backends that could not be told: those that failed are
    retried; regions that could not be opened at all are only reported.
    """
    if getattr(_publishing, "active", False):
        return []  # the versions' own write, on a SQL-table backend
    changed = {*tables, ANY_TABLE}
    _publishing.active = True
    try:
        unopened: list[tuple[str, str]] = []
        failed = [
            backend
            for backend, cache in versions_caches(unopened).items()
            if not _publish_to(backend, cache, changed)
        ]
        return failed + unopened
    finally:
        _publishing.active = False


def _publish_to(backend: tuple[str, str], cache: Cache, tables: set[str]) -> bool:
    # What is owed stays owed until a write of it has succeeded: while it is
    # owed, this process serves nothing from the backend (``is_current``).
    with _lock:
        owed = _unpublished.get(backend)
    if owed is not None:
        tables = tables | owed[1]
    if health.available(cache):
        try:
            versions.write(cache, versions.new_tokens(tables))
        except Exception as error:
            health.failed(cache, error)
        else:
            health.succeeded(cache)
            _settle(backend, tables)
            return True
    # down: owe it the tables, and retry in the background
    with _lock:
        owed = _unpublished.get(backend)
        _unpublished[backend] = (cache, tables | owed[1] if owed is not None else set(tables))
    _schedule_retry()
    return False


def _settle(backend: tuple[str, str], published: set[str]) -> None:
    """Forget what a write published; tables owed since stay owed."""
    with _lock:
        owed = _unpublished.get(backend)
        if owed is None:
            return
        rest = owed[1] - published
        if rest:
            _unpublished[backend] = (owed[0], rest)
        else:
            del _unpublished[backend]


def owed() -> list[tuple[str, str]]:
    """The backends this process still owes a publication."""
    with _lock:
        return list(_unpublished)


def is_current(cache: Cache) -> bool:
    """False while this process owes ``cache``'s backend a publication."""
    return not _unpublished or health.backend_of(cache) not in _unpublished


def _schedule_retry() -> None:
    global _timer
    with _lock:
        if _timer is not None and _timer.is_alive():
            return
        _timer = threading.Timer(health.retry_seconds, retry)
        _timer.daemon = True
        _timer.start()


def retry() -> None:
    """Publish what earlier commits could not; schedules itself again while that fails."""
    global _timer
    with _lock:
        pending = dict(_unpublished)  # still owed while the retry writes it
        _timer = None
    for backend, (cache, tables) in pending.items():
        _publish_to(backend, cache, tables)


def forget() -> None:
    """Forget targets and owed publications (tests)."""
    global _global_excluded, _timer
    with _lock:
        _targets.clear()
        _global_excluded = None
        _unpublished.clear()
        if _timer is not None:
            _timer.cancel()
        _timer = None
