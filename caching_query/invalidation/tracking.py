"""Which writes happened, and when they became visible to other connections.

Every statement any ``Engine`` runs passes ``after_cursor_execute``; the
ones that write (``statements``) are noted against the DBAPI connection
they ran on, whether they came from an ORM flush, an ORM bulk statement,
Core DML, ``text()`` or ``exec_driver_sql()``, and whether or not the
session uses the cache. A write counts only once it is committed:

* in a transaction, written tables wait on the connection; a SAVEPOINT
  opens a level of its own, which its release merges into the enclosing
  one and its rollback drops; a rollback drops them all;
* the commit publishes them, from inside the dialect's ``do_commit``: after
  the database committed and before ``commit()`` returns, so a query that
  any process starts afterwards sees the new versions;
* a statement on an ``AUTOCOMMIT`` connection is published at once.

Writes made with a raw DBAPI cursor, or by other programs, are not seen:
``caching_query.invalidate_tables()`` announces those.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from ..internals import _sa_internals
from . import publish, versions
from .statements import written_tables

# In Connection.info, which belongs to the DBAPI connection: a stack of
# sets of tables written, one per open transaction level.
_PENDING = "caching_query.written_tables"
# ... and whether a statement ran since the transaction began
_RAN = "caching_query.statement_ran"
_SNAPSHOT_LEVELS = frozenset({"REPEATABLE READ", "SERIALIZABLE", "SNAPSHOT"})

_lock = threading.Lock()
_started = False


def start() -> None:
    """Watch every engine's writes from now on (idempotent)."""
    global _started
    with _lock:
        if _started:
            return
        event.listen(Engine, "after_cursor_execute", _after_cursor_execute)
        event.listen(Engine, "savepoint", _savepoint)
        event.listen(Engine, "release_savepoint", _release_savepoint)
        event.listen(Engine, "rollback_savepoint", _rollback_savepoint)
        event.listen(Engine, "rollback", _rollback)
        event.listen(Engine, "commit", _ended)
        event.listen(Engine, "begin", _ended)
        event.listen(Engine, "rollback_twophase", _rollback_twophase)
        _started = True


def _after_cursor_execute(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    conn.info[_RAN] = True
    if context is None or _sa_internals.may_write(context):
        tables = written_tables(statement) - publish.cache_tables
        if tables:
            _written(conn, tables)
            return
    # a read (almost every statement), or transaction control
    if statement[:7].upper() == "RELEASE" and _sa_internals.ended_transaction(conn):
        _committed(conn.info)


def _written(conn: Any, tables: frozenset[str]) -> None:
    versions.note_local_write(tables)
    if _sa_internals.is_autocommit(conn):
        publish.publish(tables)
        return
    _sa_internals.publish_after_commit(conn.dialect, _committed)
    stack = conn.info.get(_PENDING)
    if stack is None:
        conn.info[_PENDING] = [set(tables)]
    else:
        stack[-1].update(tables)


def _committed(info: dict[str, Any]) -> None:
    stack = info.pop(_PENDING, None)
    if stack:
        tables = set().union(*stack)
        if tables:
            publish.publish(tables)


def _savepoint(conn: Any, name: str) -> None:
    stack = conn.info.get(_PENDING)
    if stack is None:
        conn.info[_PENDING] = [set(), set()]
    else:
        stack.append(set())


def _release_savepoint(conn: Any, name: str, context: Any) -> None:
    stack = conn.info.get(_PENDING)
    if stack and len(stack) > 1:
        top = stack.pop()
        stack[-1].update(top)


def _rollback_savepoint(conn: Any, name: str, context: Any) -> None:
    stack = conn.info.get(_PENDING)
    if stack and len(stack) > 1:
        stack.pop()


def _rollback(conn: Any) -> None:
    conn.info.pop(_PENDING, None)
    conn.info.pop(_RAN, None)


def _ended(conn: Any) -> None:
    conn.info.pop(_RAN, None)


def reads_an_older_snapshot(conn: Any) -> bool:
    """True when a statement about to run on ``conn`` may see rows older than now.

    Under REPEATABLE READ, SERIALIZABLE or SNAPSHOT isolation a transaction
    reads the snapshot taken at its first statement. Versions read after
    that statement may be newer than the rows the next query returns, so
    such a result is not stored. pysqlite runs SELECTs outside any
    transaction whatever SQLAlchemy reports, so SQLite does not count.
    """
    if not conn.info.get(_RAN) or conn.dialect.name == "sqlite":
        return False
    level = conn.get_execution_options().get("isolation_level") or conn.default_isolation_level
    return str(level).upper() in _SNAPSHOT_LEVELS


def _rollback_twophase(conn: Any, xid: Any, is_prepared: bool) -> None:
    conn.info.pop(_PENDING, None)
