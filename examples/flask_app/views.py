"""The example's views: every read cached, one session per request, writes that invalidate.

Reads name a region and a namespace with ``FromCache``; nothing else in a
view knows about the cache. Writes commit through ``db.session``: with
automatic invalidation on (``create_app``), the commit invalidates every
cached page, count and post that read the tables it wrote.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, request
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from caching_query import FromCache

from .models import Author, Post, db

bp = Blueprint("blog", __name__)

POSTS = FromCache("default", "posts")
AUTHORS = FromCache("default", "authors")


def _page(pagination: Pagination) -> dict[str, Any]:
    return {
        "page": pagination.page,
        "per_page": pagination.per_page,
        "pages": pagination.pages,
        "total": pagination.total,
        "items": [post.as_dict() for post in pagination.items],
    }


@bp.get("/posts")
def list_posts() -> dict[str, Any]:
    """``db.paginate()``: the page and its COUNT both come from the cache."""
    statement = select(Post).options(joinedload(Post.author), POSTS).order_by(Post.id)
    return _page(db.paginate(statement, per_page=request.args.get("per_page", 5, type=int)))


@bp.get("/posts/<int:post_id>")
def show_post(post_id: int) -> dict[str, Any]:
    """``db.get_or_404()`` with a cache option: a 404 for an id that does not exist."""
    post = db.get_or_404(Post, post_id, options=[joinedload(Post.author), POSTS])
    return {**post.as_dict(), "body": post.body}


@bp.get("/posts/titled/<title>")
def post_by_title(title: str) -> dict[str, Any]:
    """``db.one_or_404()`` on a cached ``select()``."""
    statement = select(Post).options(joinedload(Post.author), POSTS).where(Post.title == title)
    return db.one_or_404(statement).as_dict()


@bp.get("/authors/<int:author_id>/posts")
def author_posts(author_id: int) -> dict[str, Any]:
    """The legacy API: ``Model.query.get_or_404()`` and a dynamic relationship's ``paginate()``."""
    author = Author.query.options(AUTHORS).get_or_404(author_id)
    posts = author.posts.options(joinedload(Post.author), POSTS)
    return {"author": author.as_dict(), **_page(posts.paginate(per_page=5))}


@bp.get("/authors/<int:author_id>/latest")
def latest_post(author_id: int) -> dict[str, Any]:
    """``first_or_404()`` on a dynamic relationship's query."""
    author = Author.query.options(AUTHORS).get_or_404(author_id)
    newest_first = author.posts.order_by(None).order_by(Post.id.desc())
    return newest_first.options(joinedload(Post.author), POSTS).first_or_404().as_dict()


@bp.post("/posts")
def create_post() -> tuple[dict[str, Any], int]:
    """A write: the commit invalidates the cached pages, counts and posts."""
    data = request.get_json(silent=True) or request.form
    title, author_id = data.get("title"), data.get("author_id")
    if not title or author_id is None:
        abort(400, description="title and author_id are required")
    author = db.get_or_404(Author, int(author_id), options=[AUTHORS])
    post = Post(title=str(title), body=str(data.get("body", "")), author=author)
    db.session.add(post)
    db.session.commit()
    return {**post.as_dict(), "body": post.body}, 201


@bp.post("/posts/<int:post_id>/title")
def rename_post(post_id: int) -> dict[str, Any]:
    """A write to one row: the cached pages and the post show the new title afterwards."""
    data = request.get_json(silent=True) or request.form
    if not data.get("title"):
        abort(400, description="title is required")
    post = db.get_or_404(Post, post_id, options=[POSTS])
    post.title = str(data["title"])
    db.session.commit()
    return {**post.as_dict(), "body": post.body}
