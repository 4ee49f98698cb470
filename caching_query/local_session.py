"""A Beaker namespace whose storage lives on the current Session.

Some caches should last exactly as long as one unit of work: a web
request's scoped session. ``ScopedSessionNamespace`` keeps one dictionary
per namespace in ``Session.info`` of the session that is current when the
cache is used, so each session has its own cache, ``Session.remove()``
(or closing and dropping the session) takes it away, and the cached
objects are the session's own: identity is preserved and nothing is
pickled.

Register it either way::

    # configuration only, through the package's beaker.backends entry point
    CacheManager(cache_regions={
        "local_session": {"type": "ext:local_session", "scoped_session": Session}})

    # the classic form
    ScopedSessionNamespace.create_session_container("ext:local_session", Session)
    CacheManager(cache_regions={"local_session": {"type": "ext:local_session"}})

``scoped_session`` may be any zero-argument callable that returns the
current ``Session``, so a plain session works too, for example one held in
a ``contextvars.ContextVar``: ``"scoped_session": current_session.get``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from beaker.container import AbstractDictionaryNSManager, MemoryNamespaceManager
from beaker.exceptions import MissingCacheParameter
from sqlalchemy.orm import Session

from . import regions
from .internals import _beaker_internals

_INFO_KEY = "caching_query.local_caches"

CurrentSession = Callable[[], Session]


class ScopedSessionNamespace(MemoryNamespaceManager):  # type: ignore[misc]  # Beaker: untyped
    """A memory namespace stored on the current session of ``scoped_session``."""

    # Read by caching_query.regions: objects stay attached, no copies.
    session_local = True
    default_scoped_session: CurrentSession | None = None

    def __init__(
        self,
        namespace: str,
        scoped_session: CurrentSession | None = None,
        **kwargs: Any,
    ) -> None:
        # Deliberately not MemoryNamespaceManager.__init__: it would bind a
        # process-wide dictionary.
        AbstractDictionaryNSManager.__init__(self, namespace)
        current = scoped_session or type(self).default_scoped_session
        if current is None or not callable(current):
            raise MissingCacheParameter(
                "an ext:local_session region needs 'scoped_session': a "
                "scoped_session, or a callable returning the current Session "
                f"(got {current!r})"
            )
        self.current_session = current

    @property
    def dictionary(self) -> dict[Any, Any]:
        caches: dict[str, dict[Any, Any]] = self.current_session().info.setdefault(_INFO_KEY, {})
        try:
            return caches[self.namespace]
        except KeyError:
            return caches.setdefault(self.namespace, {})

    @classmethod
    def create_session_container(
        cls, beaker_name: str, scoped_session: CurrentSession
    ) -> type[ScopedSessionNamespace]:
        """Register a Beaker type ``beaker_name`` bound to ``scoped_session``."""
        bound = type(cls.__name__, (cls,), {"default_scoped_session": staticmethod(scoped_session)})
        _beaker_internals.register_backend(beaker_name, bound)
        regions.forget_caches()
        return bound
