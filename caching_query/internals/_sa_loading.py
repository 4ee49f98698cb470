"""Turning stored rows into ORM objects: the SQLAlchemy internals it takes.

A cache entry of a shared region holds the statement's raw rows, exactly as
the database cursor returned them (after type processing). A hit hands
those rows to SQLAlchemy's own loader, as if the cursor had just returned
them, so objects come out precisely as an uncached query builds them:
identity map first, loader options, lazy loaders, events and uniquing all
included.

Doing so needs three things SQLAlchemy keeps private, all here, each with a
canary in ``tests/test_sa_internals.py``:

* the compiled form of the statement (it carries the ORM compile state
  and the result columns the loader looks rows up by);
* a stand-in for the DBAPI execution context the loader consults;
* the compile state's ``orm_setup_cursor_result()`` entry point.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Dialect, Result
from sqlalchemy.engine.result import IteratorResult, SimpleResultMetaData
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import Compiled

from . import _fast_load

__all__ = [
    "Replay",
    "replay_for",
    "remember",
    "is_loadable",
    "load_cursor",
]

_MEMO_SIZE = 1000
_MEMO_ATTRIBUTE = "_caching_query_replays"
_lock = threading.Lock()


class Replay:
    """What loading stored rows of one compiled statement needs, made once."""

    __slots__ = ("compiled", "keys", "metadata", "_plan")

    def __init__(self, compiled: Compiled) -> None:
        self.compiled = compiled
        columns = _result_columns(compiled)
        self.keys = tuple(column.keyname for column in columns)
        # Keyed by name and by every object the compiler matched to the
        # column, as a cursor result is: the loader looks columns up by
        # the objects its compile state adapted.
        self.metadata = _StoredRowsMetaData(
            list(self.keys), extra=[column.objects for column in columns]
        )
        self._plan: Any = _UNPLANNED

    def load_fast(self, state: ORMExecuteState, rows: Sequence[tuple[Any, ...]]) -> Any:
        """The result through the short cut, or None where it does not apply."""
        plan = self._plan
        if plan is _UNPLANNED:
            plan = self._plan = _fast_load.plan_for(self.compiled, self.metadata)
        if plan is None:
            return None
        return _fast_load.load(plan, state.session, state.statement, state.load_options, rows)

    def load(self, state: ORMExecuteState, rows: Sequence[tuple[Any, ...]]) -> Result[Any]:
        """The result through SQLAlchemy's own loader."""
        raw: Any = IteratorResult(self.metadata, iter(rows))
        raw.context = _StoredRowsContext(self.compiled)
        return _setup(state, state.session, raw, self.compiled)  # type: ignore[no-any-return]


_UNPLANNED = object()


def _result_columns(compiled: Compiled) -> list[Any]:
    """The columns a compiled SELECT returns, in order (empty for other statements)."""
    return getattr(compiled, "_result_columns", None) or []


def _memo_for(dialect: Dialect) -> dict[Any, Replay]:
    # Kept on the dialect, so that it goes when the engine does: a
    # WeakKeyDictionary keyed by the dialect would never let it go, as
    # every compiled statement in it refers back to the dialect.
    memo = dialect.__dict__.get(_MEMO_ATTRIBUTE)
    if memo is None:
        with _lock:
            memo = dialect.__dict__.setdefault(_MEMO_ATTRIBUTE, {})
    return memo  # type: ignore[no-any-return]


def remember(dialect: Dialect, structure: Any, compiled: Compiled) -> Replay:
    """Keep what a miss compiled, for later hits of ``structure``."""
    memo = _memo_for(dialect)
    replay = memo.get(structure)
    if replay is None or replay.compiled is not compiled:
        if len(memo) >= _MEMO_SIZE:
            memo.clear()
        replay = memo[structure] = Replay(compiled)
    return replay


def replay_for(statement: Executable, structure: Any, dialect: Dialect) -> Replay:
    """How to load stored rows of ``statement`` for ``dialect``.

    ``structure`` is the statement's structural cache key; statements with
    equal keys compile alike, which is what SQLAlchemy's own compiled
    cache relies on. A process that only ever hits compiles once here.
    """
    replay = _memo_for(dialect).get(structure)
    if replay is None:
        compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        replay = remember(dialect, structure, compiled)
    return replay


def is_loadable(compiled: Compiled, cursor_keys: tuple[str, ...]) -> bool:
    """True when rows a cursor returned under ``cursor_keys`` can be replayed.

    Stored rows are matched to the statement's columns by position, as the
    compiler lists them. A textual statement may instead be matched by
    name (columns declared by keyword, or not declared at all): then the
    cursor's columns differ from the compiler's list, in order or number.
    """
    compile_state = getattr(compiled, "compile_state", None)
    return (
        compile_state is not None
        and hasattr(compile_state, "orm_setup_cursor_result")
        and not compile_state.compile_options._is_star
        and tuple(c.keyname for c in _result_columns(compiled)) == cursor_keys
    )


class _StoredRowsContext:
    """Stands in for the execution context of a cursor that never ran."""

    __slots__ = ("compiled",)
    _is_server_side = False

    def __init__(self, compiled: Compiled) -> None:
        self.compiled = compiled


class _StoredRowsMetaData(SimpleResultMetaData):
    """Column lookup as a cursor result does it: optional lookups of a
    column the statement does not return (a subclass's columns in a
    polymorphic load) answer None instead of raising."""

    def _index_for_key(self, key: Any, raiseerr: bool = True) -> Any:
        if not raiseerr and not isinstance(key, int) and key not in self._keymap:
            return None
        return super()._index_for_key(key, raiseerr)


def _setup(state: ORMExecuteState, session: Session, raw: Result[Any], compiled: Compiled) -> Any:
    compile_state: Any = compiled.compile_state
    # Rows are loaded at once, so that loads the loader triggers (selectin,
    # subquery, immediate) run while the caller's hook can still see them.
    options = {**state.execution_options, "prebuffer_rows": True}
    return compile_state.orm_setup_cursor_result(
        session, state.statement, state.parameters, options, state.bind_arguments, raw
    )


def load_cursor(
    state: ORMExecuteState, cursor: Result[Any], session: Session | None = None
) -> Result[Any]:
    """The ORM result of a cursor result, as ``Session.execute`` builds it.

    ``session`` loads the objects instead of ``state``'s own session.
    """
    compiled = cursor.context.compiled  # type: ignore[attr-defined]
    return _setup(state, session or state.session, cursor, compiled)  # type: ignore[no-any-return]
