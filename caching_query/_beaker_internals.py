"""Every use of a private Beaker name, in one place.

``tests/test_beaker_internals.py`` fails loudly when one of them changes.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import Any

import beaker.cache
from beaker.container import MemoryNamespaceManager
from beaker.ext.memcached import MemcachedNamespaceManager
from beaker.ext.redisnm import RedisNamespaceManager
from beaker.ext.sqla import SqlaNamespaceManager

__all__ = [
    "refresh",
    "register_backend",
    "memory_records",
    "read_records",
    "read_records_with",
    "set_records",
    "set_record",
    "WriteRefused",
]


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


def set_record(namespace: Any, key: bytes, record: Any, expire: int | None) -> None:
    """Store ``record`` like ``namespace.set_value`` does, but never silently fail.

    Beaker's memcached namespace ignores the client's answer, and the
    clients report a dead server (or an item over the size limit) only
    by returning a false value.
    """
    if isinstance(namespace, MemcachedNamespaceManager):
        stored = namespace.mc.set(namespace._format_key(key), record, time=expire or 0)
        if not stored:
            raise WriteRefused(
                "memcached did not store the entry: server down, or the entry "
                "is over its item size limit"
            )
    else:
        namespace.set_value(key, record, expiretime=expire)


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
        return [None if value is None else pickle.loads(value) for value in raw]
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
        raw = namespace.client.mget(
            [namespace._format_key(key) for key in keys]
            + [other._format_key(key) for key in other_keys]
        )
        values = [None if value is None else pickle.loads(value) for value in raw]
        return values[: len(keys)], values[len(keys) :]
    return read_records(namespace, keys), read_records(other, other_keys)


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
