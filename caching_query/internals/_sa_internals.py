"""Every use of a private SQLAlchemy name, in one place.

SQLAlchemy 2.1 renamed many internals; whatever this library needs beyond
the public API is reached only through this module, and
``tests/test_sa_internals.py`` fails loudly when one of them changes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import FrozenResult, Result
from sqlalchemy.engine.result import IteratorResult, SimpleResultMetaData
from sqlalchemy.orm import Query
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.elements import ClauseElement

__all__ = [
    "CacheKeyedOption",
    "statement_cache_key",
    "query_execution_parts",
    "statement_options",
    "load_option",
    "query_rows",
    "portable_frozen",
    "frozen_rows",
    "requires_unique",
    "require_unique",
    "frozen_result_from_rows",
    "named_rows",
    "has_pending_changes",
    "later_hooks",
    "compiled_statement",
    "for_update",
    "may_write",
    "is_autocommit",
    "publish_after_commit",
    "ended_transaction",
]


class CacheKeyedOption:
    """Mixin: an option that takes part in SQLAlchemy's statement cache key.

    SQLAlchemy leaves user-defined options out of the key it caches
    compiled statements under. For an option that propagates to loaders
    that is wrong: a query compiled once *without* it hands the compiled
    state, and so its option set, to a later query *with* it, and the
    objects that later query loads never carry the option. Subclasses
    return a plain, process-independent tuple from ``cache_key_parts()``.
    """

    _is_has_cache_key = True

    def cache_key_parts(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def _gen_cache_key(self, anon_map: Any, bindparams: Any) -> tuple[Any, ...]:
        return self.cache_key_parts()


def statement_cache_key(statement: Executable | ClauseElement) -> Any:
    """SQLAlchemy's structural cache key of a statement, or None.

    It is what SQLAlchemy itself uses to look up compiled SQL, so two
    statements with equal keys compile to the same SQL and load the same
    way (loader options are part of it).
    """
    return statement._generate_cache_key()  # type: ignore[union-attr]


def query_execution_parts(query: Query[Any]) -> tuple[Executable, dict[str, Any]]:
    """The statement and parameters ``Query._iter()`` hands to the Session."""
    return query._statement_20(), dict(query._params)


def statement_options(statement: Query[Any] | Executable) -> Sequence[Any]:
    """The options a legacy Query or a select() carries."""
    return statement._with_options


def explicit_froms(statement: Any) -> Sequence[Any]:
    """What a ``Select`` names in ``select_from()`` (not the FROMs its columns imply)."""
    return statement._from_obj  # type: ignore[no-any-return]


def load_option(load_options: Any, name: str) -> Any:
    """A field of the ORM's load options (``yield_per``, ``only_return_tuples``)."""
    return getattr(load_options, "_" + name)


def query_rows(result: Result[Any]) -> list[Any]:
    """``result``'s rows shaped as ``Query.all()`` shapes them."""
    attributes = result._attributes
    shaped: Any = result.scalars() if attributes.get("is_single_entity", False) else result
    if attributes.get("filtered", False):
        shaped = shaped.unique()
    return list(shaped.all())


def portable_frozen(frozen: FrozenResult[Any]) -> FrozenResult[Any]:
    """``frozen`` with the metadata a pickling backend would have stored.

    SQLAlchemy 2.1's ORM result metadata keeps a closure over the query
    context, and so over the session, connection and engine that ran it;
    pickling drops it. Doing the same for every backend keeps a memory
    region from holding those alive, and makes hits alike everywhere.
    """
    metadata = frozen.metadata
    clean = type(metadata).__new__(type(metadata))
    clean.__setstate__(metadata.__getstate__())  # type: ignore[attr-defined]
    portable = frozen.with_new_rows(frozen_rows(frozen))  # type: ignore[arg-type]
    portable.metadata = clean
    return portable


def frozen_rows(frozen: FrozenResult[Any]) -> list[list[Any]]:
    """The rows of a frozen result as mutable lists, scalars included."""
    # rewrite_rows() in SQLAlchemy 2.0, _rewrite_rows() in 2.1
    rewrite = getattr(frozen, "_rewrite_rows", None) or frozen.rewrite_rows  # type: ignore[attr-defined]
    return rewrite()  # type: ignore[no-any-return]


def requires_unique(result: Result[Any]) -> bool:
    """True when the ORM demands ``.unique()`` on this result.

    A 2.0-style joined eager load of a collection without ``unique()``
    raises on fetch; a cache hit must raise the same way.
    """
    state = getattr(result, "_unique_filter_state", None)
    return bool(state and state[1] is not None)


def _unique_required(row: Any) -> Any:
    raise sa_exc.InvalidRequestError(
        "The unique() method must be invoked on this Result, as it "
        "contains results that include joined eager loads against "
        "collections"
    )


def require_unique(result: Result[Any]) -> Result[Any]:
    """Make ``result`` refuse to be fetched without ``.unique()``."""
    result._unique_filter_state = (set(), _unique_required)
    return result


def frozen_result_from_rows(
    keys: Sequence[str],
    rows: Sequence[Any],
    single_entity: bool,
    filtered: bool,
) -> FrozenResult[Any]:
    """Build the FrozenResult an ORM execution would have produced.

    Used by ``set_value()``, where the caller hands over a list rather
    than a Result.
    """
    # A scalar-source result iterates the objects themselves, not 1-tuples.
    data = list(rows) if single_entity else [tuple(row) for row in rows]
    result: IteratorResult[Any] = IteratorResult(
        SimpleResultMetaData(list(keys)),
        iter(data),
        _source_supports_scalars=single_entity,
    )
    result._attributes = result._attributes.union(
        {"is_single_entity": single_entity, "filtered": filtered}
    )
    return result.freeze()


def named_rows(keys: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> list[Any]:
    """``rows`` as ``Row`` objects whose columns are named by ``keys``."""
    result: IteratorResult[Any] = IteratorResult(SimpleResultMetaData(list(keys)), iter(rows))
    return list(result.all())


def has_pending_changes(session: Any) -> bool:
    """``bool(session.new or session.deleted or session.dirty)``, cheaply.

    Those properties each build a set of objects; every cache hit asks,
    and only whether any exist matters.
    """
    return bool(session._new or session._deleted or session.identity_map._modified)


def later_hooks(state: Any) -> Sequence[Any]:
    """The ``do_orm_execute`` hooks that run after the one handling ``state``."""
    return state._remaining_events()  # type: ignore[no-any-return]


def compiled_statement(compiled: Any) -> Any:
    """The Core statement ``compiled`` renders: for an ORM statement, the one
    the ORM built, with its eager joins and inheritance tables."""
    compile_state = getattr(compiled, "compile_state", None)
    statement = getattr(compile_state, "statement", None)
    return statement if statement is not None else compiled.statement


def for_update(statement: Any) -> bool:
    """True for a ``SELECT ... FOR UPDATE`` (``with_for_update()``)."""
    return getattr(statement, "_for_update_arg", None) is not None


def may_write(context: Any) -> bool:
    """False for an execution context known to be a compiled SELECT."""
    return bool(
        context.isinsert
        or context.isupdate
        or context.isdelete
        or context.isddl
        or context.is_text
        or context.compiled is None
    )


def is_autocommit(connection: Any) -> bool:
    """True when ``connection``'s statements are committed as they run."""
    return connection._is_autocommit_isolation()  # type: ignore[no-any-return]


_wrap_lock = threading.Lock()
_WRAPPED = "_caching_query_after_commit"
_log = logging.getLogger("caching_query")


def publish_after_commit(dialect: Any, callback: Callable[[dict[str, Any]], None]) -> None:
    """Call ``callback(connection.info)`` after each commit ``dialect`` makes.

    SQLAlchemy's ``commit`` event fires before the database commits; what
    is announced then could be read back, stale, by another process before
    the commit lands. ``Dialect.do_commit`` is where the commit happens, so
    the dialect instance gets a wrapper that announces once it returned.
    """
    if _WRAPPED in dialect.__dict__:
        return
    with _wrap_lock:
        if _WRAPPED in dialect.__dict__:
            return
        do_commit = dialect.do_commit
        do_commit_twophase = dialect.do_commit_twophase

        def _announce(connection: Any) -> None:
            info = getattr(connection, "info", None)
            if info:
                try:
                    callback(info)
                except Exception:  # the commit happened; never undo that
                    _log.warning("caching_query: announcing a commit failed", exc_info=True)

        def commit(dbapi_connection: Any) -> None:
            do_commit(dbapi_connection)
            _announce(dbapi_connection)

        def commit_twophase(
            connection: Any, xid: Any, is_prepared: bool = True, recover: bool = False
        ) -> None:
            do_commit_twophase(connection, xid, is_prepared, recover)
            _announce(connection)

        dialect.do_commit = commit
        dialect.do_commit_twophase = commit_twophase
        dialect.__dict__[_WRAPPED] = True


def ended_transaction(connection: Any) -> bool:
    """True when the RELEASE SAVEPOINT ``connection`` just ran committed its transaction.

    SQLite makes a SAVEPOINT opened outside a transaction the transaction
    itself, and its RELEASE a commit; pysqlite opens transactions only
    before DML, so ``Session.begin_nested()`` as a session's first act is
    that case (SQLAlchemy's pysqlite docs describe the workaround).
    """
    dbapi_connection = getattr(connection.connection, "dbapi_connection", None)
    return getattr(dbapi_connection, "in_transaction", None) is False
