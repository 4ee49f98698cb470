"""The one path every cached execution takes.

Legacy ``Query`` methods, 2.0 ``Session.execute(select(...))``,
``Session.get()`` and lazy loads all reach ``Session.execute``, which
calls the ``do_orm_execute`` hook installed here. The hook finds a cache
option, derives the key, and then either replays a stored entry (a hit:
no SQL) or runs the statement and stores what it loaded (a miss).

Two storage policies:

* shared regions (memory, file, memcached, ...) store *detached* objects
  loaded in a private Session on the same connection, so the cache never
  holds an object attached to a session, and the caller's own objects are
  never expunged. A hit attaches copies with ``merge(load=False)``; an
  object already present and loaded in the session wins, as it does for
  an ordinary query.
* session-local regions (``ScopedSessionNamespace``) keep the session's own
  objects, so identity is preserved.

A session with changes not yet committed (see ``writes``) bypasses shared
regions entirely: it must not publish uncommitted rows to other sessions,
nor be handed committed rows that its own writes have made stale.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from beaker.cache import Cache, CacheManager
from sqlalchemy import event, inspect
from sqlalchemy.engine import Result
from sqlalchemy.orm import ORMExecuteState, Session, scoped_session, sessionmaker
from sqlalchemy.orm.attributes import instance_state
from sqlalchemy.sql import Executable

from . import _sa_internals, health, keys, regions, store, writes
from .entry import CacheEntry
from .exc import CacheOptionError, CachingQueryError
from .options import CacheOption, FromCache, RelationshipCache, single_from_cache

# Set on the inner execution of a miss, so that no cache hook (this one,
# or a second copy installed on a subclass) caches it again.
BYPASS = "_caching_query_bypass"

SessionTarget = Session | type[Session] | sessionmaker[Any] | scoped_session[Any]

_installed: weakref.WeakSet[Any] = weakref.WeakSet()
_default_managers: weakref.WeakKeyDictionary[Any, CacheManager] = weakref.WeakKeyDictionary()
_mapped_types: dict[type, bool] = {}


# -- installation -----------------------------------------------------------


def install(target: SessionTarget, cache_manager: CacheManager | None = None) -> None:
    """Let sessions made by ``target`` serve cache options.

    ``target`` is a ``sessionmaker``, ``scoped_session``, ``Session``
    subclass or instance. ``CachingQuery`` calls this itself; 2.0-style
    ``select()`` / ``Session.get()`` users call it once. Regions are looked
    up in ``cache_manager``, else in the manager of a ``query_callable``
    query class given to the sessionmaker, else in Beaker's global
    regions. Calling it again is harmless.
    """
    if isinstance(target, scoped_session):
        target = target.session_factory
    if isinstance(target, sessionmaker):
        if cache_manager is None:
            cache_manager = getattr(target.kw.get("query_cls"), "cache_manager", None)
        target = target.class_
    if not (
        isinstance(target, Session) or (isinstance(target, type) and issubclass(target, Session))
    ):
        raise TypeError(
            f"install() takes a sessionmaker, scoped_session, Session class or "
            f"Session, not {target!r}"
        )
    if cache_manager is not None:
        _default_managers[target] = cache_manager
    if target in _installed:
        return
    event.listen(target, "do_orm_execute", _on_do_orm_execute)
    _installed.add(target)


def ensure_installed(session: Session, cache_manager: CacheManager | None = None) -> None:
    """Install the hook for ``session``'s class unless it is already there.

    ``cache_manager`` (a ``query_callable`` class's) becomes the class's
    default unless one is set: options that lost their binding by being
    pickled with the objects they loaded resolve regions through it.
    """
    cls = type(session)
    target: Any = cls if _is_private_class(cls) else session
    if cache_manager is not None and target not in _default_managers:
        _default_managers[target] = cache_manager
    if cls not in _installed and session not in _installed:
        install(target)


def _is_private_class(cls: type[Session]) -> bool:
    """True for a bare subclass, such as the one each sessionmaker makes.

    Hooking it affects only the sessions of that factory. A class with a
    body of its own (``Session`` itself, ``ShardedSession``, an
    application's subclass) is used elsewhere too: there the hook goes on
    the session instance instead.
    """
    return cls is not Session and all(name.startswith("__") for name in vars(cls))


def _default_manager(session: Session) -> CacheManager | None:
    return _default_managers.get(session) or _default_managers.get(type(session))


# -- the hook ---------------------------------------------------------------


def _on_do_orm_execute(state: ORMExecuteState) -> Result[Any] | None:
    if not state.is_select:
        writes.note_statement(state)
        return None
    if state.execution_options.get(BYPASS):
        return None
    option = find_option(state)
    if option is None:
        return None
    return execute_cached(state, option)


def find_option(state: ORMExecuteState) -> CacheOption | None:
    """The cache option that applies to this execution, if any."""
    if state.is_relationship_load:
        return _relationship_option(state)
    return single_from_cache(state.user_defined_options)


def _relationship_option(state: ORMExecuteState) -> CacheOption | None:
    path = state.loader_strategy_path
    if path is None or len(path) < 2:
        return None
    mapper, prop = path[-2], path[-1]
    key = getattr(prop, "key", None)
    if key is None:
        return None
    for option in state.user_defined_options:
        if isinstance(option, RelationshipCache):
            for link in option.links():
                if link.matches(mapper, key):
                    return link
    return None


def execute_cached(state: ORMExecuteState, option: CacheOption) -> Result[Any] | None:
    """Serve ``state`` from the cache ``option`` names; None to bypass."""
    session = state.session
    if _sa_internals.load_option(state.load_options, "yield_per") or state.execution_options.get(
        "yield_per"
    ):
        raise CacheOptionError(
            f"{option!r} cannot be combined with yield_per: a cached result is "
            "stored whole; remove one of the two"
        )
    try:
        cache = option.cache(_default_manager(session))
    except Exception as error:
        # A backend that cannot even be opened (its server is down) must not
        # stop the query; configuration errors still raise.
        if isinstance(error, CachingQueryError) or not health.is_backend_failure(error):
            raise
        health.failed_region(option.region, error)
        return None
    local = regions.is_session_local(cache)
    if not local and writes.has_unpublished_changes(session):
        return None
    key = key_for(option, state.statement, state.parameters, state.load_options)

    def create() -> CacheEntry:
        return _run_local(state) if local else _run_detached(state)

    entry = store.get_or_create(cache, key, create, option.expire)
    return replay(session, entry, local)


# -- keys -------------------------------------------------------------------


def key_for(
    option: CacheOption,
    statement: Executable,
    parameters: Mapping[str, Any] | None,
    load_options: Any = None,
) -> str:
    """The key ``option`` stores ``statement``'s result under."""
    if option.cache_key is not None:
        return keys.safe_name(option.cache_key, "cache_key")
    tuples = bool(load_options and _sa_internals.load_option(load_options, "only_return_tuples"))
    return keys.derive_key(statement, parameters, tuples)


def cache_and_key(
    session: Session | None,
    statement: Executable,
    option: CacheOption,
    parameters: Mapping[str, Any] | None = None,
    load_options: Any = None,
) -> tuple[Cache, str]:
    """The Beaker ``Cache`` and key ``statement`` is cached under."""
    manager = _default_manager(session) if session is not None else None
    return option.cache(manager), key_for(option, statement, parameters, load_options)


def invalidate(
    statement: Executable,
    option: CacheOption,
    parameters: Mapping[str, Any] | None = None,
    session: Session | None = None,
) -> None:
    """Remove the entry ``statement`` (a ``select()``) is cached under.

    ``statement`` may be given with or without ``option`` applied.
    """
    if option not in _sa_internals.statement_options(statement):
        statement = statement.options(option)  # type: ignore[attr-defined]
    cache, key = cache_and_key(session, statement, option, parameters)
    store.remove(cache, key)


def clear(
    region: str = "default",
    namespace: str | None = None,
    cache_manager: CacheManager | None = None,
) -> None:
    """Make every entry of one namespace a miss, in every process.

    One write, whatever the backend: nothing outside the namespace is
    touched (Beaker's own clear flushes a whole memcached server).
    """
    store.clear(FromCache(region, namespace, cache_manager=cache_manager).cache())


# -- miss -------------------------------------------------------------------


def _bypass_options(state: ORMExecuteState) -> dict[str, Any]:
    return {**state.local_execution_options, BYPASS: True}


def _entry_from(result: Result[Any]) -> CacheEntry:
    unique = _sa_internals.requires_unique(result)
    if unique:
        # Rows are stored deduplicated; replay refuses them without
        # .unique() exactly as the source result would have.
        result = result.unique()
    return CacheEntry(_sa_internals.portable_frozen(result.freeze()), unique_required=unique)


def _run_detached(state: ORMExecuteState) -> CacheEntry:
    """Load the rows in a private session on the caller's connection.

    Closing that session leaves every loaded object detached with its
    loaded state, which is exactly what a shared cache may hold.
    """
    session = state.session
    connection = session.connection(bind_arguments=state.bind_arguments)
    with type(session)(bind=connection, info=dict(session.info), autoflush=False) as private:
        result = private.execute(
            state.statement,
            state.parameters,
            execution_options=_bypass_options(state),
            bind_arguments=state.bind_arguments,
        )
        return _entry_from(result)


def _run_local(state: ORMExecuteState) -> CacheEntry:
    return _entry_from(state.invoke_statement(execution_options={BYPASS: True}))


def entry_from_rows(
    session: Session,
    keys_: Sequence[str],
    rows: Sequence[Any],
    single_entity: bool,
    local: bool,
) -> CacheEntry:
    """An entry for rows a caller hands over (``Query.set_value``)."""
    if not local:
        rows = _detached_copies(session, rows, single_entity)
    filtered = any(_is_mapped(value) for row in rows for value in _cells(row, single_entity))
    frozen = _sa_internals.frozen_result_from_rows(keys_, rows, single_entity, filtered)
    return CacheEntry(frozen)


def _cells(row: Any, single_entity: bool) -> Sequence[Any]:
    return (row,) if single_entity else tuple(row)


def _detached_copies(session: Session, rows: Sequence[Any], single_entity: bool) -> list[Any]:
    with type(session)(bind=session.get_bind(), autoflush=False) as private:
        copied = []
        for row in rows:
            cells = [
                private.merge(value, load=False) if _is_mapped(value) else value
                for value in _cells(row, single_entity)
            ]
            copied.append(cells[0] if single_entity else tuple(cells))
    return copied


# -- hit --------------------------------------------------------------------


def _is_mapped(value: Any) -> bool:
    kind = type(value)
    try:
        return _mapped_types[kind]
    except KeyError:
        mapped = inspect(kind, raiseerr=False) is not None and hasattr(kind, "__mapper__")
        _mapped_types[kind] = mapped
        return mapped


def _attach(session: Session, obj: Any) -> Any:
    """``obj`` as an object of ``session``, never ``obj`` itself."""
    existing = session.identity_map.get(instance_state(obj).key)
    if existing is not None and not inspect(existing).expired_attributes:
        return existing
    return session.merge(obj, load=False)


def replay(session: Session, entry: CacheEntry, local: bool = False) -> Result[Any]:
    """A Result over ``entry`` whose objects belong to ``session``."""
    frozen = entry.result
    if not local:
        rows = _sa_internals.frozen_rows(frozen)
        with session.no_autoflush:
            for row in rows:
                for index, value in enumerate(row):
                    if value is not None and _is_mapped(value):
                        row[index] = _attach(session, value)
        frozen = frozen.with_new_rows(rows)  # type: ignore[arg-type]
    result = frozen()
    if entry.unique_required:
        _sa_internals.require_unique(result)
    return result


__all__ = [
    "BYPASS",
    "install",
    "ensure_installed",
    "find_option",
    "execute_cached",
    "key_for",
    "cache_and_key",
    "invalidate",
    "clear",
    "replay",
    "entry_from_rows",
]
