"""The example's models: authors and their posts, on Flask-SQLAlchemy 3.1.

``db`` uses ``FlaskCachingQuery``, so ``Author.query`` and the dynamic
``Author.posts`` relationship take ``FromCache`` and keep Flask-SQLAlchemy's
``get_or_404()`` / ``first_or_404()`` / ``paginate()``.
"""

from __future__ import annotations

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, DynamicMapped, Mapped, mapped_column

from caching_query.flask_sqlalchemy_support import FlaskCachingQuery


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base, query_class=FlaskCachingQuery)


class Author(db.Model):  # type: ignore[name-defined,misc]
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    # lazy="dynamic": author.posts is a FlaskCachingQuery (db.relationship sets query_class)
    posts: DynamicMapped[Post] = db.relationship(
        lazy="dynamic", back_populates="author", order_by="Post.id"
    )

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name}


class Post(db.Model):  # type: ignore[name-defined,misc]
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(default="")
    author_id: Mapped[int] = mapped_column(ForeignKey("author.id"))
    author: Mapped[Author] = db.relationship(back_populates="posts")

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "title": self.title, "author": self.author.name}


AUTHORS = ["ada", "grace", "linus"]


def seed(posts_per_author: int = 8) -> None:
    """Fill an empty database: three authors, ``posts_per_author`` posts each."""
    for name in AUTHORS:
        author = Author(name=name)
        db.session.add(author)
        for number in range(1, posts_per_author + 1):
            author.posts.append(Post(title=f"{name} #{number}", body=f"post {number} of {name}"))
    db.session.commit()
