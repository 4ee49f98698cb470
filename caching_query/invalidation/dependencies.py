"""Which tables a cached result was read from: what its entry depends on.

The tables are read off the statement SQLAlchemy compiled, after the ORM
has added everything it loads with it: FROM clauses and joins (joined eager
loads included), subqueries in WHERE / IN / EXISTS and scalar subqueries
(``column_property`` too), CTEs, UNION and friends, the tables of joined
and single-table inheritance, the secondary table of a many-to-many lazy
load. Loads the loader triggers (selectin, subquery, immediate, polymorphic
sub-loads) are statements of their own and add their tables when they are
captured into the entry.

SQL text inside a statement (``text()``, ``literal_column()``) that reads
from tables cannot be told apart by name: such a result depends on
``ANY_TABLE``, which every write changes.

The same walk notes whether the result depends on the moment or on chance
(``func.now()``, ``current_timestamp``, ``func.random()``, sequences, SQLite's
``datetime('now')``...): "cache every query" never caches those.

The answer depends only on the statement's structure, so it is worked out
once per structure and kept.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Final, NamedTuple

from sqlalchemy.orm import ORMExecuteState
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter, ColumnClause, TextClause
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.selectable import TableClause

from .. import _sa_internals, _sa_loading
from .statements import EVERYTHING, table_name

ANY_TABLE: Final = "~any"

_MEMO_SIZE = 5000
_lock = threading.Lock()
_READS_TABLES = re.compile(r"\b(?:from|join|select)\b", re.I)

# Functions whose value depends on the moment, on chance or on the
# connection's history, on the databases SQLAlchemy supports.
VOLATILE_FUNCTIONS = frozenset(
    """now current_timestamp current_date current_time localtime localtimestamp
    sysdate sysdatetime getdate getutcdate utc_timestamp utc_date utc_time
    clock_timestamp statement_timestamp transaction_timestamp timeofday
    random rand randomblob uuid uuid4 uuid_short gen_random_uuid uuid_generate_v1
    uuid_generate_v4 newid newsequentialid sys_guid next_value nextval currval lastval
    setval last_insert_rowid last_insert_id changes total_changes row_count found_rows
    txid_current pg_backend_pid connection_id""".split()
)
# SQLite's date functions read the clock when given the string 'now'.
_CLOCK_WHEN_GIVEN_TEXT = frozenset("date time datetime julianday unixepoch strftime".split())
_VOLATILE_TEXT = re.compile(
    r"\b(?:" + "|".join(sorted(VOLATILE_FUNCTIONS)) + r")\s*\("
    r"|\bcurrent_(?:timestamp|date|time)\b|'now'",
    re.I,
)


class Reads(NamedTuple):
    """What a statement's result depends on."""

    tables: frozenset[str]  # with EVERYTHING, and ANY_TABLE when text hides tables
    volatile: bool  # depends on the moment or on chance


def _text_reads_tables(text: str) -> bool:
    return bool(_READS_TABLES.search(text))


def _function_is_volatile(node: FunctionElement[Any]) -> bool:
    name = str(getattr(node, "name", "")).lower()
    if name in VOLATILE_FUNCTIONS:
        return True
    if name in _CLOCK_WHEN_GIVEN_TEXT:
        return any(isinstance(arg, BindParameter) for arg in visitors.iterate(node.clauses))
    return False


def reads_of(element: Any) -> Reads:
    """What ``element`` (a Core statement or clause) reads."""
    found = {EVERYTHING}
    volatile = False
    for node in visitors.iterate(element):
        if isinstance(node, TableClause):
            found.add(table_name(node.name))
        elif isinstance(node, FunctionElement):
            volatile = volatile or _function_is_volatile(node)
        elif isinstance(node, TextClause | ColumnClause):
            text = node.text if isinstance(node, TextClause) else node.name
            if isinstance(node, ColumnClause) and not node.is_literal:
                continue
            if _text_reads_tables(text):
                found.add(ANY_TABLE)
            volatile = volatile or bool(_VOLATILE_TEXT.search(text))
    return Reads(frozenset(found), volatile)


_memo: dict[Any, Reads] = {}


def reads_for(state: ORMExecuteState, structure: Any) -> Reads:
    """What the result of ``state``'s statement depends on.

    ``structure`` is the statement's structural cache key: statements that
    share it compile alike, so the answer is kept under it. The first time,
    the statement is compiled (and kept for the hits that follow).
    """
    known = _memo.get(structure)
    if known is not None:
        return known
    dialect = state.session.get_bind(**state.bind_arguments).dialect
    compiled = _sa_loading.replay_for(state.statement, structure, dialect).compiled
    reads = reads_of(_sa_internals.compiled_statement(compiled))
    with _lock:
        if len(_memo) >= _MEMO_SIZE:
            _memo.clear()
        reads = _memo.setdefault(structure, reads)
    return reads


def remember(structure: Any, tables: frozenset[str]) -> None:
    """Add ``tables`` (named by entries, for loads stored with them) to ``structure``'s."""
    with _lock:
        known = _memo.get(structure)
        if known is not None and not tables <= known.tables:
            _memo[structure] = known._replace(tables=known.tables | tables)
