"""Flask-SQLAlchemy 3.1: one query class with both its helpers and the cache's.

Set up::

    from caching_query.flask_sqlalchemy_support import FlaskCachingQuery

    db = SQLAlchemy(app, query_class=FlaskCachingQuery)
    caching_query.auto_invalidate(db.session, cache_manager)   # or install()

``Model.query`` and ``lazy="dynamic"`` relationships (``db.relationship``
gives them the extension's query class) then take ``FromCache`` and keep
``get_or_404()``, ``first_or_404()``, ``one_or_404()`` and ``paginate()``.
The extension's own ``db.get_or_404(Model, id, options=[FromCache(...)])``,
``db.first_or_404()``, ``db.one_or_404()`` and ``db.paginate(select(...)
.options(FromCache(...)))`` go through ``Session.execute``/``Session.get``
and need only the hook. A paginated cached query caches each page and its
COUNT under their own derived keys, in the query's namespace (see
``wrapped`` for ``db.paginate``'s COUNT).
"""

from __future__ import annotations

from typing import Any, TypeVar

import flask_sqlalchemy.query
from flask_sqlalchemy.pagination import Pagination

from .exc import CacheOptionError
from .internals import _sa_internals
from .options import single_from_cache
from .query import CachingQuery

_T = TypeVar("_T", bound=Any)


class FlaskCachingQuery(CachingQuery[_T], flask_sqlalchemy.query.Query):
    """``CachingQuery`` with Flask-SQLAlchemy's ``Query`` helpers.

    Pass it as ``SQLAlchemy(query_class=FlaskCachingQuery)``. Regions are
    resolved through the manager given to ``install()`` /
    ``auto_invalidate()`` for ``db.session``, else Beaker's global regions.
    """

    def paginate(
        self,
        *,
        page: int | None = None,
        per_page: int | None = None,
        max_per_page: int | None = None,
        error_out: bool = True,
        count: bool = True,
    ) -> Pagination:
        """Flask-SQLAlchemy's ``Query.paginate()``; the page and its count are cached.

        Each page (its limit and offset are bound values) and the COUNT
        (``Query.count()`` keeps the query's cache option) get their own
        derived key. An explicit ``cache_key`` would be shared by every
        page and the count, so it is refused.
        """
        option = single_from_cache(_sa_internals.statement_options(self))
        if option is not None and option.cache_key is not None:
            raise CacheOptionError(
                f"paginate() cannot use {option!r}: an explicit cache_key would be "
                "shared by every page and by the count; drop cache_key (pages and "
                "count then get keys of their own, in the same namespace)"
            )
        return super().paginate(
            page=page,
            per_page=per_page,
            max_per_page=max_per_page,
            error_out=error_out,
            count=count,
        )


__all__ = ["FlaskCachingQuery"]
