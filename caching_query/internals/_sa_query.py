"""The legacy ``Query``'s execution step, taken over to serve a hit without ``Session.execute``.

``Query.all()``, ``first()``, ``one()``, ``one_or_none()``, ``scalar()``,
iteration and slicing all fetch through the private ``Query._iter()``: it
builds the 2.0 statement, hands it to ``Session.execute`` and shapes the
result (scalars for a single entity, unique where the ORM asks). The direct
entrance (``caching_query.direct``) replaces exactly that step, doing what
``Session.execute`` does before its ``do_orm_execute`` hooks run and nothing
of what follows them. Every name used here has a canary in
``tests/test_sa_internals.py``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Result
from sqlalchemy.orm import Query, Session
from sqlalchemy.sql.base import CompileState
from sqlalchemy.util import immutabledict

__all__ = [
    "DirectFetch",
    "orm_statement",
    "given_options",
    "query_parameters",
    "plain_execution",
    "prepare",
    "execute_hooks",
    "shaped",
    "LOAD_OPTIONS",
]

# the execution option a Query hands its load options to the Session under
LOAD_OPTIONS = "_sa_orm_load_options"


class DirectFetch:
    """Placed before ``Query`` in a subclass's bases: its fetch asks the cache first."""

    def _fetch_directly(self) -> Any:  # pragma: no cover - CachingQuery defines it
        return None

    def _iter(self) -> Any:
        result = self._fetch_directly()
        if result is None:
            return super()._iter()  # type: ignore[misc]
        return result


def orm_statement(query: Query[Any]) -> Any:
    """``query``'s 2.0 statement, as ``Query._iter()`` builds it (always one
    the ORM executes, even for a Query of plain columns)."""
    return query._statement_20()


def given_options(query: Query[Any]) -> immutabledict[str, Any]:
    """The execution options ``Query._iter()`` hands to ``Session.execute``."""
    return immutabledict({LOAD_OPTIONS: query.load_options})


def query_parameters(query: Query[Any]) -> Any:
    return query._params


def plain_execution(query: Query[Any], statement: Any) -> tuple[Any, dict[str, Any]] | None:
    """The load options and bind arguments ``prepare`` would give, without its work.

    Only where neither the statement nor the session carries execution
    options: then the ORM's preparation keeps the query's own load options
    and names the statement and its mapper as bind arguments. None
    otherwise (``prepare`` merges them).
    """
    if statement._execution_options or getattr(query.session, "execution_options", None):
        return None
    subject = statement._propagate_attrs.get("plugin_subject")
    bind_arguments: dict[str, Any] = {"clause": statement}
    if subject:
        bind_arguments["mapper"] = subject.mapper
    return query.load_options, bind_arguments


def prepare(
    query: Query[Any], statement: Any
) -> tuple[Any, immutabledict[str, Any], dict[str, Any]]:
    """``query``'s execution as ``Session.execute`` prepares it for its hooks.

    ``statement`` is ``orm_statement(query)``. Returns its parameters, the
    execution options as the hooks' ``ORMExecuteState`` has them (the
    statement's own, then the processed ones with the load options merged
    in) and the bind arguments.
    """
    session = query.session
    params = query._params
    options = given_options(query)
    session_options = getattr(session, "execution_options", None)  # SQLAlchemy 2.1
    if session_options:
        own = statement._execution_options
        options = immutabledict(
            {k: v for k, v in session_options.items() if k not in own} if own else session_options
        ).union(options)
    compile_state_cls: Any = CompileState._get_plugin_class_for_plugin(statement, "orm")
    bind_arguments: dict[str, Any] = {}
    prepared = compile_state_cls.orm_pre_session_exec(
        session, statement, params, options, bind_arguments, True
    )
    options = statement._execution_options.union(prepared[1])
    if len(prepared) > 2:  # SQLAlchemy 2.1 also returns the parameters
        params = prepared[2]
    return params, options, bind_arguments


def execute_hooks(session: Session) -> tuple[Any, ...]:
    """The ``do_orm_execute`` listeners ``Session.execute`` would run, in order."""
    return tuple(session.dispatch.do_orm_execute)


def shaped(result: Result[Any], load_options: Any) -> Any:
    """``result`` shaped as ``Query._iter()`` shapes what ``Session.execute`` returned."""
    attributes = result._attributes
    shaped_result: Any = result.scalars() if attributes.get("is_single_entity", False) else result
    if attributes.get("filtered", False) and not load_options._yield_per:
        shaped_result = shaped_result.unique()
    return shaped_result
