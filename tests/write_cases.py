"""Queries and writes of the blog, for the automatic invalidation tests.

Each ``Case`` pairs a cached query with a write that changes its result:
``tests/test_auto_invalidation.py`` runs them in one process on every
backend, ``tests/test_invalidation_cross_process.py`` in separate
processes (``tests/invalidation_worker.py``) on real servers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, text, update
from sqlalchemy.orm import Session, joinedload, selectinload, sessionmaker

import caching_query
from caching_query import FromCache, RelationshipCache
from examples.blog import Admin, Announcement, Comment, Post, Tag, User, follow, post_tag

REGION = "default"


def cached(statement: Any, namespace: str = "auto") -> Any:
    return statement.options(FromCache(REGION, namespace))


def fresh_rows(db: Engine, query: Callable[[Session], Any]) -> Any:
    with Session(db) as session:
        return query(session)


@dataclass
class Case:
    name: str
    query: Callable[[Session], Any]
    write: Callable[[sessionmaker[Session], Engine], None]


def users_named_bob(s: Session) -> Any:
    return [(u.id, u.name) for u in s.scalars(cached(select(User).where(User.name.like("bob%"))))]


def all_users(s: Session) -> Any:
    return [(u.name, u.post_count) for u in s.scalars(cached(select(User).order_by(User.id)))]


def post_count(s: Session) -> Any:
    return s.scalar(cached(select(func.count(Post.id))))


def comment_bodies(s: Session) -> Any:
    return [c.body for c in s.scalars(cached(select(Comment).order_by(Comment.id)))]


def admin_levels(s: Session) -> Any:
    return [(a.name, a.level) for a in s.scalars(cached(select(Admin).order_by(Admin.id)))]


def announcement_titles(s: Session) -> Any:
    return [a.title for a in s.scalars(cached(select(Announcement).order_by(Announcement.id)))]


def food_posts(s: Session) -> Any:
    return list(s.scalars(cached(select(Post.title).join(Post.tags).where(Tag.name == "food"))))


def follow_pairs(s: Session) -> Any:
    return s.execute(
        cached(
            select(follow)
            .order_by(follow.c.follower_id, follow.c.followed_id)
            .join(User, User.id == follow.c.follower_id)
            .with_only_columns(User.name, follow.c.followed_id)
        )
    ).all()


def pinned(s: Session) -> Any:
    return s.scalars(cached(select(Post.pinned_comment_id).order_by(Post.id))).all()


def tag_names(s: Session) -> Any:
    return s.scalars(cached(select(Tag.name).order_by(Tag.name))).all()


def posts_with_comments(s: Session) -> Any:
    posts = s.scalars(cached(select(Post).options(selectinload(Post.comments)).order_by(Post.id)))
    return [(p.title, [c.body for c in p.comments]) for p in posts]


def posts_with_authors(s: Session) -> Any:
    posts = s.scalars(cached(select(Post).options(joinedload(Post.author)).order_by(Post.id)))
    return [(p.title, p.author.name) for p in posts]


def bobs_posts_by_subquery(s: Session) -> Any:
    bob = select(User.id).where(User.name == "bob").scalar_subquery()
    return s.scalars(
        cached(select(Post.title).where(Post.author_id == bob).order_by(Post.id))
    ).all()


def legacy_users(s: Session) -> Any:
    return [u.name for u in s.query(User).options(FromCache(REGION, "legacy")).order_by(User.id)]


def lazy_tags(s: Session) -> Any:
    posts = s.scalars(
        select(Post)
        .order_by(Post.id)
        .options(FromCache(REGION, "posts"), RelationshipCache(REGION, "tags", Post.tags))
    )
    return [(p.id, [t.name for t in p.tags]) for p in posts]


def _session_write(fn: Callable[[Session], Any]) -> Callable[[sessionmaker[Session], Engine], None]:
    def run(Writer: sessionmaker[Session], db: Engine) -> None:  # noqa: N803
        with Writer() as session:
            fn(session)
            session.commit()

    return run


def _connection_write(fn: Callable[[Any], Any]) -> Callable[[sessionmaker[Session], Engine], None]:
    def run(Writer: sessionmaker[Session], db: Engine) -> None:  # noqa: N803
        with db.begin() as connection:
            fn(connection)

    return run


def _rename_bob(s: Session) -> None:
    s.scalars(select(User).where(User.name == "bob")).one().name = "bobby"


def _pin(s: Session) -> None:
    post = s.get(Post, 1)
    post.pinned_comment = s.get(Comment, 2)


def _tag_cat_naps_food(s: Session) -> None:
    post = s.get(Post, 4)
    post.tags.append(s.get(Tag, 2))


def _ann_follows_dan(s: Session) -> None:
    ann = s.get(User, 1)
    ann.following.append(s.get(User, 4))


def _autocommit(Writer: sessionmaker[Session], db: Engine) -> None:  # noqa: N803
    with db.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(update(User.__table__).where(User.name == "bob").values(name="bobby"))
        # no commit: AUTOCOMMIT made it durable already


CASES = [
    Case("orm flush update", users_named_bob, _session_write(_rename_bob)),
    Case(
        "orm flush insert",
        post_count,
        _session_write(lambda s: s.add(Post(author_id=1, title="new"))),
    ),
    Case("orm flush delete", comment_bodies, _session_write(lambda s: s.delete(s.get(Comment, 1)))),
    Case(
        "joined inheritance subclass table",
        admin_levels,
        _session_write(lambda s: setattr(s.get(Admin, 1), "level", 7)),
    ),
    Case(
        "single-table inheritance insert",
        announcement_titles,
        _session_write(lambda s: s.add(Announcement(author_id=1, title="Rules"))),
    ),
    Case(
        "many-to-many append",
        food_posts,
        _session_write(_tag_cat_naps_food),
    ),
    Case(
        "self-referential many-to-many append",
        follow_pairs,
        _session_write(_ann_follows_dan),
    ),
    Case("post_update", pinned, _session_write(_pin)),
    Case(
        "orm bulk update",
        users_named_bob,
        _session_write(
            lambda s: s.execute(update(User).where(User.name == "bob").values(name="bobby"))
        ),
    ),
    Case(
        "orm bulk delete",
        comment_bodies,
        _session_write(lambda s: s.execute(delete(Comment).where(Comment.id == 2))),
    ),
    Case(
        "orm bulk insert",
        tag_names,
        _session_write(lambda s: s.execute(insert(Tag), [{"name": "a"}, {"name": "b"}])),
    ),
    Case(
        "bulk_save_objects",
        tag_names,
        _session_write(lambda s: s.bulk_save_objects([Tag(name="saved")])),
    ),
    Case(
        "bulk_insert_mappings",
        tag_names,
        _session_write(lambda s: s.bulk_insert_mappings(Tag, [{"name": "mapped"}])),
    ),
    Case(
        "bulk_update_mappings",
        tag_names,
        _session_write(lambda s: s.bulk_update_mappings(Tag, [{"id": 1, "name": "zzz"}])),
    ),
    Case(
        "core update on a Connection",
        users_named_bob,
        _connection_write(
            lambda c: c.execute(
                update(User.__table__).where(User.name == "bob").values(name="bobby")
            )
        ),
    ),
    Case(
        "core executemany on a Connection",
        tag_names,
        _connection_write(
            lambda c: c.execute(insert(Tag.__table__), [{"name": "x"}, {"name": "y"}])
        ),
    ),
    Case("AUTOCOMMIT connection", users_named_bob, _autocommit),
    Case(
        "textual UPDATE through a session",
        users_named_bob,
        _session_write(
            lambda s: s.execute(text("UPDATE user_account SET name = 'bobby' WHERE name = 'bob'"))
        ),
    ),
    Case(
        "exec_driver_sql",
        comment_bodies,
        _connection_write(lambda c: c.exec_driver_sql("DELETE FROM comment WHERE id = 1")),
    ),
    Case(
        "DDL: ALTER TABLE",
        tag_names,
        _connection_write(
            lambda c: c.execute(text("ALTER TABLE tag ADD COLUMN colour VARCHAR(10)"))
        ),
    ),
    Case(
        "unrecognised statement invalidates everything",
        tag_names,
        _connection_write(
            lambda c: c.exec_driver_sql(
                "REINDEX TABLE tag" if c.dialect.name == "postgresql" else "REINDEX tag"
            )
        ),
    ),
    Case(
        "column_property subquery's table",
        all_users,
        _session_write(lambda s: s.add(Post(author_id=4, title="dan writes"))),
    ),
    Case(
        "selectinload's table",
        posts_with_comments,
        _session_write(lambda s: s.add(Comment(post_id=2, author_id=1, body="new"))),
    ),
    Case("joinedload's table", posts_with_authors, _session_write(_rename_bob)),
    Case("scalar subquery's table", bobs_posts_by_subquery, _session_write(_rename_bob)),
    Case("legacy Query", legacy_users, _session_write(_rename_bob)),
    Case(
        "RelationshipCache secondary table",
        lazy_tags,
        _connection_write(lambda c: c.execute(insert(post_tag).values(post_id=4, tag_id=2))),
    ),
    Case(
        "invalidate_tables() by name",
        users_named_bob,
        lambda W, db: _raw_rename(db) or caching_query.invalidate_tables("user_account"),
    ),
    Case(
        "invalidate_tables() by mapped class",
        users_named_bob,
        lambda W, db: _raw_rename(db) or caching_query.invalidate_tables(User),
    ),
    Case(
        "invalidate_tables() by Table",
        users_named_bob,
        lambda W, db: _raw_rename(db) or caching_query.invalidate_tables(User.__table__),
    ),
]


def _raw_rename(db: Engine) -> None:
    """A write the library cannot see: a raw DBAPI connection."""
    raw = db.raw_connection()
    try:
        raw.cursor().execute("UPDATE user_account SET name = 'bobby' WHERE name = 'bob'")
        raw.commit()
    finally:
        raw.close()


CASES_BY_NAME = {case.name: case for case in CASES}
