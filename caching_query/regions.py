"""Region names to Beaker ``Cache`` objects.

A region is looked up in the ``CacheManager`` bound to the option (see
``query_callable``/``install``) or else in Beaker's global
``beaker.cache.cache_regions``, which ``CacheManager(cache_regions=...)``
fills.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import beaker.cache
from beaker.cache import Cache, CacheManager

from .exc import UnknownRegionError

# manager -> (region, namespace) -> (region config, Cache). Beaker's own
# lookup renders the whole config with str() on every call; this one is a
# dict probe, and notices when a region is reconfigured.
_Memo = dict[tuple[str, str], tuple[dict[str, Any], Cache]]
_caches: weakref.WeakKeyDictionary[CacheManager, _Memo] = weakref.WeakKeyDictionary()
_global_caches: _Memo = {}
_creating = threading.Lock()


def region_config(region: str, manager: CacheManager | None) -> dict[str, Any]:
    """The configuration dict of ``region``, or a clear error."""
    regions = manager.regions if manager is not None else beaker.cache.cache_regions
    try:
        return regions[region]
    except KeyError:
        where = "the bound CacheManager" if manager is not None else "beaker.cache.cache_regions"
        configured = ", ".join(repr(name) for name in sorted(regions)) or "none"
        raise UnknownRegionError(
            f"cache region {region!r} is not configured in {where}; "
            f"configured regions: {configured}"
        ) from None


def get_cache(region: str, namespace: str, manager: CacheManager | None) -> Cache:
    """The Beaker ``Cache`` holding ``namespace`` in ``region``."""
    config = region_config(region, manager)
    memo = _global_caches if manager is None else _caches.get(manager)
    slot = (region, namespace)
    found = memo.get(slot) if memo is not None else None
    if found is not None and found[0] is config:
        return found[1]
    # Beaker's own memo is not thread-safe: threads missing it together
    # would each build a Cache, and a SQL namespace keeps state per object.
    with _creating:
        if memo is None:
            memo = _caches.setdefault(manager, {})  # type: ignore[arg-type]
        found = memo.get(slot)
        if found is not None and found[0] is config:
            return found[1]
        cache = Cache(namespace, **config)
        memo[slot] = (config, cache)
        return cache


def forget_caches() -> None:
    """Drop memoized caches, after a region type has been re-registered."""
    with _creating:
        _caches.clear()
        _global_caches.clear()


def is_session_local(cache: Cache) -> bool:
    """True for a region whose storage belongs to one Session.

    Such a cache holds that session's own objects and is never seen by
    another session, so it needs no detached copies.
    """
    return bool(getattr(cache.namespace, "session_local", False))
