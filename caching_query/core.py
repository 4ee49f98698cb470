"""The one path every cached execution takes.

Legacy ``Query`` methods, 2.0 ``Session.execute(select(...))``,
``Session.get()`` and lazy loads all reach ``Session.execute``, which
calls the ``do_orm_execute`` hook installed here. The hook finds a cache
option, derives the key, and then either replays a stored entry (a hit:
no SQL) or runs the statement and stores what it loaded (a miss).

Two storage policies:

* shared regions (memory, file, memcached, ...) store the statement's raw
  rows (see ``rows``): a miss runs the statement on the caller's own
  connection, a hit hands the stored rows to SQLAlchemy's loader. Either
  way the caller's objects are built as an uncached query builds them, an
  object already in the session winning; no ORM object is ever stored.
* session-local regions (``ScopedSessionNamespace``) keep the session's own
  objects, so identity is preserved (see ``objects``).

A session with changes not yet committed (see ``writes``) bypasses shared
regions entirely: it must not publish uncommitted rows to other sessions,
nor be handed committed rows that its own writes have made stale.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from beaker.cache import Cache
from sqlalchemy.engine import Result
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql import Executable

from . import every_query, health, keys, misses, regions, wrapped, writes
from .entries import objects, rows
from .entries.entry import ROWS, CacheEntry
from .exc import CacheOptionError, CachingQueryError
from .installation import default_manager as _default_manager
from .internals import _sa_internals
from .invalidation import switch, versions
from .operations import stats
from .options import (
    DEFAULT_NAMESPACE,
    CacheOption,
    FromCache,
    RelationshipCache,
    single_from_cache,
)

# Set on the inner execution of a miss, so that no cache hook (this one,
# or a second copy installed on a subclass) caches it again.
BYPASS = "_caching_query_bypass"
# Set to the statement itself when the direct entrance (``direct``) has
# already decided it is not served from the cache: the hook stands aside
# for that statement only, not for the loads its loader triggers.
DECIDED = "_caching_query_decided"

log = logging.getLogger("caching_query")
# one DEBUG line per cached execution: region, namespace, key, hit or miss, rows
query_log = logging.getLogger("caching_query.queries")

# -- the hook ---------------------------------------------------------------


def _on_do_orm_execute(state: ORMExecuteState) -> Result[Any] | None:
    if not state.is_select:
        writes.note_statement(state)
        if single_from_cache(state.user_defined_options) is not None:
            raise CacheOptionError(
                "FromCache applies to SELECT statements only; this statement is "
                f"not one ({type(state.statement).__name__}). A textual query "
                "is known to be a SELECT once its columns are declared: "
                "from_statement(text(...).columns(...))"
            )
        return None
    execution_options = state.execution_options
    if execution_options.get(BYPASS) or execution_options.get(DECIDED) is state.statement:
        return None
    nested = rows.serve_nested(state)
    if nested is not None:
        return nested
    return serve(state, _sa_internals.statement_options(state.statement))


# what ``direct`` looks for among a session's do_orm_execute listeners
HOOK = _on_do_orm_execute


def serve(state: Any, options: Sequence[Any]) -> Result[Any] | None:
    """Serve an ORM SELECT from the cache its options (or ``cache_all``) name.

    ``state`` is the hook's ``ORMExecuteState`` or the direct entrance's
    stand-in. None: not served from the cache, the statement runs as usual.
    """
    # no options: a paginator's COUNT over a cached select borrows its FromCache
    option = find_option(state, options) if options else wrapped.for_execution(state)
    settings = switch.settings_for(state.session)
    if settings is not None and settings.cache_all is not None:
        # "cache every query": some statements are never cached, whatever they say
        if not every_query.eligible(state, options):
            _bypassed(option or settings.cache_all, stats.UNCACHEABLE)
            return None
        option = option or settings.cache_all
    if option is None:
        return None
    return execute_cached(state, option, settings)


def find_option(state: ORMExecuteState, options: Sequence[Any]) -> CacheOption | None:
    """The cache option among ``options`` (the statement's) that applies to this execution."""
    from_cache = relationship = False
    for option in options:
        if isinstance(option, FromCache):
            from_cache = True
        elif isinstance(option, RelationshipCache):
            relationship = True
    if not (from_cache or relationship):
        return None  # loader options only: no need to ask what kind of load this is
    if state.is_relationship_load:
        return _relationship_option(state, options) if relationship else None
    return single_from_cache(options)


def _relationship_option(state: ORMExecuteState, options: Sequence[Any]) -> CacheOption | None:
    path = state.loader_strategy_path
    if path is None or len(path) < 2:
        return None
    mapper: Any = path[-2]  # a Mapper or an aliased class's inspection
    prop = path[-1]
    key = getattr(prop, "key", None)
    if key is None:
        return None
    for option in options:
        if isinstance(option, RelationshipCache):
            for link in option.links():
                if link.matches(mapper, key):
                    return link
    return None


def execute_cached(
    state: ORMExecuteState, option: CacheOption, settings: switch.Settings | None = None
) -> Result[Any] | None:
    """Serve ``state`` from the cache ``option`` names; None to bypass."""
    session = state.session
    load_options = state.load_options
    # The direct entrance's load options already hold a yield_per given as
    # an execution option (the ORM's preparation folds it in), and reading
    # its execution options would run that preparation on every hit.
    if _sa_internals.load_option(load_options, "yield_per") or (
        isinstance(state, ORMExecuteState) and state.execution_options.get("yield_per")
    ):
        raise CacheOptionError(
            f"{option!r} cannot be combined with yield_per: a cached result is "
            "stored whole; remove one of the two"
        )
    if not state.is_orm_statement:
        # A Core select() of tables or plain expressions: SQLAlchemy builds
        # no ORM result for it, which is what an entry is replayed into.
        _bypassed(option, stats.UNCACHEABLE)
        return None
    manager = option.cache_manager or _default_manager(session)
    try:
        cache = option.cache(manager)
    except Exception as error:
        # A backend that cannot even be opened (its server is down) must not
        # stop the query; configuration errors still raise.
        if isinstance(error, CachingQueryError) or not health.is_backend_failure(error):
            raise
        health.failed_region(option.region, error)
        _bypassed(option, stats.BACKEND_ERRORS)
        _bypassed(option, stats.OUTAGE)
        return None
    local = regions.is_session_local(cache)
    if not local:
        if writes.has_unpublished_changes(session):
            stats.count(stats.slot_of(cache), stats.UNCOMMITTED)
            return None
        if _later_hooks_run(state):
            stats.count(stats.slot_of(cache), stats.LATER_HOOKS)
            return None
    key = key_for(option, state.statement, state.parameters, load_options)
    watch = switch.watch(settings, state.statement, option, manager, cache)
    execute = _execute_local if local else _execute_shared
    result: Result[Any] = execute(state, cache, key, option.expire, watch)
    return result


def _bypassed(option: CacheOption, reason: int) -> None:
    namespace = keys.safe_name(option.namespace or DEFAULT_NAMESPACE, "namespace")
    stats.count((option.region, namespace), reason)


def watch_for(
    session: Session, statement: Executable, option: CacheOption, cache: Cache
) -> versions.Watch | None:
    """``switch.watch`` for a statement of ``session`` outside an execution (``get_value()``)."""
    manager = option.cache_manager or _default_manager(session)
    return switch.watch(switch.settings_for(session), statement, option, manager, cache)


_warned_hooks: set[tuple[str, ...]] = set()


def _later_hooks_run(state: ORMExecuteState) -> bool:
    """True when other ``do_orm_execute`` hooks follow this one.

    They may change the statement (a global ``with_loader_criteria``) or
    run it themselves (horizontal sharding): a shared entry made without
    them would hold other rows than the query returns, and serving one
    would skip them. So such executions bypass shared regions, with one
    warning per set of hooks. Session-local regions run them on a miss.
    """
    if not isinstance(state, ORMExecuteState):
        return False  # the direct entrance: taken only where no other hook is
    later = _sa_internals.later_hooks(state)
    if not later:
        return False
    names = tuple(getattr(hook, "__qualname__", repr(hook)) for hook in later)
    if names not in _warned_hooks:
        _warned_hooks.add(names)
        log.warning(
            "caching_query: do_orm_execute hooks run after the cache hook on %s (%s); "
            "shared cache regions are bypassed for its queries. Call "
            "caching_query.install() after registering them to cache their results.",
            type(state.session).__name__,
            ", ".join(names),
        )
    return True


# -- keys -------------------------------------------------------------------


def key_for(
    option: CacheOption,
    statement: Executable,
    parameters: Any,
    load_options: Any = None,
) -> str:
    """The key ``option`` stores ``statement``'s result under."""
    if option.cache_key is not None:
        return keys.safe_name(option.cache_key, "cache_key")
    return keys.derive_execution_key(statement, parameters, load_options)


# -- miss and hit -----------------------------------------------------------


def _run_local(state: ORMExecuteState) -> CacheEntry:
    return objects.entry_from(state.invoke_statement(execution_options={BYPASS: True}))


def _execute_local(
    state: ORMExecuteState,
    cache: Cache,
    key: str,
    expire: int | None,
    watch: versions.Watch | None = None,
) -> Any:
    ran: list[bool] = []

    def create() -> CacheEntry:
        ran.append(True)
        return _run_local(state)

    entry = misses.get_or_create(cache, key, create, expire, watch)
    if query_log.isEnabledFor(logging.DEBUG):
        _log_execution(cache, key, not ran, entry)
    return objects.replay(state.session, entry, local=True)


def _execute_shared(
    state: ORMExecuteState,
    cache: Cache,
    key: str,
    expire: int | None,
    watch: versions.Watch | None = None,
) -> Any:
    made: list[Result[Any]] = []

    def create() -> CacheEntry:
        entry, result = rows.capture(state)
        if entry is None:
            entry = objects.from_cursor(state, result)
            result = objects.replay(state.session, entry)
        made.append(result)
        return entry

    entry = misses.get_or_create(cache, key, create, expire, watch)
    if query_log.isEnabledFor(logging.DEBUG):
        _log_execution(cache, key, not made, entry)
    if made:
        return made[0]
    result = replay(state, entry)
    if result is None:
        # Stored by code whose statement returns other columns (another
        # release of the models): unusable here, so it is replaced.
        misses.create_and_store(cache, key, create, expire, watch)
        return made[0]
    return result


def _log_execution(cache: Cache, key: str, hit: bool, entry: CacheEntry) -> None:
    query_log.debug(
        "%s region=%s namespace=%s key=%s rows=%d",
        "hit" if hit else "miss",
        getattr(cache, "region", "?"),
        cache.namespace_name,
        key,
        len(entry),
    )


def replay(state: ORMExecuteState, entry: CacheEntry) -> Result[Any] | None:
    """The caller's result from a shared entry; None if it does not fit."""
    if entry.kind == ROWS:
        return rows.load(state, entry)
    return objects.replay(state.session, entry)


__all__ = [
    "BYPASS",
    "DECIDED",
    "HOOK",
    "serve",
    "find_option",
    "execute_cached",
    "key_for",
    "watch_for",
    "replay",
]
