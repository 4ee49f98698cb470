"""What to do when a cache server goes away.

The application must keep running on the database alone. When a backend
operation fails, the backend is marked down: one warning is logged, and
for ``retry_seconds`` queries skip it altogether (a dead server can cost a
connect timeout per call). After that one query tries again; success
ends the outage with an info message, failure starts another wait without
a new warning.

A backend is identified by its namespace class and the server or
directory it is configured with, so one warning covers every namespace
of one memcached or Redis server.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from beaker.cache import Cache
from sqlalchemy import exc as sa_exc

from .internals import _beaker_internals

log = logging.getLogger("caching_query")

retry_seconds: float = 5.0

# Exceptions from these client packages, and OSError (refused, reset,
# timeouts), mean the backend failed rather than the value being bad.
_CLIENT_PACKAGES = frozenset({"redis", "bmemcached", "memcache", "pymemcache", "pylibmc"})

_lock = threading.Lock()
_down_until: dict[tuple[str, str], float] = {}


def backend_of(cache: Cache) -> tuple[str, str]:
    nsargs: dict[str, Any] = getattr(cache, "nsargs", {}) or {}
    where = nsargs.get("url") or nsargs.get("data_dir") or nsargs.get("dbm_dir") or ""
    return type(cache.namespace).__name__, str(where)


def is_backend_failure(error: BaseException) -> bool:
    """True when ``error`` says the backend is unreachable, not that one call failed."""
    if isinstance(error, (OSError, _beaker_internals.WriteRefused)):
        return True
    if isinstance(error, sa_exc.DBAPIError):  # ext:database / ext:sqla
        return error.connection_invalidated or isinstance(
            error, (sa_exc.OperationalError, sa_exc.InterfaceError)
        )
    if isinstance(error, sa_exc.DisconnectionError | sa_exc.TimeoutError):
        return True
    return type(error).__module__.split(".", 1)[0] in _CLIENT_PACKAGES


def available(cache: Cache) -> bool:
    """False while ``cache``'s backend is down and not yet due for a retry."""
    if not _down_until:
        return True
    until = _down_until.get(backend_of(cache))
    return until is None or time.monotonic() >= until


def failed(cache: Cache, error: BaseException | str) -> None:
    """Record a failure of ``cache``'s backend; warn if it starts an outage."""
    _failed(backend_of(cache), error)


def failed_region(region: str, error: BaseException | str) -> None:
    """Record that ``region``'s backend could not even be opened."""
    _failed(("region", region), error)


def _failed(backend: tuple[str, str], error: BaseException | str) -> None:
    with _lock:
        starting = backend not in _down_until
        _down_until[backend] = time.monotonic() + retry_seconds
    if starting:
        log.warning(
            "caching_query: cache backend %s %s is unavailable (%s); "
            "queries go to the database until it is back",
            backend[0],
            backend[1] or "",
            error,
        )


def succeeded(cache: Cache) -> None:
    """Record that ``cache``'s backend answered; ends an outage."""
    if not _down_until:
        return
    backend = backend_of(cache)
    with _lock:
        ended = _down_until.pop(backend, None) is not None
    if ended:
        log.info("caching_query: cache backend %s %s is back", backend[0], backend[1] or "")


_down_servers: set[tuple[str, str, str]] = set()


def server_failed(cache: Cache, server: str, error: BaseException | str) -> None:
    """One server of ``cache``'s memcached pool is down; warn once per outage.

    The pool stays available: the keys the other servers hold are read and
    written as usual, and this server's share misses.
    """
    item = (*backend_of(cache), server)
    with _lock:
        starting = item not in _down_servers
        _down_servers.add(item)
    if starting:
        log.warning(
            "caching_query: memcached server %s of the pool %s is unavailable (%s); "
            "its share of the entries misses until it is back",
            server,
            item[1],
            error,
        )


def servers_down() -> bool:
    """Whether a server of any memcached pool is known to be down."""
    return bool(_down_servers)


def server_answered(cache: Cache, server: str | None) -> None:
    """A write to ``server`` of the pool went through; ends its outage."""
    item = (*backend_of(cache), server or "")
    with _lock:
        ended = item in _down_servers
        _down_servers.discard(item)
    if ended:
        log.info("caching_query: memcached server %s of the pool %s is back", server, item[1])


def reset() -> None:
    """Forget all outages (tests, or after reconfiguring regions)."""
    with _lock:
        _down_until.clear()
        _down_servers.clear()
