"""Every use of a private Beaker name, in one place.

``tests/test_beaker_internals.py`` fails loudly when one of them changes.
"""

from __future__ import annotations

import errno
import pickle
import types
from collections.abc import Callable, Sequence
from typing import Any

import beaker.cache
import sqlalchemy as sa
from beaker.container import DBMNamespaceManager, FileNamespaceManager, MemoryNamespaceManager
from beaker.ext.memcached import MemcachedNamespaceManager
from beaker.ext.redisclusternm import RedisClusterNamespaceManager
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
    "EntryRefused",
    "load_outer_layer_with",
]

# Set on a namespace whose backend's own unpickling must go through a
# restricted loader (see ``load_outer_layer_with``).
_LOADS = "_caching_query_loads"


def _loads_of(namespace: Any) -> Callable[[Any], Any]:
    return namespace.__dict__.get(_LOADS, pickle.loads)  # type: ignore[no-any-return]


def load_outer_layer_with(
    namespace: Any, loads: Callable[[Any], Any], unpickler: type[pickle.Unpickler]
) -> None:
    """Make whatever ``namespace``'s backend unpickles itself go through ``loads``.

    Each backend unpickles in its own place: the file namespace its whole
    file at open, ext:database/ext:sqla their row (a ``PickleType``), dbm
    and Redis each value, the memcached client each item flagged as a
    pickle. ``TypeError`` for a backend this does not know.
    """
    if isinstance(namespace, (RedisNamespaceManager, DBMNamespaceManager)):
        namespace.__dict__[_LOADS] = loads
    elif isinstance(namespace, FileNamespaceManager):
        namespace.do_open = types.MethodType(_file_open(loads), namespace)
    elif isinstance(namespace, SqlaNamespaceManager):
        namespace.do_open = types.MethodType(_sql_open(loads), namespace)
    elif isinstance(namespace, MemcachedNamespaceManager):
        client = namespace.mc
        if type(client).__module__.split(".", 1)[0] != "bmemcached":
            raise TypeError(
                f"signing on ext:memcached needs python-binary-memcached, not "
                f"{type(client).__module__}: only its unpickler can be replaced"
            )
        for server in client.servers:
            server.unpickler = unpickler
    else:
        raise TypeError(f"signing is not supported on {type(namespace).__name__}")


def _file_open(loads: Callable[[Any], Any]) -> Callable[..., None]:
    # FileNamespaceManager.do_open, with the file read by ``loads``
    def do_open(self: Any, flags: str, replace: bool) -> None:
        if not replace and self.file_exists(self.file):
            try:
                with open(self.file, "rb") as fh:
                    self.hash = loads(fh.read())
            except OSError as error:
                if error.errno not in (errno.EACCES, errno.ENOENT):
                    raise
        self.flags = flags

    return do_open


def _sql_open(loads: Callable[[Any], Any]) -> Callable[..., None]:
    # SqlaNamespaceManager.do_open, with the row's pickle read by ``loads``
    def do_open(self: Any, flags: str, replace: bool) -> None:
        if self.loaded:
            self.flags = flags
            return
        raw = sa.type_coerce(self.table.c.data, sa.LargeBinary)
        query = sa.select(raw).where(self.table.c.namespace == self.namespace)
        with self.bind.connect() as conn:
            row = conn.execute(query).fetchone()
        self._is_new = row is None
        self.hash = {} if row is None else loads(row[0])
        self.flags = flags
        self.loaded = True

    return do_open


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
            if _memcached_answers(namespace.mc):
                raise EntryRefused(
                    "memcached refused the entry: it is over the server's item size "
                    "limit (memcached -I); lower the region's max_entry_bytes"
                )
            raise WriteRefused("memcached did not store the entry: server down")
    else:
        namespace.set_value(key, record, expiretime=expire)


def _memcached_answers(client: Any) -> bool:
    # A client that cannot reach its server answers its stats call with
    # nothing: bmemcached's stats() a dict per server, python-memcached's and
    # pylibmc's get_stats() a list of (server, stats) pairs.
    ask = getattr(client, "stats", None) or getattr(client, "get_stats", None)
    try:
        answer = ask() if ask is not None else None
    except Exception:
        return False
    if isinstance(answer, dict):
        return any(answer.values())
    return any(stats for _, stats in answer or ())


def is_memcached(namespace: Any) -> bool:
    """True for a memcached namespace, whatever client it uses."""
    return isinstance(namespace, MemcachedNamespaceManager)


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
    if isinstance(namespace, DBMNamespaceManager) and _LOADS in namespace.__dict__:
        return _read_dbm(namespace, keys, namespace.__dict__[_LOADS])
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
        isinstance(namespace, RedisClusterNamespaceManager)
        and isinstance(other, RedisClusterNamespaceManager)
        and namespace.client is other.client
    ):
        # Two slots, maybe two nodes: one MGET per slot, sent in one
        # pipeline that writes to every node before reading any answer.
        raw = namespace.client.mget_nonatomic(
            [namespace._format_key(key) for key in keys]
            + [other._format_key(key) for key in other_keys]
        )
        loads = _loads_of(namespace)
        values = [None if value is None else loads(value) for value in raw]
        return values[: len(keys)], values[len(keys) :]
    if (
        isinstance(namespace, RedisNamespaceManager)
        and isinstance(other, RedisNamespaceManager)
        and namespace.client is other.client
    ):
        raw = namespace.client.mget(
            [namespace._format_key(key) for key in keys]
            + [other._format_key(key) for key in other_keys]
        )
        loads = _loads_of(namespace)
        values = [None if value is None else loads(value) for value in raw]
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
