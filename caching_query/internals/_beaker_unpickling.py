"""Where each Beaker backend unpickles what it reads, so that signing can put a safe loader there.

Private Beaker names, like ``_beaker_internals`` (its sibling): the file
namespace unpickles its whole file in ``do_open``, ext:database and
ext:sqla their row (a ``PickleType``) in theirs, dbm and Redis each value,
the memcached client each item flagged as a pickle.
``tests/test_sa_internals.py`` has the canaries.
"""

from __future__ import annotations

import errno
import pickle
import types
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from beaker.container import DBMNamespaceManager, FileNamespaceManager
from beaker.ext.memcached import MemcachedNamespaceManager
from beaker.ext.redisnm import RedisNamespaceManager
from beaker.ext.sqla import SqlaNamespaceManager

__all__ = ["LOADS", "load_outer_layer_with"]

# Set on a namespace whose backend's own unpickling must go through a
# restricted loader (see ``load_outer_layer_with``).
LOADS = "_caching_query_loads"


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
        namespace.__dict__[LOADS] = loads
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
