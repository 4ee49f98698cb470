"""Every use of a private Beaker name, in one place.

``tests/test_sa_internals.py`` fails loudly when one of them changes.
"""

from __future__ import annotations

import math
import pickle
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import beaker.cache
from beaker.container import DBMNamespaceManager, MemoryNamespaceManager
from beaker.ext.memcached import MemcachedNamespaceManager
from beaker.ext.redisclusternm import RedisClusterNamespaceManager
from beaker.ext.redisnm import RedisNamespaceManager
from beaker.ext.sqla import SqlaNamespaceManager

from . import _beaker_clients
from ._beaker_unpickling import LOADS

__all__ = [
    "refresh",
    "register_backend",
    "memory_records",
    "read_records",
    "read_records_with",
    "set_records",
    "set_record",
    "WriteRefused",
    "EntryRefused",
    "server_lock",
    "keep_namespace_on_one_node",
]


def _loads_of(namespace: Any) -> Callable[[Any], Any]:
    # what signing put in place of the backend's own pickle.loads
    return namespace.__dict__.get(LOADS, pickle.loads)  # type: ignore[no-any-return]


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
        backends._clsmap[name] = namespace_class


class WriteRefused(Exception):
    """The backend did not store a value and said so only by its return."""


class EntryRefused(Exception):
    """A backend that answers refused to store one value (over its item size)."""


_VALUE_TOO_LARGE = 0x03


class PoolServerDown(Exception):
    """One server of a memcached pool did not answer: its keys miss, the others do not."""

    def __init__(self, server: str) -> None:
        super().__init__(f"memcached server {server} of the pool is not answering")
        self.server = server


def pool_server_of(namespace: Any, key: bytes) -> str | None:
    """The server of a memcached pool that keeps ``key`` of ``namespace``; None elsewhere."""
    if not isinstance(namespace, MemcachedNamespaceManager):
        return None
    return _beaker_clients.server_of(namespace.mc, namespace._format_key(key))


def set_record(namespace: Any, key: bytes, record: Any, expire: int | None) -> None:
    """Store ``record`` like ``namespace.set_value`` does, but never silently fail.

    Beaker's memcached namespace ignores the client's answer, and the
    clients report a dead server (or an item over the size limit) only
    by returning a false value.
    """
    if isinstance(namespace, MemcachedNamespaceManager):
        try:
            stored = namespace.mc.set(namespace._format_key(key), record, time=expire or 0)
        except Exception as error:
            # the binary protocol's "value too large" status, which bmemcached raises
            if getattr(error, "code", None) == _VALUE_TOO_LARGE:
                raise EntryRefused(
                    f"memcached refused the entry as too large ({error}); lower the "
                    "region's max_entry_bytes to the server's item size (memcached -I)"
                ) from error
            raise
        if not stored:
            down = _not_answering(namespace.mc, namespace._format_key(key))
            if down is not None:
                raise down
            raise EntryRefused(
                "memcached refused the entry: it is over the server's item size "
                "limit (memcached -I); lower the region's max_entry_bytes"
            )
    else:
        namespace.set_value(key, record, expiretime=expire)


def _not_answering(client: Any, key: str) -> Exception | None:
    """Why ``client`` refused ``key`` when the reason is a server gone, else None.

    memcached clients report a dead server only by refusing; asking for the
    server's stats tells a dead server from one that refused this item. In a
    pool only ``key``'s server counts, and only its share is lost.
    """
    server = _beaker_clients.server_of(client, key)
    if not _beaker_clients.server_answers(client, server):
        return (
            PoolServerDown(server)
            if server is not None
            else WriteRefused("memcached is not answering: server down")
        )
    return None


def is_memcached(namespace: Any) -> bool:
    """True for a memcached namespace, whatever client it uses."""
    return isinstance(namespace, MemcachedNamespaceManager)


def server_lock(
    namespace: Any, key: bytes, ttl: float
) -> tuple[Callable[[], bool], Callable[[], None]] | None:
    """``(attempt, release)`` of a lock on ``key`` kept in ``namespace``'s server, or None.

    Redis (and Redis Cluster): redis-py's ``Lock`` (``SET NX PX``, released
    by a script only while still ours). memcached: ``add`` with a TTL,
    released with ``gets``/``cas`` so a lock taken over is not deleted.
    The lock key is in the namespace's own key space (its hash slot too).
    """
    name: Any = (
        namespace._format_key(b"~lock:" + key) if hasattr(namespace, "_format_key") else None
    )
    if isinstance(namespace, RedisNamespaceManager):
        lock = namespace.client.lock(name, timeout=ttl)

        def release_redis() -> None:
            try:
                lock.release()
            except Exception as error:  # expired and maybe taken over: not ours
                if not isinstance(error, _redis_lock_error()):
                    raise

        return (lambda: bool(lock.acquire(blocking=False))), release_redis
    if isinstance(namespace, MemcachedNamespaceManager) and hasattr(namespace.mc, "gets"):
        client, token = namespace.mc, uuid.uuid4().hex
        seconds = max(1, math.ceil(ttl))  # memcached expiry is in whole seconds

        def attempt() -> bool:
            if client.add(name, token, time=seconds):
                return True
            if client.get(name) is not None:
                return False  # held by someone
            if client.add(name, token, time=seconds):
                return True  # it had just expired
            down = _not_answering(client, name)  # refused twice with no holder
            if down is not None:
                raise down
            return False

        def release_memcached() -> None:
            answer = client.gets(name)
            if isinstance(answer, tuple):  # bmemcached: (value, cas id)
                value, cas = answer
                if value == token:
                    client.delete(name, cas)
            elif answer == token:
                # python-memcached keeps the cas id in the client, and its
                # delete() cannot send one: a cas() of an already expired
                # value (negative time) removes the lock only if still ours
                client.cas(name, "", time=-1)

        return attempt, release_memcached
    return None


def _redis_lock_error() -> type[Exception]:
    import redis.exceptions  # only ever reached with redis installed

    return redis.exceptions.LockError


def keep_namespace_on_one_node(namespace: Any) -> None:
    """Redis Cluster: give every key of ``namespace`` one hash slot.

    A hit reads an entry and its namespace's generation in one ``MGET``,
    which a cluster refuses for keys of different slots. The namespace in
    braces is a hash tag: Redis hashes only that part of
    ``beaker_cache:{namespace}:key``. Namespaces still spread over the nodes.
    """
    if isinstance(namespace, RedisClusterNamespaceManager) and not namespace.namespace.startswith(
        "{"
    ):
        namespace.namespace = "{" + namespace.namespace + "}"


def refresh(namespace: Any) -> None:
    """Make a SQL namespace read its row again at the next open.

    ``ext:sqla`` and ``ext:database`` keep a whole namespace in one row,
    load it at the first open and never again, so they would not see what
    other processes wrote (or cleared).
    """
    if isinstance(namespace, SqlaNamespaceManager) and namespace.openers == 0:
        namespace.loaded = False


def memory_records(namespace: Any) -> dict[bytes, Any] | None:
    """A memory namespace's own dict of records; None for other backends.

    Reads from it need no lock under the GIL, and every hit on a memory
    region reads it.
    """
    if type(namespace) is MemoryNamespaceManager:
        return namespace.dictionary  # type: ignore[no-any-return]
    return None


def read_records(namespace: Any, keys: Sequence[bytes]) -> list[Any]:
    """The values under ``keys`` (None where absent), in one backend round trip.

    Beaker's API reads one key per call; memcached and Redis answer several
    in one request, and the file, dbm and SQL namespaces load the whole
    namespace in one open anyway.
    """
    dictionary = memory_records(namespace)
    if dictionary is not None:
        return [dictionary.get(key) for key in keys]
    if isinstance(namespace, MemcachedNamespaceManager):
        formatted = [namespace._format_key(key) for key in keys]
        found = namespace.mc.get_multi(formatted) or {}
        return [found.get(key) for key in formatted]
    if isinstance(namespace, RedisNamespaceManager):
        raw = namespace.client.mget([namespace._format_key(key) for key in keys])
        loads = _loads_of(namespace)
        return [None if value is None else loads(value) for value in raw]
    if isinstance(namespace, DBMNamespaceManager) and LOADS in namespace.__dict__:
        return _read_dbm(namespace, keys, namespace.__dict__[LOADS])
    refresh(namespace)
    namespace.acquire_read_lock()
    try:
        values = []
        for key in keys:
            try:
                values.append(namespace[key])
            except KeyError:
                values.append(None)
        return values
    finally:
        namespace.release_read_lock()


def _read_dbm(namespace: Any, keys: Sequence[bytes], loads: Callable[[Any], Any]) -> list[Any]:
    # DBMNamespaceManager.__getitem__ unpickles each value itself
    namespace.acquire_read_lock()
    try:
        values = []
        for key in keys:
            try:
                values.append(loads(namespace.dbm[key]))
            except KeyError:
                values.append(None)
        return values
    finally:
        namespace.release_read_lock()


def read_records_with(
    namespace: Any, keys: Sequence[bytes], other: Any, other_keys: Sequence[bytes]
) -> tuple[list[Any], list[Any]]:
    """``read_records`` of two namespaces of one backend, in one round trip where it can.

    memcached and Redis namespaces on one server share a client, and one
    ``get_multi`` / ``MGET`` answers keys of both; memory namespaces are
    dicts. File, dbm and SQL namespaces are separate files or rows: two reads.
    """
    if not other_keys:
        return read_records(namespace, keys), []
    if type(namespace) is MemoryNamespaceManager and type(other) is MemoryNamespaceManager:
        first, second = namespace.dictionary, other.dictionary
        return [first.get(key) for key in keys], [second.get(key) for key in other_keys]
    if (
        isinstance(namespace, MemcachedNamespaceManager)
        and isinstance(other, MemcachedNamespaceManager)
        and namespace.mc is other.mc
    ):
        formatted = [namespace._format_key(key) for key in keys]
        other_formatted = [other._format_key(key) for key in other_keys]
        found = namespace.mc.get_multi(formatted + other_formatted) or {}
        return [found.get(key) for key in formatted], [found.get(key) for key in other_formatted]
    if (
        isinstance(namespace, RedisNamespaceManager)
        and isinstance(other, RedisNamespaceManager)
        and namespace.client is other.client
    ):
        # A cluster keeps the two namespaces in two slots, maybe on two
        # nodes: mget_nonatomic sends one MGET per slot in one pipeline that
        # writes to every node before reading any answer.
        clustered = isinstance(namespace, RedisClusterNamespaceManager)
        get = namespace.client.mget_nonatomic if clustered else namespace.client.mget
        raw = get(
            [namespace._format_key(key) for key in keys]
            + [other._format_key(key) for key in other_keys]
        )
        loads = _loads_of(namespace)
        values = [None if value is None else loads(value) for value in raw]
        return values[: len(keys)], values[len(keys) :]
    return read_records(namespace, keys), read_records(other, other_keys)


def raw_get(namespace: Any, key: bytes) -> Any:
    """One GET of ``key`` through a memcached or Redis namespace's own client, not decoded.

    What a hit on that backend cannot cost less than: the benchmark's yardstick.
    """
    if isinstance(namespace, MemcachedNamespaceManager):
        return namespace.mc.get(namespace._format_key(key))
    if isinstance(namespace, RedisNamespaceManager):
        return namespace.client.get(namespace._format_key(key))
    raise TypeError(f"not a memcached or Redis namespace: {namespace!r}")


def set_records(namespace: Any, values: dict[bytes, Any]) -> None:
    """Store bare ``values`` (no expiry), in one round trip where the backend can."""
    if isinstance(namespace, MemcachedNamespaceManager):
        failed = namespace.mc.set_multi(
            {namespace._format_key(key): value for key, value in values.items()}
        )
        if failed:  # the keys it could not store
            raise WriteRefused("memcached did not store table versions: server down")
        return
    if isinstance(namespace, RedisNamespaceManager):
        namespace.client.mset(
            {namespace._format_key(key): pickle.dumps(value) for key, value in values.items()}
        )
        return
    refresh(namespace)
    namespace.acquire_write_lock()
    try:
        for key, value in values.items():
            namespace[key] = value
    finally:
        namespace.release_write_lock()
