"""Region names to Beaker ``Cache`` objects.

A region is looked up in the ``CacheManager`` bound to the option (see
``query_callable``/``install``) or else in Beaker's global
``beaker.cache.cache_regions``, which ``CacheManager(cache_regions=...)``
fills. The ``Cache`` handed out is a ``RegionCache``: it knows its
region, reads and stores entries the way this library does (sealed,
signed), and its ``clear()`` empties one namespace instead of a server.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import beaker.cache
from beaker.cache import Cache, CacheManager

from . import locks
from .entries import sealing
from .exc import CacheOptionError, UnknownRegionError
from .internals import _beaker_clients, _beaker_internals, _beaker_unpickling

# manager -> (region, namespace) -> (region config, Cache). Beaker's own
# lookup renders the whole config with str() on every call; this one is a
# dict probe, and notices when a region is reconfigured.
_Memo = dict[tuple[str, str], tuple[dict[str, Any], Cache]]
_caches: weakref.WeakKeyDictionary[CacheManager, _Memo] = weakref.WeakKeyDictionary()
_global_caches: _Memo = {}
_creating = threading.Lock()


def region_config(region: str, manager: CacheManager | None) -> dict[str, Any]:
    """The configuration dict of ``region``, or a clear error."""
    regions: dict[str, dict[str, Any]] = (
        manager.regions if manager is not None else beaker.cache.cache_regions
    )
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
            memo = _caches.setdefault(manager, {})
        found = memo.get(slot)
        if found is not None and found[0] is config:
            return found[1]
        cache = RegionCache(region, namespace, **config)
        memo[slot] = (config, cache)
        return cache


# Region settings of this library's own, taken out before Beaker sees them.
_OWN_SETTINGS = sealing.OWN_SETTINGS + locks.OWN_SETTINGS


class RegionCache(Cache):  # type: ignore[misc]  # Beaker has no type information
    """A Beaker ``Cache`` of one region's namespace, as this library stores it.

    ``get(key)`` returns the live ``CacheEntry`` (KeyError if none: expired,
    cleared, invalidated or refused) and ``put(key, entry)`` stores one the
    way a miss does. ``clear()`` makes the namespace's entries misses with
    one write, as ``caching_query.clear()`` does: Beaker's own clear runs
    ``flush_all`` on memcached (every key of the server) and walks Redis
    with ``KEYS``.

    Region settings Beaker does not know are taken out before Beaker sees
    them: ``signing_keys`` and ``max_entry_bytes`` (see ``sealing``),
    ``lock_ttl`` and ``lock_wait`` (see ``locks``). A memcached region that
    names no ``memcache_module`` gets python-binary-memcached when it is
    installed (see ``_beaker_clients.prefer_binary_memcached``).
    """

    def __init__(self, region: str, namespace: str, **config: Any) -> None:
        own = {name: config.pop(name) for name in _OWN_SETTINGS if name in config}
        _beaker_clients.prefer_binary_memcached(config)
        super().__init__(namespace, **config)
        _beaker_internals.keep_namespace_on_one_node(self.namespace)
        _beaker_clients.spread_over_servers(self.namespace)
        self.region = region
        self.slot = (region, namespace)
        self.lock_settings = locks.LockSettings.configure(own)
        memcached = _beaker_internals.is_memcached(self.namespace)
        self.sealing = sealing.Sealing.configure(
            own,
            sealing.serializes(self.namespace),
            sealing.MEMCACHED_ITEM_LIMIT if memcached else None,
        )
        if self.sealing.signs:
            try:
                _beaker_unpickling.load_outer_layer_with(
                    self.namespace, sealing.load_without_classes, sealing.NoClassesUnpickler
                )
            except TypeError as error:
                raise CacheOptionError(f"cache region {region!r}: {error}") from None

    # The entries of this namespace are sealed records only this library
    # reads safely: every Beaker read of them goes through ``store``.

    def get(self, key: Any, **kw: Any) -> Any:
        """The live entry under ``key``; with ``createfunc=``, made and stored
        when there is none (it must return a ``CacheEntry``)."""
        from . import store

        name = _key_text(key)
        entry = store.read(self, name)
        if entry is not None:
            return entry
        create = kw.get("createfunc")
        if create is None:
            raise KeyError(key)
        entry = create()
        self.put(name, entry, **{k: v for k, v in kw.items() if k != "createfunc"})
        return entry

    get_value = get

    def put(self, key: Any, value: Any, **kw: Any) -> None:
        """Store ``value``, a ``CacheEntry``, as a miss would."""
        from . import store
        from .entries.entry import CacheEntry

        if not isinstance(value, CacheEntry):
            raise TypeError(
                f"the Cache of region {self.region!r} namespace {self.namespace_name!r} "
                f"holds caching_query entries, not {type(value).__name__}; keep other "
                "values in a Beaker Cache of a namespace of their own"
            )
        expire = kw.get("expiretime") or kw.get("expire")
        store.write(self, _key_text(key), value, expire)

    set_value = put

    def has_key(self, key: Any) -> bool:
        from . import store

        return store.read(self, _key_text(key)) is not None

    __contains__ = has_key

    def clear(self) -> None:
        from . import store

        store.clear(self)


def _key_text(key: Any) -> str:
    return key if isinstance(key, str) else bytes(key).decode("ascii")


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
