"""Every use of a private Beaker name, in one place.

``tests/test_beaker_internals.py`` fails loudly when one of them changes.
"""

from __future__ import annotations

from typing import Any

import beaker.cache
from beaker.cache import Cache

__all__ = ["cache_for_config", "register_backend"]


def cache_for_config(namespace: str, config: dict[str, Any]) -> Cache:
    """Beaker's shared ``Cache`` for a namespace and region configuration.

    The same function ``CacheManager.get_cache_region`` ends in; it keeps
    one ``Cache`` per namespace and configuration, so that, for example,
    memory regions share one dictionary per namespace.
    """
    return Cache._get_cache(namespace, config)


def register_backend(name: str, namespace_class: type) -> None:
    """Make ``{"type": name}`` regions use ``namespace_class``.

    ``beaker.cache.clsmap`` no longer supports item assignment. Its entry
    points are loaded first so that a later lazy load of them does not
    report a name conflict with this registration.
    """
    backends = beaker.cache.clsmap
    with backends._mutex:
        if not backends.initialized:
            backends._init()
            backends.initialized = True
        replaced = backends._clsmap.get(name)
        backends._clsmap[name] = namespace_class
    if replaced is not None and replaced is not namespace_class:
        # Beaker memoizes Cache objects by namespace and configuration; a
        # region of this type would otherwise keep the replaced class.
        stale = [
            memo_key
            for memo_key, cache in list(beaker.cache.cache_managers.items())
            if type(cache.namespace) is replaced
        ]
        for memo_key in stale:
            beaker.cache.cache_managers.pop(memo_key, None)
