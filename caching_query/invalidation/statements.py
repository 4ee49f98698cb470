"""Which tables a statement sent to the database writes, read from its SQL.

Every statement a ``Connection`` sends passes through here after it ran
(``tracking``): compiled ``insert()/update()/delete()`` and DDL, ORM
flushes and bulk statements, ``text()`` and ``exec_driver_sql()`` alike.
Reading the SQL text that was actually sent, rather than the statement
object, covers every way of writing with one rule and sees what the ORM
really emitted (the base and subclass tables of a joined-inheritance
flush, the secondary table of a many-to-many).

Recognised (case-insensitive, after comments and whitespace):

* ``INSERT [OR ...] INTO t``, ``REPLACE INTO t``, ``UPDATE [OR ...] [ONLY] t``,
  ``DELETE FROM [ONLY] t``, ``MERGE INTO t``, ``COPY t FROM``: table ``t``;
* ``TRUNCATE [TABLE] [ONLY] t1, t2``, ``DROP TABLE [IF EXISTS] t1, t2``,
  ``ALTER TABLE [IF EXISTS] [ONLY] t``, ``CREATE TABLE t``, ``CREATE INDEX .. ON t``,
  ``DROP INDEX``/``VIEW`` and other DDL: the tables named, or everything;
* ``WITH ... INSERT/UPDATE/DELETE``: every table those verbs name;
* reads and transaction control write nothing: ``SELECT``, ``VALUES``,
  ``SHOW``, ``EXPLAIN`` (without ``ANALYZE``), ``PRAGMA``, ``SET``,
  ``BEGIN``/``START``/``COMMIT``/``END``/``ROLLBACK``/``SAVEPOINT``/``RELEASE``,
  ``VACUUM``, ``ANALYZE``, ``CHECKPOINT``, ``LISTEN``/``NOTIFY``, ``LOCK``;
* anything else (``CALL``, ``DO``, ``EXECUTE``, a ``SELECT`` of a function
  that writes is not seen) that is not a read: ``EVERYTHING``.

Table names are compared without schema and case-insensitively, so a write
may invalidate a same-named table of another schema: a miss, never a stale hit.
"""

from __future__ import annotations

import re
from typing import Final

EVERYTHING: Final = "~all"

_COMMENTS = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*", re.S)
_FIRST_WORD = re.compile(r"[A-Za-z]+")
# an identifier, possibly quoted and schema-qualified
_NAME = r'(?:"[^"]+"|`[^`]+`|\[[^\]]+\]|[A-Za-z_][\w$]*)'
_QUALIFIED = rf"(?P<name>{_NAME}(?:\s*\.\s*{_NAME})*)"

_READS = frozenset(
    "select values show pragma set begin start commit end rollback savepoint release "
    "vacuum analyze checkpoint listen notify unlisten lock discard reset fetch close "
    "declare prepare deallocate".split()
)

_TARGET_VERBS = [
    r"\binsert\s+(?:or\s+\w+\s+)?(?:ignore\s+)?into",
    r"\breplace\s+into",
    r"(?<!\bfor\s)(?<!\bfor\s\s)\bupdate\s+(?:or\s+\w+\s+)?(?:only\s+)?",
    r"\bdelete\s+from\s+(?:only\s+)?",
    r"\bmerge\s+into",
    r"\A\s*copy",
    r"\balter\s+table\s+(?:if\s+exists\s+)?(?:only\s+)?",
    r"\bcreate\s+(?:temp\w*\s+)?table\s+(?:if\s+not\s+exists\s+)?",
    r"\bcreate\s+(?:unique\s+)?index\s+.*?\bon\s+(?:only\s+)?",
]
_TARGETS = [re.compile(rf"{verb}\s*{_QUALIFIED}", re.I | re.S) for verb in _TARGET_VERBS]
# statements naming a list of tables
_NAME_LIST = rf"(?P<names>{_QUALIFIED}(?:\s*,\s*{_NAME}(?:\s*\.\s*{_NAME})*)*)"
_LISTS = [
    re.compile(rf"\btruncate\s+(?:table\s+)?(?:only\s+)?{_NAME_LIST}", re.I),
    re.compile(rf"\bdrop\s+table\s+(?:if\s+exists\s+)?{_NAME_LIST}", re.I),
]
_LIST_ITEM = re.compile(rf"{_NAME}(?:\s*\.\s*{_NAME})*")
_EXPLAIN_WRITES = re.compile(r"\A\s*explain\b.*\banalyze\b", re.I | re.S)


def table_name(name: str) -> str:
    """The form a table's versions are kept under: unquoted, no schema, lower case."""
    last = name.rsplit(".", 1)[-1].strip()
    if last[:1] in '"`[' and len(last) > 1:
        last = last[1:-1]
    return last.lower()


def _names(found: str) -> list[str]:
    return [table_name(item) for item in _LIST_ITEM.findall(found)]


def written_tables(sql: str) -> frozenset[str]:
    """The tables ``sql`` may write: empty for a read, ``{EVERYTHING}`` when unknown."""
    text = sql[_COMMENTS.match(sql).end() :]  # type: ignore[union-attr]
    word_match = _FIRST_WORD.match(text)
    if word_match is None:
        return frozenset({EVERYTHING}) if text.strip() else frozenset()
    word = word_match.group().lower()
    if word == "explain":
        return frozenset({EVERYTHING}) if _EXPLAIN_WRITES.match(text) else frozenset()
    if word in ("select", "values", "with", "table"):
        # a read, unless a data-modifying CTE hides in it
        return _targets(text)
    if word in _READS:
        return frozenset()
    return _targets(text) or frozenset({EVERYTHING})


def _targets(text: str) -> frozenset[str]:
    tables: set[str] = set()
    for pattern in _TARGETS:
        for match in pattern.finditer(text):
            tables.add(table_name(match.group("name")))
    for pattern in _LISTS:
        for match in pattern.finditer(text):
            tables.update(_names(match.group("names")))
    return frozenset(tables)
