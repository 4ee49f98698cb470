"""Beaker's namespace managers' client objects, which Beaker exposes only as attributes.

Beaker builds one memcached or Redis client per server and shares it
between the namespaces of that server, but offers no accessor for it:
these functions are the only places that read those attributes, and
``tests/test_cli.py`` fails loudly when Beaker renames one.
"""

from __future__ import annotations

from typing import Any

from beaker.ext.memcached import MemcachedNamespaceManager
from beaker.ext.redisnm import RedisNamespaceManager

__all__ = ["memcached_client", "redis_client", "set_memcached_timeout"]


def memcached_client(namespace: Any) -> Any | None:
    """The memcached client of an ``ext:memcached`` namespace; None for other backends."""
    if isinstance(namespace, MemcachedNamespaceManager):
        return namespace.mc
    return None


def redis_client(namespace: Any) -> Any | None:
    """The ``redis.Redis`` client of an ``ext:redis`` namespace; None for other backends."""
    if isinstance(namespace, RedisNamespaceManager):
        return namespace.client
    return None


def set_memcached_timeout(client: Any, seconds: float) -> bool:
    """Give a memcached client's connections a socket timeout; False if it has no such setting.

    Beaker builds the client from the server list alone, so the timeout
    cannot be configured; it applies to connections opened afterwards.
    ``bmemcached`` and ``python-memcached`` keep it on each server object.
    """
    changed = False
    for server in getattr(client, "servers", None) or ():
        if hasattr(server, "socket_timeout"):
            server.socket_timeout = seconds
            changed = True
    return changed
