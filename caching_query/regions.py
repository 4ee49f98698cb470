"""Region names to Beaker ``Cache`` objects.

A region is looked up in the ``CacheManager`` bound to the option (see
``query_callable``/``install``) or else in Beaker's global
``beaker.cache.cache_regions``, which ``CacheManager(cache_regions=...)``
fills.
"""

from __future__ import annotations

from typing import Any

import beaker.cache
from beaker.cache import Cache, CacheManager

from . import _beaker_internals
from .exc import UnknownRegionError

# (manager id, region, namespace) -> (region config, Cache). Beaker's own
# lookup renders the whole config with str() on every call; this one is a
# dict probe, and notices when a region is reconfigured.
_caches: dict[tuple[int, str, str], tuple[dict[str, Any], Cache]] = {}


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
    slot = (id(manager), region, namespace)
    found = _caches.get(slot)
    if found is not None and found[0] is config:
        return found[1]
    cache = _beaker_internals.cache_for_config(namespace, config)
    _caches[slot] = (config, cache)
    return cache


def forget_caches() -> None:
    """Drop memoized caches, after a region type has been re-registered."""
    _caches.clear()


def is_session_local(cache: Cache) -> bool:
    """True for a region whose storage belongs to one Session.

    Such a cache holds that session's own objects and is never seen by
    another session, so it needs no detached copies.
    """
    return bool(getattr(cache.namespace, "session_local", False))
