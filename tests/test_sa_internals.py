"""Canaries: each private SQLAlchemy/Beaker name this library uses still works.

When SQLAlchemy or Beaker renames one of these, this module fails with the
name, instead of caching_query failing somewhere subtle.
"""

from __future__ import annotations

import beaker.cache
from sqlalchemy import exc, select
from sqlalchemy.engine import FrozenResult

from caching_query import _beaker_internals, _sa_internals
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
