"""Beaker's namespace managers' client objects, which Beaker exposes only as attributes.

Beaker builds one memcached or Redis client per server and shares it
between the namespaces of that server, but offers no accessor for it:
these functions are the only places that read those attributes, and
``tests/test_cli.py`` fails loudly when Beaker renames one.
"""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

from beaker.ext.memcached import MemcachedNamespaceManager
from beaker.ext.redisnm import RedisNamespaceManager

__all__ = [
    "memcached_client",
    "redis_client",
    "server_answers",
    "server_of",
    "set_memcached_timeout",
    "spread_over_servers",
]

_spread: dict[tuple[str, ...], Any] = {}
_spread_lock = threading.Lock()


def prefer_binary_memcached(config: dict[str, Any]) -> None:
    """Name python-binary-memcached in a memcached region ``config`` that names no client.

    Beaker's ``"auto"`` takes python-memcached whenever it is installed,
    even beside python-binary-memcached: the client a region got would
    depend on what else the environment holds, and python-memcached can do
    neither signing nor a pool of servers here. An explicit
    ``memcache_module`` is kept.
    """
    if config.get("type") != "ext:memcached" or config.get("memcache_module", "auto") != "auto":
        return
    if importlib.util.find_spec("bmemcached") is not None:
        config["memcache_module"] = "bmemcached"


def spread_over_servers(namespace: Any) -> None:
    """memcached with several servers: spread keys over them, one server per key.

    Beaker builds ``bmemcached.Client`` from ``url = "a;b;c"``, which
    replicates every key to every server. A pool is meant to add capacity:
    this gives the namespace a consistent-hash ``DistributedClient`` of the
    same servers instead (one per server list, shared like Beaker's), so a
    dead server costs only the keys it held.
    """
    if not isinstance(namespace, MemcachedNamespaceManager):
        return
    client = namespace.mc
    if type(client).__name__ != "ReplicatingClient":
        return
    servers = tuple(server.server for server in client.servers)
    if len(servers) < 2:
        return
    with _spread_lock:
        shared = _spread.get(servers)
        if shared is None:
            import bmemcached

            shared = _spread[servers] = bmemcached.DistributedClient(list(servers))
    namespace.mc = shared


def server_of(client: Any, key: str) -> str | None:
    """The server (``host:port``) a pool client keeps ``key`` on; None without a pool."""
    pick = getattr(client, "_get_server", None)
    return pick(key).server if pick is not None else None


def server_answers(client: Any, server: str | None = None) -> bool:
    """Whether a memcached client's ``server`` (None: any of its servers) answers ``stats``.

    A client that cannot reach a server answers for it with nothing:
    bmemcached's ``stats()`` a dict per server, python-memcached's and
    pylibmc's ``get_stats()`` a list of (server, stats) pairs.
    """
    ask = getattr(client, "stats", None) or getattr(client, "get_stats", None)
    try:
        answer = ask() if ask is not None else None
    except Exception:
        return False
    pairs = answer.items() if isinstance(answer, dict) else (answer or ())
    return any(stats for name, stats in pairs if server is None or name == server)


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
