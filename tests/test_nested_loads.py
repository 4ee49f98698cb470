"""Loads the loader itself triggers are part of a rows entry.

selectin and immediate loads and polymorphic sub-loads run while SQLAlchemy
builds the objects; a miss captures their rows into the same entry and a hit
serves them without SQL. Also here: the fallback for statements whose rows
cannot be matched to columns, and entries whose columns no longer match.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Integer, Unicode, select, text
from sqlalchemy.orm import immediateload, selectin_polymorphic, selectinload

from caching_query import CacheOptionError, FromCache, store
from caching_query.entries.entry import StoredRows
from tests import test_serialization as models

TAGS, Car, Item, Tag, Vehicle, items = (
    models.TAGS,
    models.Car,
    models.Item,
    models.Tag,
    models.Vehicle,
    models.items,
)
db, S = models.db, models.S  # this module's fixtures are test_serialization's


def test_polymorphic_sub_load_is_served_from_the_entry(S, db):  # noqa: N803
    def vehicles(s):
        return (
            s.query(Vehicle)
            .order_by(Vehicle.id)
            .options(selectin_polymorphic(Vehicle, [Car]), FromCache("default", "vehicles"))
            .all()
        )

    with S() as s, db.sql.expect(2):
        first = [(type(v), v.name, getattr(v, "doors", None)) for v in vehicles(s)]
    with S() as s, db.sql.expect(0):
        second = [(type(v), v.name, getattr(v, "doors", None)) for v in vehicles(s)]
    assert first == second
    assert [doors for _, _, doors in second] == [2, None, 3]


def test_immediate_loads_are_served_from_the_entry(S, db):  # noqa: N803
    with S() as s, db.sql.expect(1 + 3):
        first = {i.id: [t.label for t in i.tags] for i in items(s, immediateload(Item.tags))}
    with S() as s, db.sql.expect(0):
        second = {i.id: [t.label for t in i.tags] for i in items(s, immediateload(Item.tags))}
    assert first == second == TAGS


def test_nested_load_the_entry_lacks_runs_its_sql(S, db):  # noqa: N803
    with S() as s:
        q = items(s, selectinload(Item.tags))
        q.all()
        cache, key = q.cache_and_key()
        entry = cache.get(key)
        assert len(entry.nested) == 1
        entry.nested.clear()  # as if the loader had asked for other rows
        store.write(cache, key, entry)
    with S() as s, db.sql.expect(1):
        got = {i.id: [t.label for t in i.tags] for i in items(s, selectinload(Item.tags))}
    assert got == TAGS


def test_textual_statement_with_columns_is_stored_as_rows(S, db):  # noqa: N803
    statement = (
        select(Tag)
        .from_statement(
            text("SELECT id, item_id, label FROM tag ORDER BY id").columns(
                Tag.id, Tag.item_id, Tag.label
            )
        )
        .options(FromCache("default", "text"))
    )
    with S() as s, db.sql.expect(1):
        first = [t.label for t in s.scalars(statement)]
        cache, key = _cache_and_key(s, statement)
    assert cache.get(key).kind == "rows"
    with S() as s, db.sql.expect(0):
        assert [t.label for t in s.scalars(statement)] == first


def test_rows_not_matching_declared_columns_are_stored_as_objects(S, db):  # noqa: N803
    # The cursor returns a column the statement does not declare: columns
    # are matched by name there, which stored rows cannot replay.
    returned = text("SELECT id, item_id, label, 'extra' AS extra FROM tag ORDER BY id")
    statement = (
        select(Tag)
        .from_statement(returned.columns(Tag.id, Tag.item_id, Tag.label))
        .options(FromCache("default", "text-extra"))
    )
    with S() as s, db.sql.expect(1):
        first = [(t.id, t.label) for t in s.scalars(statement)]
        cache, key = _cache_and_key(s, statement)
    assert cache.get(key).kind == "objects"
    with S() as s, db.sql.expect(0):
        assert [(t.id, t.label) for t in s.scalars(statement)] == first
    assert [label for _, label in first] == [label for labels in TAGS.values() for label in labels]


def test_entry_with_other_columns_is_replaced(S, db):  # noqa: N803
    with S() as s:
        q = items(s)
        q.all()
        cache, key = q.cache_and_key()
        entry = cache.get(key)
        # as written by a release whose Item had other columns
        entry.data = StoredRows(("item_id", "item_title"), [(1, "x")])
        store.write(cache, key, entry)
    with S() as s, db.sql.expect(1):
        assert [i.id for i in items(s)] == [1, 2, 3]
    assert cache.get(key).data.columns != ("item_id", "item_title")
    with S() as s, db.sql.expect(0):
        assert [i.id for i in items(s)] == [1, 2, 3]


def _cache_and_key(session, statement):
    from caching_query import handles
    from caching_query.options import single_from_cache

    option = single_from_cache(statement._with_options)
    return handles.cache_and_key(session, statement, option)


def test_cache_option_on_a_statement_not_known_to_be_a_select_is_refused(S, db):  # noqa: N803
    statement = (
        select(Tag)
        .from_statement(text("SELECT id, item_id, label FROM tag"))
        .options(FromCache("default", "bare-text"))
    )
    with S() as s, db.sql.expect(0), pytest.raises(CacheOptionError, match="columns"):
        s.scalars(statement).all()


def test_textual_columns_declared_by_keyword_are_matched_by_name(S, db):  # noqa: N803
    # The cursor returns (label, id, item_id); declared by keyword, the
    # columns are matched by name, not by position.
    returned = text("SELECT label, id, item_id FROM tag ORDER BY id")
    declared = returned.columns(id=Integer, item_id=Integer, label=Unicode)

    def tags(s, *options):
        statement = select(Tag).from_statement(declared).options(*options)
        return [(t.id, t.item_id, t.label) for t in s.scalars(statement)]

    with S() as s:
        expected = tags(s)
    with S() as s, db.sql.expect(1):
        assert tags(s, FromCache("default", "text-keyword")) == expected
    with S() as s, db.sql.expect(0):
        assert tags(s, FromCache("default", "text-keyword")) == expected
    assert [label for _, _, label in expected] == [
        label for labels in TAGS.values() for label in labels
    ]
