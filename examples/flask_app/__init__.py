"""A small Flask-SQLAlchemy application whose reads are cached: ``create_app()``.

Run it::

    python -m examples.flask_app            # http://127.0.0.1:5000/posts
    flask --app examples.flask_app run

Configuration (``create_app(config)`` or the environment, as for the other
examples): ``SQLALCHEMY_DATABASE_URI`` (``DATABASE_URL``; a SQLite file
``examples/flask_app.db`` by default, seeded on first use) and
``CACHE_REGIONS``, Beaker's regions (``CACHE_BACKEND`` / ``CACHE_URL``:
a memory region by default). Automatic invalidation is on: a write
committed through a view invalidates the cached pages it changes, in
every process sharing the cache.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from beaker.cache import CacheManager
from flask import Flask
from sqlalchemy import select

import caching_query

from ..regions import shared_region
from .models import Author, Post, db, seed
from .views import bp

EXAMPLES = Path(__file__).resolve().parent.parent


def create_app(
    config: Mapping[str, Any] | None = None, cache_manager: CacheManager | None = None
) -> Flask:
    """The application; ``config`` overrides the defaults above.

    ``cache_manager``, if given, is used instead of one made from ``CACHE_REGIONS``.
    """
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=os.environ.get(
            "DATABASE_URL", f"sqlite:///{EXAMPLES / 'flask_app.db'}"
        ),
        CACHE_REGIONS={
            "default": shared_region(
                os.environ.get("CACHE_BACKEND", "memory"), os.environ.get("CACHE_URL")
            )
        },
        SEED=True,
    )
    app.config.update(config or {})
    db.init_app(app)
    if cache_manager is None:
        cache_manager = CacheManager(cache_regions=app.config["CACHE_REGIONS"])
    app.extensions["caching_query"] = cache_manager
    # The one line: db.session's sessions serve FromCache, and committed
    # writes invalidate what they change. db.session belongs to the extension,
    # not to one app: its regions are those of the last manager given here.
    caching_query.auto_invalidate(db.session, cache_manager)
    app.register_blueprint(bp)
    with app.app_context():
        db.create_all()
        if app.config["SEED"] and db.session.scalar(select(Author.id).limit(1)) is None:
            seed()
    return app


__all__ = ["create_app", "db", "Author", "Post"]
