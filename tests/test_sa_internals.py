"""Canaries: each private SQLAlchemy/Beaker name this library uses still works.

When SQLAlchemy or Beaker renames one of these, this module fails with the
name, instead of caching_query failing somewhere subtle.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

import beaker.cache
from sqlalchemy import exc, func, inspect, literal_column, select
from sqlalchemy.engine import FrozenResult

from caching_query.internals import _beaker_internals, _beaker_unpickling, _sa_internals
from caching_query.local_session import ScopedSessionNamespace
from examples.model import Person


def test_statement_cache_key():
    key = _sa_internals.statement_cache_key(select(Person).where(Person.id == 1))
    assert hasattr(key, "key") and hasattr(key, "bindparams")
    assert [b.effective_value for b in key.bindparams] == [1]


def test_query_execution_parts(session):
    statement, params = _sa_internals.query_execution_parts(
        session.query(Person).filter(Person.id == 1).params(x=1)
    )
    assert params == {"x": 1}
    assert statement.is_select


def test_statement_options_and_load_options(session):
    q = session.query(Person).yield_per(3)
    assert _sa_internals.statement_options(q) == ()
    assert _sa_internals.load_option(q.load_options, "yield_per") == 3
    assert _sa_internals.load_option(q.load_options, "only_return_tuples") is False


def test_explicit_froms():
    subquery = select(Person).subquery()
    count = select(func.count()).select_from(subquery)
    assert tuple(_sa_internals.explicit_froms(count)) == (subquery,)
    assert tuple(_sa_internals.explicit_froms(select(Person))) == ()


def test_frozen_rows_and_result_from_rows():
    frozen = _sa_internals.frozen_result_from_rows(["a", "b"], [(1, 2), (3, 4)], False, False)
    assert isinstance(frozen, FrozenResult)
    assert _sa_internals.frozen_rows(frozen) == [[1, 2], [3, 4]]
    assert [tuple(r) for r in frozen().all()] == [(1, 2), (3, 4)]
    single = _sa_internals.frozen_result_from_rows(["x"], ["p", "q"], True, True)
    assert _sa_internals.query_rows(single()) == ["p", "q"]


def test_unique_requirement_round_trip(session):
    from sqlalchemy.orm import joinedload

    result = session.execute(select(Person).options(joinedload(Person.addresses)))
    assert _sa_internals.requires_unique(result)
    result.close()
    replayed = _sa_internals.require_unique(
        _sa_internals.frozen_result_from_rows(["P"], [1], True, True)()
    )
    try:
        replayed.all()
    except exc.InvalidRequestError as error:
        assert "unique" in str(error)
    else:
        raise AssertionError("require_unique() did not make the result refuse")


def test_beaker_register_backend():
    name = "ext:caching_query_canary"
    _beaker_internals.register_backend(name, ScopedSessionNamespace)
    assert beaker.cache.clsmap[name] is ScopedSessionNamespace
    del beaker.cache.clsmap._clsmap[name]


def test_cache_keyed_option_enters_the_statement_key():
    from caching_query import RelationshipCache

    plain = select(Person)
    with_option = plain.options(RelationshipCache("default", "x", Person.addresses))
    key = _sa_internals.statement_cache_key(with_option).key
    assert key != _sa_internals.statement_cache_key(plain).key
    assert "caching_query.RelationshipCache" in repr(key)


def test_portable_frozen_keeps_keys_and_rows(session):
    frozen = session.execute(select(Person.id, Person.name).where(Person.id < 3)).freeze()
    portable = _sa_internals.portable_frozen(frozen)
    assert list(portable.metadata.keys) == ["id", "name"]
    assert [tuple(r) for r in portable().all()] == [(1, "person 01"), (2, "person 02")]


def _replay(statement, session):
    from caching_query.internals import _sa_loading

    structure = _sa_internals.statement_cache_key(statement).key
    return _sa_loading.replay_for(statement, structure, session.get_bind().dialect)


def _compiled(statement, session):
    return _replay(statement, session).compiled


def test_compiled_for_gives_compile_state_and_result_columns(session):
    from caching_query.internals import _sa_loading

    compiled = _compiled(select(Person).where(Person.id < 3), session)
    assert hasattr(compiled.compile_state, "orm_setup_cursor_result")
    assert compiled.compile_state.compile_options._is_star is False
    assert _replay(select(Person).where(Person.id < 3), session).keys == ("id", "name")
    assert all(Person.__table__.c.id in col.objects for col in compiled._result_columns[:1])
    assert _sa_loading.is_loadable(compiled, ("id", "name"))
    assert not _sa_loading.is_loadable(compiled, ("name", "id"))
    assert not _sa_loading.is_loadable(compiled, ("id", "name", "extra"))


def test_orm_setup_cursor_result_accepts_stored_rows(session):
    from sqlalchemy import event

    captured = {}

    @event.listens_for(session, "do_orm_execute")
    def grab(state):
        captured["state"] = state

    session.execute(select(Person).where(Person.id < 3))
    state = captured["state"]
    replay = _replay(state.statement, session)
    session.expunge_all()
    people = replay.load(state, [(1, "a"), (2, "b")]).scalars().all()  # SQLAlchemy's loader
    assert [(p.id, p.name) for p in people] == [(1, "a"), (2, "b")]


def test_fast_load_plan_names(session):
    from sqlalchemy.orm import joinedload
    from sqlalchemy.orm.context import _MapperEntity

    from caching_query.internals import _fast_load

    compiled = _compiled(select(Person), session)
    plan = _fast_load.plan_for(compiled, _replay(select(Person), session).metadata)
    assert plan is not None
    assert type(compiled.compile_state._entities[0]) is _MapperEntity
    entity = plan.entities[0]
    assert entity.identity_class is Person and entity.pk_indexes == (0,)
    assert dict(entity.columns) == {"id": 0, "name": 1}
    assert callable(session.identity_map._add_unpresent)
    assert isinstance(session.hash_key, int)
    joined = _compiled(select(Person).options(joinedload(Person.addresses)), session)
    joined_metadata = _replay(
        select(Person).options(joinedload(Person.addresses)), session
    ).metadata
    assert _fast_load.plan_for(joined, joined_metadata) is None


def test_instance_state_init_is_what_the_short_cut_inlines():
    # _fast_load makes InstanceState objects without calling __init__: it
    # sets the same five fields. A change to __init__ shows in its names.
    from sqlalchemy.orm.base import DEFAULT_STATE_ATTR
    from sqlalchemy.orm.instrumentation import ClassManager
    from sqlalchemy.orm.state import InstanceState

    manager = inspect(Person).class_manager
    assert type(manager) is ClassManager and manager._state_constructor is InstanceState
    assert manager.STATE_ATTR == DEFAULT_STATE_ATTR == "_sa_instance_state"
    assert set(InstanceState.__init__.__code__.co_names) == {
        "__class__", "_cleanup", "class_", "committed_state", "expired_attributes",
        "manager", "obj", "ref", "set", "weakref",
    }  # fmt: skip
    obj = Person.__new__(Person)
    state = InstanceState(obj, manager)
    assert not vars(state)  # only slots are set
    assert state.obj() is obj and state.class_ is Person and state.manager is manager
    assert state.committed_state == {} and state.expired_attributes == set()


def test_has_pending_changes_matches_the_public_sets(session):
    def public(s):
        return bool(s.new or s.deleted or s.dirty)

    assert _sa_internals.has_pending_changes(session) is public(session) is False
    person = session.get(Person, 1)
    person.name = "changed"
    assert _sa_internals.has_pending_changes(session) is public(session) is True
    session.rollback()
    session.delete(session.get(Person, 2))
    assert _sa_internals.has_pending_changes(session) is public(session) is True
    session.rollback()
    session.add(Person("new"))
    assert _sa_internals.has_pending_changes(session) is public(session) is True
    session.rollback()
    assert _sa_internals.has_pending_changes(session) is public(session) is False


def test_memory_namespace_reads_match_beakers_own():
    cache = beaker.cache.Cache("canary-memory", type="memory")
    cache.put("present", "value")
    namespace = cache.namespace
    assert isinstance(namespace.dictionary, dict)
    present, absent = _beaker_internals.read_records(namespace, [b"present", b"absent"])
    assert present == namespace[b"present"] and present[2] == "value"
    assert absent is None


def _counting_loads(seen: list[int]) -> Any:
    def loads(data: Any) -> Any:
        seen.append(len(data))
        return pickle.loads(data)

    return loads


def test_outer_layer_loader_replaces_each_backends_own_unpickling(
    tmp_path, memcached_server, redis_server
):
    """``load_outer_layer_with`` relies on each namespace's private layout:
    file ``do_open``/``hash``/``file``, dbm ``dbm``, the SQL backends'
    ``do_open``/``table``/``bind``/``loaded``, Redis ``_format_key``/``client``,
    bmemcached servers' ``unpickler``. Each still reads back what Beaker wrote."""
    configs = {
        "file": {"type": "file", "data_dir": str(tmp_path / "f")},
        "dbm": {"type": "dbm", "data_dir": str(tmp_path / "d")},
        "database": {"type": "ext:database", "url": f"sqlite:///{tmp_path / 'c.db'}"},
        "redis": {"type": "ext:redis", "url": redis_server.url},
    }
    for name, config in configs.items():
        seen: list[int] = []
        cache = beaker.cache.Cache(f"canary-outer-{name}", **config)
        cache.put("k", "v")
        _beaker_unpickling.load_outer_layer_with(cache.namespace, _counting_loads(seen), None)
        cache.namespace.loaded = False  # the SQL namespace: read its row again
        (record,) = _beaker_internals.read_records(cache.namespace, [b"k"])
        assert record[2] == "v", name
        assert seen, f"{name}: the loader was not used"

    class Refusing(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            raise pickle.UnpicklingError(f"{module}.{name}")

    cache = beaker.cache.Cache(
        "canary-outer-mc",
        type="ext:memcached",
        url=memcached_server.url,
        memcache_module="bmemcached",
    )
    try:
        cache.put("k", FrozenResult.__name__)  # a str: no class to find
        _beaker_unpickling.load_outer_layer_with(cache.namespace, pickle.loads, Refusing)
        assert all(server.unpickler is Refusing for server in cache.namespace.mc.servers)
        cache.namespace.mc.set(cache.namespace._format_key(b"obj"), ("x", exc.SQLAlchemyError))
        try:
            cache.namespace.mc.get(cache.namespace._format_key(b"obj"))
        except pickle.UnpicklingError as error:
            assert "SQLAlchemyError" in str(error)
        else:
            raise AssertionError("the memcached client did not use the unpickler given")
        (record,) = _beaker_internals.read_records(cache.namespace, [b"k"])
        assert record[2] == "FrozenResult"
    finally:
        for server in cache.namespace.mc.servers:
            server.unpickler = pickle.Unpickler


def test_memcached_refusal_of_an_item_is_told_from_a_dead_server(memcached_server):
    cache = beaker.cache.Cache(
        "canary-refusal",
        type="ext:memcached",
        url=memcached_server.url,
        memcache_module="bmemcached",
    )
    assert _beaker_internals.is_memcached(cache.namespace)
    try:
        # incompressible: the client compresses what it sends
        _beaker_internals.set_record(cache.namespace, b"big", os.urandom(2 << 20), None)
    except _beaker_internals.EntryRefused:
        pass
    else:
        raise AssertionError("memcached stored a 2 MiB item")


# -- the legacy Query's execution step (internals/_sa_query.py) -------------


def test_query_fetches_through_iter(session):
    """all(), first(), one(), one_or_none(), iteration and slicing call Query._iter()."""
    from sqlalchemy.orm import Query

    from caching_query.internals import _sa_query

    calls: list[int] = []

    class Counting(_sa_query.DirectFetch, Query[Any]):
        def _fetch_directly(self) -> Any:
            calls.append(1)
            return None

    q = Counting([Person], session).filter(Person.id <= 3).order_by(Person.id)
    assert [p.id for p in q.all()] == [1, 2, 3]
    assert q.first().id == 1
    assert q.filter(Person.id == 2).one().id == 2
    assert q.filter(Person.id == 99).one_or_none() is None
    assert [p.id for p in q] == [1, 2, 3]
    assert [p.id for p in q[1:2]] == [2]
    assert len(calls) == 6
    assert hasattr(Query, "_iter") and hasattr(Query, "_statement_20")


def test_prepare_matches_what_hooks_see(session):
    """prepare() gives the statement, options and bind arguments Session.execute's hooks get."""
    from sqlalchemy import event

    from caching_query.internals import _sa_query

    seen: list[Any] = []

    def hook(state: Any) -> None:
        seen.append((state.parameters, dict(state.execution_options), dict(state.bind_arguments)))

    q = session.query(Person).filter(Person.id == 1).populate_existing().execution_options(app=1)
    event.listen(session, "do_orm_execute", hook)
    try:
        q.all()
        assert _sa_query.execute_hooks(session)[-1] is hook
    finally:
        event.remove(session, "do_orm_execute", hook)
    statement = _sa_query.orm_statement(q)
    params, options, binds = _sa_query.prepare(q, statement)
    assert (params, dict(options)) == seen[0][:2]
    assert binds["mapper"] is seen[0][2]["mapper"]
    assert options[_sa_query.LOAD_OPTIONS]._populate_existing
    assert _sa_query.given_options(q) == {_sa_query.LOAD_OPTIONS: q.load_options}
    assert _sa_query.query_parameters(q) == params
    # a Query of plain columns is still executed by the ORM
    assert _sa_query.orm_statement(session.query(literal_column("1"))) is not None


def test_plain_execution_is_what_prepare_gives(session):
    """Without execution options, the ORM's preparation keeps the query's load
    options and binds by the statement and its mapper: the short cut agrees."""
    from caching_query.internals import _sa_query

    for q in (
        session.query(Person).filter(Person.id == 1).populate_existing(),
        session.query(Person).filter(Person.id == 1).yield_per(5),
        session.query(Person.name).filter(Person.id == 1),
        session.query(literal_column("1")),
    ):
        statement = _sa_query.orm_statement(q)
        load_options, binds = _sa_query.plain_execution(q, statement)
        params, options, prepared_binds = _sa_query.prepare(q, statement)
        assert load_options is options[_sa_query.LOAD_OPTIONS]
        assert binds == prepared_binds
    # execution options of the query (or, in 2.1, of the session) take the full preparation
    with_options = session.query(Person).execution_options(populate_existing=True)
    assert _sa_query.plain_execution(with_options, _sa_query.orm_statement(with_options)) is None


def test_shaped_matches_query_iter(session):
    from caching_query.internals import _sa_query

    q = session.query(Person).filter(Person.id <= 2).order_by(Person.id)
    result = session.execute(
        q._statement_20(), execution_options={_sa_query.LOAD_OPTIONS: q.load_options}
    )
    assert [p.id for p in _sa_query.shaped(result, q.load_options)] == [1, 2]


def test_greenlet_bridge_is_seen_and_awaited_in():
    import asyncio

    from sqlalchemy.util import greenlet_spawn

    from caching_query.internals import _sa_greenlet

    def inside() -> tuple[bool, str]:
        return _sa_greenlet.in_bridge(), _sa_greenlet.wait(asyncio.sleep(0, "awaited"))

    async def main() -> tuple[bool, str]:
        assert not _sa_greenlet.in_bridge()  # a coroutine, not the bridge
        return await greenlet_spawn(inside)

    assert not _sa_greenlet.in_bridge()
    assert asyncio.run(main()) == (True, "awaited")
