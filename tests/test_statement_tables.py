"""Which tables a statement writes (from its SQL) and reads (from its structure)."""

from __future__ import annotations

import pytest
from sqlalchemy import exists, func, literal_column, select, text, union_all

from caching_query.internals import _sa_internals
from caching_query.invalidation.dependencies import ANY_TABLE, reads_for, reads_of
from caching_query.invalidation.statements import EVERYTHING, written_tables
from examples.blog import Admin, Comment, Post, Tag, User, follow

WRITES = {
    "UPDATE person SET name = 'x'": {"person"},
    "update Person set name = 1": {"person"},
    '  -- note\n/* block */ DELETE FROM "Person" WHERE id = 1': {"person"},
    "INSERT INTO public.person (name) VALUES ('x')": {"person"},
    "INSERT OR REPLACE INTO person VALUES (1)": {"person"},
    "REPLACE INTO person VALUES (1)": {"person"},
    "UPDATE OR IGNORE person SET a = 1": {"person"},
    "UPDATE ONLY person SET a = 1": {"person"},
    "MERGE INTO person USING other ON (1 = 1) WHEN MATCHED THEN DELETE": {"person"},
    "TRUNCATE person, address": {"person", "address"},
    "TRUNCATE TABLE ONLY person": {"person"},
    "DROP TABLE IF EXISTS a, s.b": {"a", "b"},
    "ALTER TABLE person ADD COLUMN x INTEGER": {"person"},
    "CREATE TABLE fresh (x INTEGER)": {"fresh"},
    "CREATE UNIQUE INDEX ix ON person (name)": {"person"},
    "WITH moved AS (DELETE FROM a RETURNING *) INSERT INTO b SELECT * FROM moved": {"a", "b"},
    "COPY person FROM STDIN": {"person"},
    "CALL refresh_everything()": {EVERYTHING},
    "DO $$ BEGIN END $$": {EVERYTHING},
    "REINDEX person": {EVERYTHING},
    "EXPLAIN ANALYZE UPDATE person SET a = 1": {EVERYTHING},
}
READS = [
    "SELECT * FROM person",
    "select 1",
    "SELECT * FROM person FOR UPDATE",
    "SELECT * FROM person FOR NO KEY UPDATE",
    "WITH x AS (SELECT 1) SELECT * FROM x",
    "VALUES (1)",
    "EXPLAIN SELECT 1",
    "SAVEPOINT sa_savepoint_1",
    "RELEASE SAVEPOINT sa_savepoint_1",
    "ROLLBACK",
    "BEGIN",
    "COMMIT",
    "PRAGMA foreign_keys",
    "SET search_path TO public",
    "SHOW search_path",
    "VACUUM",
    "",
]


@pytest.mark.parametrize("sql", list(WRITES))
def test_written_tables(sql):
    assert written_tables(sql) == WRITES[sql]


@pytest.mark.parametrize("sql", READS)
def test_reads_write_nothing(sql):
    tables = written_tables(sql)
    assert tables <= {"nowait", "of"} and EVERYTHING not in tables


def tables(statement):
    return reads_of(statement).tables - {EVERYTHING}


@pytest.mark.parametrize(
    "statement, expected",
    [
        (select(Post).where(Post.author_id.in_(select(User.id))), {"post", "user_account"}),
        (select(Post).where(exists().where(Comment.post_id == Post.id)), {"post", "comment"}),
        (
            select(Tag.name).where(Tag.id == select(func.max(Post.id)).scalar_subquery()),
            {"tag", "post"},
        ),
        (union_all(select(Tag.name), select(User.name)), {"tag", "user_account"}),
        (select(select(follow).cte("f")), {"follow"}),
        (select(Admin), {"user_account", "admin"}),
    ],
    ids=["IN subquery", "EXISTS", "scalar subquery", "UNION", "CTE", "joined inheritance"],
)
def test_reads_of_statement(statement, expected):
    assert tables(statement) == expected


def test_text_that_reads_tables_depends_on_any_table():
    assert ANY_TABLE in reads_of(select(User).where(text("id IN (SELECT 1 FROM post)"))).tables
    assert ANY_TABLE not in reads_of(select(User).where(text("name = 'x'"))).tables
    assert ANY_TABLE not in reads_of(select(func.count(literal_column("*")))).tables


@pytest.mark.parametrize(
    "statement, volatile",
    [
        (select(User.name, func.now()), True),
        (select(User.name).order_by(func.random()), True),
        (select(func.datetime("now")), True),
        (select(func.datetime(Post.id)), False),
        (select(User.name).where(text("created < CURRENT_TIMESTAMP")), True),
        (select(func.count(User.id)), False),
    ],
)
def test_volatile(statement, volatile):
    assert reads_of(statement).volatile is volatile


def test_guess_covers_mappers_relationships_and_column_properties():
    statement = select(Post.title).join(Post.tags)
    structure = _sa_internals.statement_cache_key(statement).key
    # the secondary table is named only by the relationship
    assert {"post", "tag", "post_tag"} <= reads_for(statement, structure).tables
    users = select(User)
    # User.post_count is a subquery of post; Admin is a subclass table
    assert {"user_account", "post", "admin"} <= reads_for(
        users, _sa_internals.statement_cache_key(users).key
    ).tables
