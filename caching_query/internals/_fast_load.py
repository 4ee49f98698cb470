"""A short cut through SQLAlchemy's loader for the commonest cached result.

SQLAlchemy's loader is general: per row it weighs refresh, populate-existing,
polymorphic switches, eager loaders, version checks and events. A cache hit
on a plain entity query (``select(Person).where(...)``: mapped classes
without inheritance, every column loaded, relationships lazy, no loader
options, no load events) needs none of that, and building its objects
directly costs about half as much per row.

The short cut does exactly what ``loading._instance_processor`` does for
such a row, with the same state fields, and refuses (returns None) for
everything else, which then takes SQLAlchemy's own path. Whenever an object
with the row's identity is already in the session, it wins, as in
SQLAlchemy; if that object lacks a loaded column, the whole result goes to
SQLAlchemy, which knows how to fill it in. ``tests/test_fast_load.py``
checks that both paths leave identical objects behind.

All of this reads SQLAlchemy internals; it lives here, next to the
canaries in ``tests/test_sa_internals.py``.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Result
from sqlalchemy.engine.result import IteratorResult, SimpleResultMetaData
from sqlalchemy.orm import ColumnProperty, RelationshipProperty, Session, SynonymProperty
from sqlalchemy.orm.attributes import instance_dict
from sqlalchemy.orm.base import DEFAULT_STATE_ATTR as _STATE_ATTRIBUTE
from sqlalchemy.orm.context import _MapperEntity
from sqlalchemy.orm.instrumentation import ClassManager
from sqlalchemy.orm.interfaces import UserDefinedOption
from sqlalchemy.orm.state import InstanceState
from sqlalchemy.sql.compiler import Compiled
from sqlalchemy.util import immutabledict

__all__ = ["load"]

_PLAIN_COLUMN = (("deferred", False), ("instrument", True))
_CLASS_LEVEL_LAZY = frozenset(
    [(("lazy", "select"),), (("lazy", True),), (("lazy", "raise"),), (("lazy", "raise_on_sql"),)]
)


class _EntityPlan:
    """How one mapped entity of a result is built from a row."""

    __slots__ = (
        "manager",
        "cls",
        "stock_state",
        "identity_class",
        "pk_indexes",
        "columns",
        "load_path",
    )

    def __init__(
        self, entity: Any, pk_indexes: tuple[int, ...], columns: tuple[Any, ...], current: Any
    ) -> None:
        self.manager = entity.mapper.class_manager
        self.cls = self.manager.class_
        # SQLAlchemy's own state class on a class without a __setattr__ of
        # its own: then a state can be made without a call per object.
        self.stock_state = (
            type(self.manager) is ClassManager
            and self.manager._state_constructor is InstanceState
            and self.cls.__setattr__ is object.__setattr__
        )
        self.identity_class = entity.mapper._identity_class
        self.pk_indexes = pk_indexes
        self.columns = columns  # (attribute key, row index) pairs
        self.load_path = current + entity.path if current.path else entity.path


class _Plan:
    __slots__ = ("entities", "metadata", "attributes", "propagating", "propagates")

    def __init__(self, entities: list[_EntityPlan], compile_state: Any) -> None:
        self.entities = entities
        self.metadata = _row_metadata(
            [entity._label_name for entity in compile_state._entities],
            [entity._extra_entities for entity in compile_state._entities],
        )
        # what tells the legacy Query to dedupe and return scalars
        self.attributes = {
            (single, filtered): immutabledict({"filtered": filtered, "is_single_entity": single})
            for single in (False, True)
            for filtered in (False, True)
        }
        # which options SQLAlchemy hands on to loaded objects: decided on
        # the compiled statement's options, paired by position with the
        # executed statement's (user-defined options are not part of the
        # structure, so the two lists may differ in length)
        self.propagating = tuple(
            option.propagate_to_loaders for option in compile_state.select_statement._with_options
        )
        self.propagates = any(self.propagating)


def _row_metadata(labels: list[str], extras: list[Any]) -> SimpleResultMetaData:
    # Uniqueness of ORM objects is by identity, as in SQLAlchemy's loader.
    filters = [id] * len(labels)
    try:
        return SimpleResultMetaData(labels, extras, _create_unique_filters=lambda result: filters)
    except TypeError:  # SQLAlchemy 2.0
        return SimpleResultMetaData(labels, extras, _unique_filters=filters)  # type: ignore[call-arg]


def _entity_plan(entity: Any, compile_state: Any, metadata: SimpleResultMetaData) -> Any:
    mapper = entity.mapper
    if (
        type(entity) is not _MapperEntity
        or entity.is_aliased_class
        or entity._with_polymorphic_mappers
        or entity._polymorphic_discriminator is not None
        or entity._get_entity_clauses(compile_state) is not None  # type: ignore[no-untyped-call]
        or mapper.inherits is not None
        or mapper._inheriting_mappers
        or mapper.polymorphic_on is not None
        or mapper.always_refresh
        or mapper.version_id_col is not None
    ):
        return None
    columns = []
    for prop in mapper.iterate_properties:
        if isinstance(prop, ColumnProperty):
            if prop.strategy_key != _PLAIN_COLUMN or len(prop.columns) != 1:
                return None
            index = metadata._index_for_key(prop.columns[0], False)
            if index is None:
                return None
            columns.append((prop.key, index))
        elif isinstance(prop, RelationshipProperty):
            if prop.strategy_key not in _CLASS_LEVEL_LAZY or not prop.strategy.is_class_level:
                return None
        elif not isinstance(prop, SynonymProperty):
            return None
    pk_indexes = []
    for column in mapper.primary_key:
        index = metadata._index_for_key(column, False)
        if index is None:
            return None
        pk_indexes.append(index)
    return _EntityPlan(entity, tuple(pk_indexes), tuple(columns), compile_state.current_path)


def plan_for(compiled: Compiled, metadata: SimpleResultMetaData) -> _Plan | None:
    """The short cut for ``compiled``'s rows, or None where it does not apply."""
    compile_state: Any = compiled.compile_state
    options = compile_state.compile_options
    if (
        options._only_load_props
        or options._for_refresh_state
        or compile_state.compound_eager_adapter is not None
        or compile_state.multi_row_eager_loaders
        or compile_state.eager_joins
        or not all(
            isinstance(option, UserDefinedOption)
            for option in compile_state.select_statement._with_options
        )
    ):
        return None
    entities = [_entity_plan(e, compile_state, metadata) for e in compile_state._entities]
    if not entities or None in entities:
        return None
    return _Plan(entities, compile_state)


def _applies(plan: _Plan, session: Session, load_options: Any) -> bool:
    """Conditions that can change between executions of one statement."""
    if (
        load_options._populate_existing
        or load_options._refresh_state is not None
        or load_options._version_check
        or load_options._yield_per
        or session.dispatch.loaded_as_persistent
    ):
        return False
    for entity in plan.entities:
        dispatch = entity.manager.dispatch
        if dispatch.load or dispatch.refresh:
            return False
    return True


def _build(
    entity: _EntityPlan,
    rows: Sequence[tuple[Any, ...]],
    session: Session,
    identity_token: Any,
    load_options: tuple[Any, ...],
) -> tuple[list[Any], bool] | None:
    """One object per row (None for an all-NULL key), or None to give up.

    The flag says whether every object was created by this load: then no
    two rows share an object, and nothing needs deduplicating.
    """
    identity_map = session.identity_map
    present = identity_map._dict  # key -> state: membership without a lookup
    weak_map = identity_map._wr
    session_id = session.hash_key
    manager = entity.manager
    cls = entity.cls
    new_object = cls.__new__
    stock_state = entity.stock_state
    new_state = InstanceState.__new__
    make_state = manager._state_constructor
    attach_state = manager._state_setter
    identity_class = entity.identity_class
    pk_indexes = entity.pk_indexes
    columns = entity.columns
    load_path = entity.load_path
    single_pk = pk_indexes[0] if len(pk_indexes) == 1 else None
    built: list[Any] = []
    append = built.append
    all_new = True
    for row in rows:
        if single_pk is not None:
            pk: tuple[Any, ...] = (row[single_pk],)
            if pk[0] is None:
                append(None)
                all_new = False  # several None rows are one, deduplicated
                continue
        else:
            pk = tuple([row[i] for i in pk_indexes])
            if None in pk:
                return None  # partial keys: SQLAlchemy's rules decide
        key = (identity_class, pk, identity_token)
        if key in present:
            all_new = False
            obj = identity_map.get(key)
            if obj is not None:
                state_dict = instance_dict(obj)
                for name, _ in columns:
                    if name not in state_dict:
                        return None  # an expired or unloaded column to fill in
                append(obj)
                continue
        # ClassManager.new_instance(), inlined
        obj = new_object(cls)
        state_dict = obj.__dict__
        if stock_state:
            # InstanceState.__init__(obj, manager), inlined: this loop is
            # most of the cost of a large hit (canary in test_sa_internals)
            state = new_state(InstanceState)
            state.class_ = cls
            state.manager = manager
            state.obj = weakref.ref(obj, state._cleanup)
            state.committed_state = {}
            state.expired_attributes = set()
            state_dict[_STATE_ATTRIBUTE] = state
        else:
            state = make_state(obj, manager)
            attach_state(obj, state)
        for name, index in columns:
            state_dict[name] = row[index]
        state.key = key
        state.session_id = session_id
        state.load_path = load_path
        if identity_token is not None:
            state.identity_token = identity_token
        if load_options:
            state.load_options = load_options
        present[key] = state  # IdentityMap._add_unpresent(), inlined
        state._instance_dict = weak_map
        append(obj)
    return built, all_new


def load(
    plan: _Plan,
    session: Session,
    statement: Any,
    load_options: Any,
    rows: Sequence[tuple[Any, ...]],
) -> Result[Any] | None:
    """The ORM result for ``rows``, or None to leave them to SQLAlchemy."""
    if not _applies(plan, session, load_options):
        return None
    propagated = (
        tuple(
            option
            for option, propagates in zip(statement._with_options, plan.propagating, strict=False)
            if propagates
        )
        if plan.propagates
        else ()
    )
    identity_token = load_options._identity_token
    columns = []
    distinct = True
    for entity in plan.entities:
        built = _build(entity, rows, session, identity_token, propagated)
        if built is None:
            return None
        columns.append(built[0])
        distinct = distinct and built[1]
    single = len(columns) == 1 and not load_options._only_return_tuples
    data: list[Any] = columns[0] if single else list(zip(*columns, strict=True))
    result: IteratorResult[Any] = IteratorResult(
        plan.metadata, iter(data), _source_supports_scalars=single
    )
    # "filtered" makes the legacy Query deduplicate; rows of objects all
    # created by this load are distinct already.
    result._attributes = plan.attributes[single, not distinct]
    return result
