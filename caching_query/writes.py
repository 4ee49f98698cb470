"""Which sessions have written in their current transaction.

A session with uncommitted writes must bypass shared regions (``core``).
Pending objects are visible on the session itself; what was already sent
-- a flush, an ORM bulk UPDATE/DELETE, DML or a non-SELECT ``text()``
through ``Session.execute`` -- is recorded here against the transaction,
which then drops out of the weak set when it ends.

Writes made directly on a ``Connection``, outside the session, are not seen.
"""

from __future__ import annotations

import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql.elements import TextClause

from .internals import _sa_internals

_written_transactions: weakref.WeakSet[Any] = weakref.WeakSet()
_writes_pending: weakref.WeakSet[Session] = weakref.WeakSet()


def has_unpublished_changes(session: Session) -> bool:
    """True when ``session`` holds or has sent writes not yet committed."""
    if _sa_internals.has_pending_changes(session):
        return True
    transaction = session.get_transaction()
    if transaction is None:
        return False
    return transaction in _written_transactions


def note_statement(state: ORMExecuteState) -> None:
    """Called by the hook for every statement that is not an ORM SELECT."""
    if _may_write(state):
        _expect_write(state.session)


def _mark_written(session: Session) -> None:
    transaction = session.get_transaction()
    if transaction is not None:
        _written_transactions.add(transaction)


def _expect_write(session: Session) -> None:
    """Mark the transaction a statement about to run will write in.

    Beginning one here would resolve the bind ahead of SQLAlchemy (and of
    hooks such as horizontal sharding's), so an unbegun session is marked
    when its transaction begins.
    """
    if session.get_transaction() is not None:
        _mark_written(session)
    else:
        _writes_pending.add(session)


def _on_after_begin(session: Session, transaction: Any, connection: Any) -> None:
    if session in _writes_pending:
        _writes_pending.discard(session)
        _mark_written(session)


def _on_after_flush(session: Session, flush_context: Any) -> None:
    _mark_written(session)


def _on_after_bulk(update_context: Any) -> None:
    _mark_written(update_context.session)


# Writes must be seen from the start, before any session has run a cached
# query. These fire only on writes, so listening on every Session costs
# nothing per query.
event.listen(Session, "after_flush", _on_after_flush)
event.listen(Session, "after_begin", _on_after_begin)
event.listen(Session, "after_bulk_update", _on_after_bulk)
event.listen(Session, "after_bulk_delete", _on_after_bulk)


def _may_write(state: ORMExecuteState) -> bool:
    if state.is_insert or state.is_update or state.is_delete:
        return True
    # text() may be anything; only a plain SELECT is known not to write
    statement = state.statement
    return isinstance(statement, TextClause) and not statement.text.lstrip().lower().startswith(
        "select"
    )
