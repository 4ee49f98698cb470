"""Entries of ORM objects: session-local regions and hand-made entries.

A ``ScopedSessionNamespace`` keeps the session's own objects, so that a hit
returns the very objects the session holds. ``Query.set_value()`` stores
objects the caller built. And a statement whose rows cannot be matched to
columns (``text()`` without declared columns) is loaded in a private
session whose objects, detached when it closes, are what gets stored.

A hit on a shared objects entry attaches copies with ``merge(load=False)``;
an object already present and loaded in the session wins, as it does for
an ordinary query.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.engine import Result
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.orm.attributes import instance_state

from ..internals import _sa_internals, _sa_loading
from .entry import CacheEntry

_mapped_types: dict[type, bool] = {}


def entry_from(result: Result[Any]) -> CacheEntry:
    """An objects entry holding everything ``result`` returns."""
    unique = _sa_internals.requires_unique(result)
    if unique:
        # Rows are stored deduplicated; replay refuses them without
        # .unique() exactly as the source result would have.
        result = result.unique()
    return CacheEntry.of_objects(
        _sa_internals.portable_frozen(result.freeze()), unique_required=unique
    )


def from_cursor(state: ORMExecuteState, cursor: Result[Any]) -> CacheEntry:
    """Load ``cursor`` into a private session and keep its detached objects."""
    session = state.session
    connection = session.connection(bind_arguments=state.bind_arguments)
    with type(session)(bind=connection, info=dict(session.info), autoflush=False) as private:
        result = _sa_loading.load_cursor(state, cursor, private)
        return entry_from(result)


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
    return CacheEntry.of_objects(frozen)


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
    # a transient object's key is None, under which nothing is found
    existing = session.identity_map.get(instance_state(obj).key)  # type: ignore[arg-type]
    if existing is not None and not inspect(existing).expired_attributes:
        return existing
    return session.merge(obj, load=False)


def replay(session: Session, entry: CacheEntry, local: bool = False) -> Result[Any]:
    """A Result over an objects entry whose objects belong to ``session``."""
    frozen = entry.data
    if not local:
        rows = _sa_internals.frozen_rows(frozen)
        with session.no_autoflush:
            for row in rows:
                for index, value in enumerate(row):
                    if value is not None and _is_mapped(value):
                        row[index] = _attach(session, value)
        frozen = frozen.with_new_rows(rows)
    result: Result[Any] = frozen()
    if entry.unique_required:
        _sa_internals.require_unique(result)
    return result
