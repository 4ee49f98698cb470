"""Derived keys: distinct results never share a key; equal queries always do."""

from __future__ import annotations

import datetime
import decimal
import re
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import (
    defer,
    joinedload,
    lazyload,
    load_only,
    raiseload,
    selectinload,
    subqueryload,
    undefer,
)

from caching_query import FromCache, UncacheableQueryError
from caching_query.keys import MAX_NAME_LENGTH, derive_key, safe_name
from examples.model import Address, Person

SAFE = re.compile(r"[A-Za-z0-9_.:~-]+")


def key_of(statement, params=None):
    return derive_key(statement, params)


filters = st.fixed_dictionaries(
    {
        "name": st.one_of(st.none(), st.text(max_size=12)),
        "ids": st.one_of(st.none(), st.lists(st.integers(-5, 10**6), max_size=30)),
        "limit": st.one_of(st.none(), st.integers(0, 1000)),
        "offset": st.one_of(st.none(), st.integers(0, 1000)),
    }
)


def build(f):
    stmt = select(Person)
    if f["name"] is not None:
        stmt = stmt.where(Person.name == f["name"])
    if f["ids"] is not None:
        stmt = stmt.where(Person.id.in_(f["ids"]))
    if f["limit"] is not None:
        stmt = stmt.limit(f["limit"])
    if f["offset"] is not None:
        stmt = stmt.offset(f["offset"])
    return stmt


@settings(max_examples=300, deadline=None)
@given(filters, filters)
def test_different_values_different_keys(a, b):
    if a == b:
        assert key_of(build(a)) == key_of(build(b))
    else:
        assert key_of(build(a)) != key_of(build(b))


@settings(max_examples=100, deadline=None)
@given(filters)
def test_rebuilt_query_same_key_and_key_is_safe(f):
    key = key_of(build(f))
    assert key == key_of(build(f))
    assert SAFE.fullmatch(key) and len(key) <= MAX_NAME_LENGTH


bound_values = st.one_of(
    st.integers(),
    st.text(max_size=8),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    st.binary(max_size=8),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.dates(),
    st.datetimes(),
)


@settings(max_examples=200, deadline=None)
@given(bound_values, bound_values)
def test_values_of_any_type_are_told_apart(x, y):
    stmt = select(Person).where(Person.name == bindparam("v"))
    same = type(x) is type(y) and repr(x) == repr(y)
    assert (key_of(stmt, {"v": x}) == key_of(stmt, {"v": y})) == same


@pytest.mark.parametrize(
    "option",
    [
        joinedload(Person.addresses),
        selectinload(Person.addresses),
        subqueryload(Person.addresses),
        lazyload(Person.addresses),
        raiseload("*"),
        raiseload(Person.addresses),
        defer(Person.name),
        load_only(Person.id),
        undefer(Person.name),
        selectinload(Person.addresses).joinedload(Address.postal_code),
    ],
    ids=repr,
)
def test_loader_options_change_the_key(option):
    plain = select(Person).where(Person.id == 1)
    assert key_of(plain) != key_of(plain.options(option))


def test_loader_options_are_told_apart_from_each_other():
    base = select(Person)
    opts = [
        joinedload(Person.addresses),
        selectinload(Person.addresses),
        raiseload("*"),
        lazyload(Person.addresses),
        defer(Person.name),
        load_only(Person.name),
    ]
    assert len({key_of(base.options(o)) for o in opts}) == len(opts)


def test_entities_and_columns_change_the_key():
    stmts = [
        select(Person),
        select(Person.id),
        select(Person.name),
        select(Person, Address),
        select(Address),
        select(Person.id, Person.name),
    ]
    assert len({key_of(s) for s in stmts}) == len(stmts)


def test_expanding_in_and_params(session):
    q = session.query(Person).filter(Person.id.in_(bindparam("ids", expanding=True)))
    stmt = q.statement
    assert key_of(stmt, {"ids": [1, 2]}) != key_of(stmt, {"ids": [1, 2, 3]})
    assert key_of(stmt, {"ids": [1, 2]}) == key_of(stmt, {"ids": [1, 2]})
    t = select(Person).where(text("name = :n"))
    assert key_of(t, {"n": "a"}) != key_of(t, {"n": "b"})


def test_cache_option_itself_is_not_part_of_the_key():
    stmt = select(Person).where(Person.id == 1)
    assert key_of(stmt.options(FromCache("default", "a"))) == key_of(
        stmt.options(FromCache("other", "b", expire=5))
    )


def test_legacy_tuples_flag_changes_the_key(session, sql):
    q = session.query(Person).filter(Person.id == 1).options(FromCache("default", "t"))
    assert q.cache_and_key()[1] != q.tuples().cache_and_key()[1]


def test_unstable_value_is_refused_not_guessed():
    class Opaque:
        pass

    stmt = select(Person).where(Person.name == bindparam("v"))
    with pytest.raises(UncacheableQueryError, match="explicit cache_key"):
        key_of(stmt, {"v": Opaque()})


def test_extreme_values_stay_bounded():
    stmt = select(Person).where(Person.name == "x" * 10_000, Person.id.in_(range(5000)))
    key = key_of(stmt)
    assert len(key) < 50 and SAFE.fullmatch(key)


@pytest.mark.parametrize(
    "name, kept",
    [
        ("u2andu3", True),
        ("by_name", True),
        ("a b", False),
        ("ключ", False),
        ("x" * 101, False),
        ("tab\there", False),
        ("a:b.c-d", True),
    ],
)
def test_safe_name(name, kept):
    safe = safe_name(name, "cache_key")
    assert (safe == name) is kept
    assert SAFE.fullmatch(safe) and len(safe) <= MAX_NAME_LENGTH
    assert safe_name(name, "cache_key") == safe


def test_digest_never_collides_with_a_kept_name():
    digest = safe_name("a b", "k")
    assert safe_name(digest, "k") != digest  # "~" is never kept verbatim


KEY_SCRIPT = textwrap.dedent(
    """
    import datetime, decimal
    from sqlalchemy import select
    from sqlalchemy.orm import joinedload
    from caching_query.keys import derive_key
    from examples.model import Person, Address
    stmt = (select(Person).join(Person.addresses)
            .where(Person.name.in_(["a", "b"]), Address.street == "x", Person.id > 3)
            .options(joinedload(Person.addresses)).limit(7))
    print(derive_key(stmt, {}))
    by_date = select(Person.id).where(Person.name == bindp)
    print(derive_key(by_date, {"v": datetime.date(2020, 1, 2)}))
    """
).replace("bindp", "__import__('sqlalchemy').bindparam('v')")


def test_same_key_in_separate_processes():
    outputs = {
        subprocess.run(
            [sys.executable, "-c", KEY_SCRIPT],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        ).stdout
        for seed in ("1", "2", "random")
    }
    assert len(outputs) == 1
    (output,) = outputs
    assert output.count("q~") == 2


def test_decimal_and_date_values():
    stmt = select(Person).where(Person.name == bindparam("v"))
    assert key_of(stmt, {"v": decimal.Decimal("1.0")}) != key_of(stmt, {"v": decimal.Decimal("1")})
    assert key_of(stmt, {"v": datetime.date(2020, 1, 1)}) != key_of(stmt, {"v": "2020-01-01"})
