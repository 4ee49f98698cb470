"""Entries of raw rows: what a miss stores and a hit loads, for shared regions.

A miss runs the statement on the caller's own connection and keeps the
rows the cursor returned; the caller's objects are built from those rows
by SQLAlchemy's loader, exactly as a hit will build them. Nothing stored
is an ORM object, so no entry ever holds a session's state, and an entry
reads the same in every process that runs the same code.

Loads the loader itself triggers while building the objects (selectin,
subquery and immediate loads, polymorphic sub-loads) are part of the
result: during a miss their rows are captured into the same entry, keyed
by their own derived keys, and a hit serves them from there. A nested
load the entry does not hold (the caller's identity map made the loader
ask for something else) simply runs its SQL.
"""

from __future__ import annotations

import copy
import datetime
import decimal
import enum
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy.engine import Result
from sqlalchemy.orm import ORMExecuteState, Session

from .. import keys
from ..exc import UncacheableQueryError
from ..internals import _sa_internals, _sa_loading
from ..invalidation import versions
from .entry import CacheEntry, StoredRows


class _Loading:
    """The entry whose rows a session is currently turning into objects."""

    __slots__ = ("session", "nested", "capturing")

    def __init__(self, session: Session, nested: dict[str, StoredRows], capturing: bool) -> None:
        self.session = session
        self.nested = nested
        self.capturing = capturing


_current: ContextVar[_Loading | None] = ContextVar("caching_query_loading", default=None)


@contextmanager
def _loading(session: Session, nested: dict[str, StoredRows], capturing: bool) -> Iterator[None]:
    token = _current.set(_Loading(session, nested, capturing))
    try:
        yield
    finally:
        _current.reset(token)


def serve_nested(state: ORMExecuteState) -> Result[Any] | None:
    """Serve a load the loader triggered while building a cached result.

    None when no entry is being loaded in this session, or when the entry
    does not hold this load (it then runs as usual).
    """
    loading = _current.get()
    if (
        loading is None
        or loading.session is not state.session
        # only loads on behalf of the loader; a query an event handler runs
        # meanwhile was not asked to be cached
        or not state.is_relationship_load
    ):
        return None
    try:
        key = keys.derive_execution_key(state.statement, state.parameters, state.load_options)
    except UncacheableQueryError:
        return None
    if loading.capturing:
        stored, result = _capture(state, loading.nested)
        if stored is None:
            return _load_cursor(state, result)
        loading.nested[key] = stored
        return result
    stored = loading.nested.get(key)
    if stored is None:
        return None
    return _load(state, stored, loading.nested)


def _replay_for(state: ORMExecuteState) -> _sa_loading.Replay:
    structure = _sa_internals.statement_cache_key(state.statement).key
    dialect = state.session.get_bind(**state.bind_arguments).dialect
    return _sa_loading.replay_for(state.statement, structure, dialect)


def _build(
    state: ORMExecuteState,
    replay: _sa_loading.Replay,
    rows: list[tuple[Any, ...]],
    nested: dict[str, StoredRows],
    capturing: bool,
) -> Result[Any]:
    # The short cut never triggers nested loads; SQLAlchemy's loader may,
    # so it runs where the hook can see them.
    result = replay.load_fast(state, rows)
    if result is None:
        with _loading(state.session, nested, capturing):
            result = replay.load(state, rows)
    return result  # type: ignore[no-any-return]


def _load(
    state: ORMExecuteState, stored: StoredRows, nested: dict[str, StoredRows]
) -> Result[Any] | None:
    replay = _replay_for(state)
    if replay.keys != stored.columns:
        return None  # stored by code that selects other columns
    rows = copy.deepcopy(stored.rows) if stored.mutable else stored.rows
    return _build(state, replay, rows, nested, capturing=False)


# Values of these types cannot change in place, so objects built from
# stored rows may share them with the entry.
_IMMUTABLE = frozenset(
    [
        type(None),
        bool,
        int,
        float,
        str,
        bytes,
        decimal.Decimal,
        datetime.date,
        datetime.datetime,
        datetime.time,
        datetime.timedelta,
        uuid.UUID,
    ]
)


def _has_mutable_value(rows: list[tuple[Any, ...]]) -> bool:
    immutable = _IMMUTABLE
    return any(
        type(value) not in immutable and not isinstance(value, enum.Enum)
        for row in rows
        for value in row
    )


def load(state: ORMExecuteState, entry: CacheEntry) -> Result[Any] | None:
    """The caller's result built from a rows entry; None if it no longer fits."""
    return _load(state, entry.data, entry.nested)


def _capture(
    state: ORMExecuteState, nested: dict[str, StoredRows]
) -> tuple[StoredRows | None, Result[Any]]:
    """Run the statement; return its stored rows (None: not storable as rows)."""
    session = state.session
    connection = session.connection(bind_arguments=state.bind_arguments)
    versions.note_running(connection)
    cursor = connection.execute(
        state.statement, state.parameters or {}, execution_options=state.execution_options
    )
    compiled = cursor.context.compiled
    structure = _sa_internals.statement_cache_key(state.statement).key
    versions.note_ran(structure, compiled)
    if compiled is None or not _sa_loading.is_loadable(compiled, tuple(cursor.keys())):
        return None, cursor
    replay = _sa_loading.remember(connection.dialect, structure, compiled)
    fetched = [tuple(row) for row in cursor]
    stored = StoredRows(replay.keys, fetched, _has_mutable_value(fetched))
    rows = copy.deepcopy(fetched) if stored.mutable else fetched
    return stored, _build(state, replay, rows, nested, capturing=True)


def _load_cursor(state: ORMExecuteState, cursor: Result[Any]) -> Result[Any]:
    return _sa_loading.load_cursor(state, cursor)


def capture(state: ORMExecuteState) -> tuple[CacheEntry | None, Result[Any]]:
    """Run ``state``'s statement for a miss.

    Returns the entry to store and the caller's result. When the rows
    cannot be matched to the statement's columns (a ``text()`` without
    declared columns), the entry is None and the result is the unread
    cursor result, for the caller to load another way.
    """
    nested: dict[str, StoredRows] = {}
    stored, result = _capture(state, nested)
    if stored is None:
        return None, result
    return CacheEntry.of_rows(stored, nested), result
