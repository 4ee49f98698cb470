"""pytest plugin: every Session SQLAlchemy's tests create uses CachingQuery.

A test that passes its own ``query_cls`` keeps it. No cache option is
involved, so each test must behave exactly as with SQLAlchemy's ``Query``.
"""

from __future__ import annotations

import functools
from typing import Any


def pytest_configure(config: Any) -> None:
    from sqlalchemy.orm import Session

    from caching_query import CachingQuery

    original = Session.__init__
    if getattr(original, "_caching_query_default", False):
        return

    @functools.wraps(original)
    def __init__(self: Session, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("query_cls") is None:
            kwargs["query_cls"] = CachingQuery
        original(self, *args, **kwargs)

    __init__._caching_query_default = True  # type: ignore[attr-defined]
    Session.__init__ = __init__  # type: ignore[method-assign]
