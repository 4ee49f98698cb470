"""A small blog: the application the "cache every query" mode is tested with.

Users (and admins, a joined-inheritance subclass) write posts (and
announcements, a single-table subclass), comment on them, tag them (a
many-to-many), follow each other (a self-referential many-to-many), and pin
a comment to a post (a ``post_update`` cycle). The functions below are the
application: they read and write through both the legacy ``Query`` and
2.0 ``select()``, paginate and count, and know nothing about caching.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Column,
    ForeignKey,
    String,
    Table,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    column_property,
    mapped_column,
    relationship,
    selectinload,
)


class Base(DeclarativeBase):
    pass


follow = Table(
    "follow",
    Base.metadata,
    Column("follower_id", ForeignKey("user_account.id"), primary_key=True),
    Column("followed_id", ForeignKey("user_account.id"), primary_key=True),
)

post_tag = Table(
    "post_tag",
    Base.metadata,
    Column("post_id", ForeignKey("post.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tag.id", ondelete="CASCADE"), primary_key=True),
)


class User(Base):
    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    posts: Mapped[list[Post]] = relationship(back_populates="author", order_by="Post.id")
    following: Mapped[list[User]] = relationship(
        secondary=follow,
        primaryjoin=lambda: User.id == follow.c.follower_id,
        secondaryjoin=lambda: User.id == follow.c.followed_id,
        back_populates="followers",
        order_by=lambda: User.id,
    )
    followers: Mapped[list[User]] = relationship(
        secondary=follow,
        primaryjoin=lambda: User.id == follow.c.followed_id,
        secondaryjoin=lambda: User.id == follow.c.follower_id,
        back_populates="following",
        order_by=lambda: User.id,
    )

    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "user"}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class Admin(User):
    __tablename__ = "admin"

    id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), primary_key=True)
    level: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"polymorphic_identity": "admin"}


class Tag(Base):
    __tablename__ = "tag"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(30), unique=True)


class Post(Base):
    __tablename__ = "post"

    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    title: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(String(1000), default="")
    kind: Mapped[str] = mapped_column(String(20), default="post")
    pinned_comment_id: Mapped[int | None] = mapped_column(
        ForeignKey("comment.id", use_alter=True, name="fk_post_pinned_comment")
    )
    author: Mapped[User] = relationship(back_populates="posts")
    comments: Mapped[list[Comment]] = relationship(
        back_populates="post",
        order_by="Comment.id",
        cascade="all, delete-orphan",
        foreign_keys="Comment.post_id",
    )
    pinned_comment: Mapped[Comment | None] = relationship(
        foreign_keys=[pinned_comment_id], post_update=True
    )
    tags: Mapped[list[Tag]] = relationship(secondary=post_tag, order_by=Tag.name)

    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "post"}


class Announcement(Post):
    __mapper_args__ = {"polymorphic_identity": "announcement"}


class Comment(Base):
    __tablename__ = "comment"

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("post.id"))
    author_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    body: Mapped[str] = mapped_column(String(500))
    post: Mapped[Post] = relationship(back_populates="comments", foreign_keys=[post_id])
    author: Mapped[User] = relationship()


# how many posts a user wrote, as a column of User: a scalar subquery
User.post_count = column_property(  # type: ignore[attr-defined]
    select(func.count(Post.id))
    .where(Post.author_id == User.id)
    .correlate_except(Post)
    .scalar_subquery(),
    deferred=False,
)


# -- the application --------------------------------------------------------


def register(session: Session, name: str, admin: bool = False, level: int = 1) -> User:
    user: User = Admin(name=name, level=level) if admin else User(name=name)
    session.add(user)
    session.commit()
    return user


def user_named(session: Session, name: str) -> User | None:
    return session.query(User).filter(User.name == name).one_or_none()


def user_by_id(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def rename_user(session: Session, user_id: int, name: str) -> None:
    user = session.get(User, user_id)
    assert user is not None
    user.name = name
    session.commit()


def promote(session: Session, user_id: int, level: int) -> None:
    """Raise an admin's level (a write to the subclass table only)."""
    session.execute(update(Admin).where(Admin.id == user_id).values(level=level))
    session.commit()


def admins(session: Session) -> list[Admin]:
    return list(session.scalars(select(Admin).order_by(Admin.id)))


def follow_user(session: Session, follower_id: int, followed_id: int) -> None:
    follower, followed = session.get(User, follower_id), session.get(User, followed_id)
    assert follower is not None and followed is not None
    follower.following.append(followed)
    session.commit()


def unfollow_user(session: Session, follower_id: int, followed_id: int) -> None:
    session.execute(
        delete(follow).where(
            follow.c.follower_id == follower_id, follow.c.followed_id == followed_id
        )
    )
    session.commit()


def follower_names(session: Session, user_id: int) -> list[str]:
    user = session.get(User, user_id)
    assert user is not None
    return [u.name for u in user.followers]


def following_count(session: Session, user_id: int) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(follow).where(follow.c.follower_id == user_id)
        )
        or 0
    )


def tag_named(session: Session, name: str) -> Tag:
    tag = session.scalars(select(Tag).where(Tag.name == name)).one_or_none()
    if tag is None:
        tag = Tag(name=name)
        session.add(tag)
    return tag


def write_post(
    session: Session,
    author_id: int,
    title: str,
    body: str = "",
    tags: Sequence[str] = (),
    announcement: bool = False,
) -> int:
    cls = Announcement if announcement else Post
    post = cls(author_id=author_id, title=title, body=body)
    post.tags = [tag_named(session, name) for name in tags]
    session.add(post)
    session.commit()
    return post.id


def edit_post(session: Session, post_id: int, title: str) -> None:
    post = session.get(Post, post_id)
    assert post is not None
    post.title = title
    session.commit()


def add_tag(session: Session, post_id: int, tag: str) -> None:
    post = session.get(Post, post_id)
    assert post is not None
    post.tags.append(tag_named(session, tag))
    session.commit()


def rename_tag(session: Session, old: str, new: str) -> None:
    session.query(Tag).filter(Tag.name == old).update({Tag.name: new})
    session.commit()


def delete_post(session: Session, post_id: int) -> None:
    post = session.get(Post, post_id)
    assert post is not None
    post.pinned_comment = None
    session.flush()
    session.delete(post)
    session.commit()


def comment(session: Session, post_id: int, author_id: int, body: str) -> int:
    note = Comment(post_id=post_id, author_id=author_id, body=body)
    session.add(note)
    session.commit()
    return note.id


def pin(session: Session, post_id: int, comment_id: int | None) -> None:
    post = session.get(Post, post_id)
    assert post is not None
    post.pinned_comment = session.get(Comment, comment_id) if comment_id is not None else None
    session.commit()


def pinned_body(session: Session, post_id: int) -> str | None:
    post = session.get(Post, post_id)
    assert post is not None
    return post.pinned_comment.body if post.pinned_comment is not None else None


def post_titles(session: Session, author_id: int) -> list[str]:
    return [
        p.title for p in session.query(Post).filter(Post.author_id == author_id).order_by(Post.id)
    ]


def announcements(session: Session) -> list[str]:
    return [a.title for a in session.scalars(select(Announcement).order_by(Announcement.id))]


def posts_tagged(session: Session, tag: str) -> list[str]:
    return list(
        session.scalars(select(Post.title).join(Post.tags).where(Tag.name == tag).order_by(Post.id))
    )


def tag_names(session: Session, post_id: int) -> list[str]:
    post = session.get(Post, post_id)
    assert post is not None
    return [t.name for t in post.tags]


def feed(session: Session, user_id: int, page: int = 1, per_page: int = 3) -> tuple[list[str], int]:
    """Posts by the people ``user_id`` follows, newest first, one page, and their number."""
    followed = select(follow.c.followed_id).where(follow.c.follower_id == user_id)
    query = session.query(Post).filter(Post.author_id.in_(followed))
    total = query.count()
    items = query.order_by(Post.id.desc()).limit(per_page).offset((page - 1) * per_page).all()
    return [p.title for p in items], total


def comments_with_authors(session: Session, post_id: int) -> list[tuple[str, str]]:
    rows = session.execute(
        select(Comment.body, User.name)
        .join(Comment.author)
        .where(Comment.post_id == post_id)
        .order_by(Comment.id)
    )
    return [(body, name) for body, name in rows]


def comment_counts(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(Post.title, func.count(Comment.id))
        .outerjoin(Post.comments)
        .group_by(Post.id, Post.title)
        .order_by(Post.id)
    )
    return {title: count for title, count in rows}


def top_authors(session: Session, limit: int = 3) -> list[tuple[str, int]]:
    users = (
        session.query(User)
        .filter(User.post_count > 0)
        .order_by(User.post_count.desc(), User.id)  # type: ignore[attr-defined]
        .limit(limit)
    )
    return [(u.name, u.post_count) for u in users]  # type: ignore[attr-defined]


def posts_with_comments(session: Session, author_id: int) -> list[tuple[str, list[str]]]:
    posts = session.scalars(
        select(Post)
        .where(Post.author_id == author_id)
        .options(selectinload(Post.comments))
        .order_by(Post.id)
    )
    return [(p.title, [c.body for c in p.comments]) for p in posts]


def search(session: Session, words: str) -> list[str]:
    return [
        p.title for p in session.query(Post).filter(Post.title.contains(words)).order_by(Post.id)
    ]


def purge_comments(session: Session, author_id: int) -> int:
    """Delete a user's comments with a Core statement on the session's connection."""
    connection = session.connection()
    connection.execute(
        update(Post)
        .where(Post.pinned_comment_id.in_(select(Comment.id).where(Comment.author_id == author_id)))
        .values(pinned_comment_id=None)
    )
    result = connection.execute(delete(Comment).where(Comment.author_id == author_id))
    session.commit()
    return result.rowcount


def import_users(session: Session, names: Sequence[str]) -> None:
    """Bulk-insert users (ORM bulk INSERT)."""
    session.execute(insert(User), [{"name": name, "kind": "user"} for name in names])
    session.commit()


def retitle_all(session: Session, author_id: int, prefix: str) -> None:
    """Textual SQL, as a maintenance script would write it."""
    session.execute(
        text("UPDATE post SET title = :prefix || title WHERE author_id = :author"),
        {"prefix": prefix, "author": author_id},
    )
    session.commit()


def counts(session: Session) -> dict[str, Any]:
    return {
        "users": session.query(User).count(),
        "posts": session.scalar(select(func.count(Post.id))),
        "comments": session.scalar(select(func.count()).select_from(Comment)),
    }


def seed(session: Session) -> None:
    """Four users, a few posts, tags, comments and follows."""
    ann = register(session, "ann", admin=True, level=2)
    bob = register(session, "bob")
    cat = register(session, "cat")
    dan = register(session, "dan")
    first = write_post(session, ann.id, "Welcome", "hello", tags=["news"], announcement=True)
    write_post(session, bob.id, "Bob on cheese", "gouda", tags=["food"])
    write_post(session, bob.id, "Bob on bread", "rye", tags=["food", "baking"])
    write_post(session, cat.id, "Cat naps", "zzz", tags=["pets"])
    comment(session, first, bob.id, "thanks")
    comment(session, first, cat.id, "hi all")
    for follower, followed in [(dan, bob), (dan, cat), (cat, bob), (bob, ann)]:
        follow_user(session, follower.id, followed.id)
