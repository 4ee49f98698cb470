"""The "cache every query" mode: which ORM SELECTs it caches, and which never.

``cache_all(Session, "default")`` gives every ORM SELECT of a session
factory (``Query``, ``select()``, ``Session.get()``, lazy loads) a
``FromCache`` of that region, with automatic invalidation on. A query keeps
its own ``FromCache`` or ``RelationshipCache`` if it has one. Never cached
in this mode, whatever the query's options say:

* a query with ``NoCache()`` or the execution option ``cache=False``;
* ``with_for_update()``, ``populate_existing()`` and ``yield_per``;
* a statement whose result depends on the moment or on chance
  (``dependencies.VOLATILE_FUNCTIONS``: ``func.now()``,
  ``current_timestamp``, ``func.random()``, sequences, ...);
* a textual statement, or SQL text inside one, whose tables cannot be told;
* a Core ``select()`` of tables or plain expressions, with no ORM entity;
* any query of a session whose transaction has written (the rule for
  uncommitted changes, see ``writes``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import ORMExecuteState

from .internals import _sa_internals
from .invalidation import dependencies
from .invalidation.dependencies import ANY_TABLE
from .options import NoCache

# the execution option that keeps one execution out of the cache
EXECUTION_OPTION = "cache"


def eligible(state: ORMExecuteState, options: Sequence[Any]) -> bool:
    """True when the mode may cache ``state``'s statement."""
    execution_options = state.execution_options
    if execution_options.get(EXECUTION_OPTION, True) is False:
        return False
    if any(isinstance(option, NoCache) for option in options):
        return False
    if not state.is_orm_statement:
        return False
    load_options = state.load_options
    if (
        execution_options.get("yield_per")
        or execution_options.get("populate_existing")
        or _sa_internals.load_option(load_options, "yield_per")
        or _sa_internals.load_option(load_options, "populate_existing")
        or _sa_internals.for_update(state.statement)
    ):
        return False
    cache_key = _sa_internals.statement_cache_key(state.statement)
    if cache_key is None:
        return False
    reads = dependencies.reads_for(state.statement, cache_key.key)
    return not reads.volatile and ANY_TABLE not in reads.tables
