"""A SELECT over a cached SELECT (the COUNT a paginator runs) is cached like it.

Flask-SQLAlchemy's ``db.paginate(statement)`` counts with
``select(func.count()).select_from(statement.subquery())``: the cache
option stays on the inner statement, which the hook never sees as the
executed one. Such an execution borrows the inner statement's
``FromCache`` (its region, namespace, expiry, ``auto_invalidate``) and is
cached under its own derived key, so the count and each page are separate
entries of one namespace: clearing the namespace, or a committed write to
a table either reads, invalidates both.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import ORMExecuteState
from sqlalchemy.sql import Select, Subquery

from .internals import _sa_internals
from .options import FromCache, single_from_cache


def cache_option(statement: Any) -> FromCache | None:
    """The ``FromCache`` ``statement`` borrows, or None.

    Only a ``Select`` with no options of its own whose one explicit FROM is
    a subquery of a statement carrying a ``FromCache`` (or of such a
    ``Select`` again) borrows. An option with an explicit ``cache_key`` is
    not borrowed: the wrapping statement would share the entry of the one
    it wraps.
    """
    while isinstance(statement, Select) and not _sa_internals.statement_options(statement):
        froms = _sa_internals.explicit_froms(statement)
        if len(froms) != 1 or not isinstance(froms[0], Subquery):
            return None
        statement = froms[0].element
        options = _sa_internals.statement_options(statement)
        if options:
            option = single_from_cache(options)
            return option if option is not None and option.cache_key is None else None
    return None


def for_execution(state: ORMExecuteState) -> FromCache | None:
    """``cache_option()`` of an execution's statement; never for a relationship's load."""
    option = cache_option(state.statement)
    return None if option is None or state.is_relationship_load else option
