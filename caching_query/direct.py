"""The second entrance to the core path: a ``CachingQuery`` fetch without ``Session.execute``.

On a hit, ``Session.execute`` is pure overhead: it coerces the statement,
merges options, builds an ``ORMExecuteState`` and dispatches hooks only to
have the cache hook answer. A cached legacy query instead hands the core
the same facts (statement, parameters, processed options, bind arguments)
in a ``DirectExecution`` and the core serves it exactly as it serves the
hook: the same option lookup, key, entry, bypass rules, miss and replay.
Only a session whose sole ``do_orm_execute`` hook is the cache's takes this
entrance; any other hook may shape the result and so gets
``Session.execute``. What the core does not serve from the cache runs
through ``Session.execute``, the hook standing aside for that statement
(it has decided already) but not for the loads its loader triggers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Result
from sqlalchemy.orm import Query
from sqlalchemy.util import immutabledict

from . import core
from .internals import _sa_internals, _sa_query
from .invalidation import switch
from .options import CacheOption


class DirectExecution:
    """What the core reads of an execution, for a query served without ``Session.execute``.

    The attributes are ``ORMExecuteState``'s, with the values
    ``Session.execute`` would have given them before running its hooks.
    The ORM's own preparation of them runs only when something reads the
    processed execution options: a hit of a query and session without
    execution options needs nothing it adds.
    """

    __slots__ = (
        "session",
        "statement",
        "parameters",
        "load_options",
        "_query",
        "bind_arguments",
        "_execution_options",
    )

    is_select = True
    is_orm_statement = True
    is_relationship_load = False

    def __init__(self, query: Query[Any], statement: Any) -> None:
        self.session = query.session
        self.statement = statement
        self.parameters = _sa_query.query_parameters(query)
        self._query = query
        self.load_options: Any
        self.bind_arguments: dict[str, Any]
        self._execution_options: immutabledict[str, Any] | None = None
        plain = _sa_query.plain_execution(query, statement)
        if plain is None:
            self._prepare()
        else:
            self.load_options, self.bind_arguments = plain

    def _prepare(self) -> immutabledict[str, Any]:
        self.parameters, options, self.bind_arguments = _sa_query.prepare(
            self._query, self.statement
        )
        self._execution_options = options
        self.load_options = options[_sa_query.LOAD_OPTIONS]
        return options

    @property
    def execution_options(self) -> immutabledict[str, Any]:
        options = self._execution_options
        return options if options is not None else self._prepare()

    def invoke_statement(self, execution_options: dict[str, Any] | None = None) -> Result[Any]:
        """Run the statement through ``Session.execute``, as ``Query`` would have."""
        options = _sa_query.given_options(self._query)
        if execution_options:
            options = options.union(execution_options)
        return self.session.execute(self.statement, self.parameters, execution_options=options)


def _cached_here(query: Query[Any]) -> Sequence[Any] | None:
    """``query``'s options, when the core would cache it; None otherwise."""
    options = _sa_internals.statement_options(query)
    for option in options:
        if isinstance(option, CacheOption):
            return options
    settings = switch.settings_for(query.session)
    if settings is not None and settings.cache_all is not None:
        return options
    return None


def fetch(query: Query[Any]) -> Any:
    """``query``'s result shaped as ``Query._iter()`` returns it; None: use ``Session.execute``."""
    options = _cached_here(query)
    if options is None:
        return None
    hooks = _sa_query.execute_hooks(query.session)
    if not hooks or any(hook is not core.HOOK for hook in hooks):
        return None
    state = DirectExecution(query, _sa_query.orm_statement(query))
    result = core.serve(state, options)
    if result is None:  # not served from the cache: run it, the hook standing aside
        result = state.invoke_statement({core.DECIDED: state.statement})
    return _sa_query.shaped(result, state.load_options)
