"""The short cut for plain entities leaves objects identical to SQLAlchemy's loader.

Every hit is built twice, once through ``_fast_load`` and once with it
disabled (SQLAlchemy's own loader over the same stored rows), and the two
sets of objects are compared field by field: values, identity, session,
committed and expired state, lazy callables, and the loader options and
path a later lazy load replays.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, inspect, select
from sqlalchemy.orm import defer, joinedload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.interfaces import UserDefinedOption

from caching_query import FromCache, RelationshipCache, install
from caching_query.internals import _fast_load, _sa_loading
from examples.model import Address, Person

SHAPES = {
    "legacy entity": lambda s, option: (
        s.query(Person).filter(Person.id < 8).order_by(Person.id).options(option).all()
    ),
    "2.0 entity": lambda s, option: list(
        s.scalars(select(Person).where(Person.id < 8).order_by(Person.id).options(option))
    ),
    "two entities": lambda s, option: [
        tuple(row)
        for row in s.execute(
            select(Person, Address)
            .join(Person.addresses)
            .where(Person.id < 5)
            .order_by(Address.id)
            .options(option)
        )
    ],
    "tuples": lambda s, option: [
        tuple(row) for row in s.query(Person).filter(Person.id < 4).options(option).tuples().all()
    ],
}


def _execute(session: Any, shape: str) -> list[Any]:
    return SHAPES[shape](session, FromCache("default", f"fast-{shape}"))


def _objects(rows: list[Any]) -> list[Any]:
    return [cell for row in rows for cell in (row if isinstance(row, tuple) else (row,))]


def _snapshot(obj: Any, session: Any) -> tuple[Any, ...]:
    state = inspect(obj)
    values = {k: v for k, v in vars(obj).items() if k != "_sa_instance_state"}
    return (
        type(obj),
        values,
        state.key,
        state.identity_token,
        state.session_id == session.hash_key,
        state.load_options,
        state.load_path.path,
        dict(state.committed_state),
        set(state.expired_attributes),
        dict(state.callables),
        state.modified,
        state.persistent,
        state.obj() is obj,
        state.class_,
        state.manager,
        _other_fields(state),
    )


def _other_fields(state: Any) -> dict[str, Any]:
    # Whatever else either loader set on the state (a field set by only one
    # of them shows as a difference), except the per-load counter.
    names = set(vars(state)) | {"identity_token", "load_options", "insert_order", "_strong_obj"}
    names -= {"runid", "_instance_dict", "key", "load_path", "session_id"}
    return {name: getattr(state, name) for name in sorted(names)}


@pytest.fixture
def Session(Session):  # noqa: N802
    install(Session)  # the 2.0 shapes run without a CachingQuery
    return Session


@pytest.fixture
def fast_loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts results the short cut built."""
    built: list[int] = []
    original = _fast_load.load

    def counting(*args: Any) -> Any:
        result = original(*args)
        if result is not None:
            built.append(1)
        return result

    monkeypatch.setattr(_fast_load, "load", counting)
    return built


def _without_short_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sa_loading.Replay, "load_fast", lambda self, state, rows: None)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_short_cut_objects_equal_sqlalchemy_loader_objects(
    Session, sql, shape, fast_loads, monkeypatch
):
    with Session() as s:
        uncached = [_snapshot(o, s) for o in _objects(_execute(s, shape))]
    with Session() as s, sql.expect(0):
        fast = [_snapshot(o, s) for o in _objects(_execute(s, shape))]
    assert fast_loads, "the short cut was not taken"
    _without_short_cut(monkeypatch)
    with Session() as s, sql.expect(0):
        general = [_snapshot(o, s) for o in _objects(_execute(s, shape))]
    assert fast == general
    assert [snap[1:4] for snap in fast] == [snap[1:4] for snap in uncached]
    assert fast


def test_short_cut_keeps_propagated_options_for_lazy_loads(Session, sql, fast_loads):
    def load(s):
        return (
            s.query(Person)
            .filter(Person.id < 4)
            .options(
                FromCache("default", "prop"),
                RelationshipCache("default", "addresses", Person.addresses),
            )
            .all()
        )

    with Session() as s, sql.expect(1 + 3):
        first = [(p.name, [a.street for a in p.addresses]) for p in load(s)]
    with Session() as s, sql.expect(0):
        second = [(p.name, [a.street for a in p.addresses]) for p in load(s)]
    assert fast_loads
    assert first == second


def test_object_in_session_wins(Session, sql, fast_loads):
    with Session() as s:
        _execute(s, "legacy entity")
    with Session() as s:
        held = s.get(Person, 3)
        set_committed_value(held, "name", "as the session has it")
        with sql.expect(0):
            people = _execute(s, "legacy entity")
        assert people[2] is held and held.name == "as the session has it"
        assert [p.name for p in people][:2] == ["person 01", "person 02"]
    assert fast_loads


def test_expired_object_in_session_is_filled_from_the_entry(Session, sql):
    with Session() as s:
        _execute(s, "legacy entity")
    with Session() as s:
        held = s.get(Person, 3)
        s.expire(held, ["name"])
        with sql.expect(0):
            people = _execute(s, "legacy entity")
            assert people[2] is held
            assert held.name == "person 03"


@pytest.mark.parametrize(
    "options",
    [(joinedload(Person.addresses),), (defer(Person.name),)],
    ids=["joinedload", "defer"],
)
def test_loader_options_take_sqlalchemys_path(Session, sql, options, fast_loads):
    def load(s):
        q = s.query(Person).filter(Person.id < 4).order_by(Person.id)
        return q.options(FromCache("default", "opts"), *options).all()

    with Session() as s:
        load(s)
    with Session() as s, sql.expect(0):
        assert [p.id for p in load(s)] == [1, 2, 3]
    assert not fast_loads


def test_load_events_fire_on_hits(Session, sql, fast_loads):
    with Session() as s:
        _execute(s, "legacy entity")
    seen: list[int] = []
    fast_loads.clear()

    def on_load(target: Any, context: Any) -> None:
        seen.append(target.id)

    event.listen(Person, "load", on_load)
    try:
        with Session() as s, sql.expect(0):
            _execute(s, "legacy entity")
    finally:
        event.remove(Person, "load", on_load)
    assert seen == [1, 2, 3, 4, 5, 6, 7]
    assert not fast_loads


def test_populate_existing_overwrites_from_the_entry(Session, sql, fast_loads):
    with Session() as s:
        _execute(s, "legacy entity")
    with Session() as s:
        held = s.get(Person, 3)
        set_committed_value(held, "name", "as the session has it")
        fast_loads.clear()
        q = s.query(Person).filter(Person.id < 8).order_by(Person.id)
        with sql.expect(0):
            q.options(FromCache("default", "fast-legacy entity")).populate_existing().all()
        assert held.name == "person 03"
    assert not fast_loads


def test_legacy_rows_repeating_an_object_are_deduplicated_as_uncached(Session, sql, fast_loads):
    def load(s, *options):
        q = s.query(Person).join(Person.addresses).filter(Person.id < 4).order_by(Person.id)
        return [p.id for p in q.options(*options).all()]

    with Session() as s:
        uncached = load(s)
    with Session() as s, sql.expect(1):
        miss = load(s, FromCache("default", "joined"))
    with Session() as s, sql.expect(0):
        hit = load(s, FromCache("default", "joined"))
    assert uncached == miss == hit == [1, 2, 3]
    assert fast_loads


class _Marker(UserDefinedOption):
    """An option of the application's own, handed on to lazy loads."""

    propagate_to_loaders = True


def test_statement_with_other_user_options_than_the_cached_one(
    Session, sql, fast_loads, monkeypatch
):
    # User-defined options are not part of the statement's structure: the
    # same entry and compiled form serve statements with other option
    # lists, and SQLAlchemy pairs the two lists by position to decide what
    # loaded objects carry. The short cut must do exactly the same.
    def load(s, *options):
        statement = select(Person).where(Person.id < 4).order_by(Person.id)
        return list(s.scalars(statement.options(FromCache("default", "marked"), *options)))

    marker = _Marker("y")
    with Session() as s:
        load(s, _Marker("x"))

    def carried() -> list[tuple[Any, ...]]:
        found = []
        for options in [(), (marker,), (marker, _Marker("z"))]:
            with Session() as s, sql.expect(0):
                people = load(s, *options)
                assert [p.id for p in people] == [1, 2, 3]
                found.append(inspect(people[0]).load_options)
        return found

    fast = carried()
    assert fast_loads
    _without_short_cut(monkeypatch)
    assert carried() == fast
