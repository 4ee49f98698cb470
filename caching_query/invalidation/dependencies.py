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
once per structure and kept. Before a statement of a structure has run in
this process, what it reads is guessed from the statement as written; a
miss whose compiled statement reads more is not stored (its tables'
versions were not all read before it ran), and the next one is.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Final, NamedTuple

from sqlalchemy import Column
from sqlalchemy.orm import Mapper, QueryableAttribute, RelationshipProperty
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter, ColumnClause, ColumnElement, TextClause
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.selectable import TableClause

from ..internals import _sa_internals
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
    # read off the compiled statement (else off the statement as written,
    # which lacks what the ORM adds when compiling: eager joins, say)
    complete: bool = False


def _text_reads_tables(text: str) -> bool:
    return bool(_READS_TABLES.search(text))


def _function_is_volatile(node: FunctionElement[Any]) -> bool:
    name = str(getattr(node, "name", "")).lower()
    if name in VOLATILE_FUNCTIONS:
        return True
    if name in _CLOCK_WHEN_GIVEN_TEXT:
        return any(isinstance(arg, BindParameter) for arg in visitors.iterate(node.clauses))
    return False


def reads_of(element: Any, complete: bool = False) -> Reads:
    """What ``element`` (a Core or ORM statement, or a clause) reads."""
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
    return Reads(frozenset(found), volatile, complete)


_memo: dict[Any, Reads] = {}


def reads_for(statement: Any, structure: Any) -> Reads:
    """What the result of ``statement`` depends on, as far as is known yet.

    ``structure`` is the statement's structural cache key: statements that
    share it compile alike, so answers are kept under it. Until a statement
    of this structure has run (``learn``), the answer is read off the
    statement as written and off the mappers, relationships and tables its
    structural key names (which covers loader options and eager loads).
    """
    known = _memo.get(structure)
    if known is not None:
        return known
    written = reads_of(statement)
    named: set[str] = set()
    _named_tables(structure, named, set())
    return _keep(structure, written._replace(tables=written.tables | named))


def _named_tables(node: Any, found: set[str], seen: set[int]) -> None:
    """Tables of the mappers, relationships, tables and columns in a structural key."""
    if type(node) is tuple:
        if any(isinstance(item, type) and issubclass(item, QueryableAttribute) for item in node):
            _attribute_tables(node, found, seen)
        for item in node:
            _named_tables(item, found, seen)
    elif isinstance(node, Mapper):
        _mapper_tables(node, found, seen)
    elif isinstance(node, RelationshipProperty):
        _mapper_tables(node.mapper, found, seen)
        if node.secondary is not None:
            found.update(reads_of(node.secondary).tables)
    elif isinstance(node, TableClause):
        found.add(table_name(node.name))
    elif isinstance(node, ColumnElement):
        table = getattr(node, "table", None)
        if isinstance(table, TableClause):
            found.add(table_name(table.name))


def _attribute_tables(node: tuple[Any, ...], found: set[str], seen: set[int]) -> None:
    # an attribute (in a join, say) is keyed as
    # (n, its class, "key", its name, "_parententity", (its mapper,))
    fields = dict(zip(node[2::2], node[3::2], strict=False))
    name, owner = fields.get("key"), fields.get("_parententity")
    if type(owner) is tuple and owner and isinstance(owner[0], Mapper) and type(name) is str:
        relationship = owner[0].relationships.get(name)
        if relationship is not None:
            _named_tables(relationship, found, seen)


_EAGER = frozenset({"joined", "selectin", "subquery", "immediate"})


def _mapper_tables(mapper: Mapper[Any], found: set[str], seen: set[int]) -> None:
    """A mapper's tables: its inheritance tables and subclasses', column
    properties' subqueries, and what its eager relationships load."""
    if id(mapper) in seen:
        return
    seen.add(id(mapper))
    for each in mapper.base_mapper.self_and_descendants:
        found.update(table_name(t.name) for t in each.tables)
        for prop in each.column_attrs:
            for column in prop.columns:
                if not isinstance(column, Column):
                    found.update(reads_of(column).tables)
        for relationship in each.relationships:
            if relationship.lazy in _EAGER:
                _named_tables(relationship, found, seen)


def learn(structure: Any, compiled: Any) -> Reads:
    """What a statement of ``structure`` depends on, read off what SQLAlchemy compiled."""
    known = _memo.get(structure)
    if known is not None and known.complete:
        return known
    return _keep(structure, reads_of(_sa_internals.compiled_statement(compiled), complete=True))


def _keep(structure: Any, reads: Reads) -> Reads:
    """Keep ``reads`` for ``structure``; a complete answer replaces a guess."""
    with _lock:
        if len(_memo) >= _MEMO_SIZE:
            _memo.clear()
        if reads.complete:
            _memo[structure] = reads
            return reads
        return _memo.setdefault(structure, reads)


def remember(structure: Any, tables: frozenset[str]) -> None:
    """Add ``tables`` (named by entries, for loads stored with them) to ``structure``'s."""
    with _lock:
        known = _memo.get(structure)
        if known is not None and not tables <= known.tables:
            _memo[structure] = known._replace(tables=known.tables | tables)
