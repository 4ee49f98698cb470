"""``CachingQuery``: the legacy ``Query`` API on top of the core path.

Without a cache option a ``CachingQuery`` is a plain ``Query``: every
method, result and error is ``Query``'s own. With one, every way of
fetching (iteration, ``all()``, ``first()``, ``one()``, ``scalar()``,
slicing) enters the core through ``direct``, before ``Session.execute``
would, unless the session has other ``do_orm_execute`` hooks; ``get()``
goes through ``Session.execute`` and the hook in ``core``. This class
adds the handles on the query's entry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from beaker.cache import Cache, CacheManager
from sqlalchemy.orm import Query

from . import core, direct, handles, installation, regions, store
from .entries import objects
from .entries.entry import OBJECTS
from .exc import CacheOptionError
from .internals import _sa_internals
from .internals._sa_query import DirectFetch
from .options import DEFAULT_REGION, CacheOption, FromCache, single_from_cache

_T = TypeVar("_T", bound=Any)


class CachingQuery(DirectFetch, Query[_T]):
    """A ``Query`` that can serve its results from a Beaker cache.

    ``sessionmaker(query_cls=CachingQuery)`` resolves region names in
    Beaker's global regions; ``query_callable(manager)`` makes a subclass
    bound to one ``CacheManager``.
    """

    cache_manager: CacheManager | None = None

    def __init__(self, entities: Any, session: Any = None) -> None:
        super().__init__(entities, session)
        if session is not None:
            # early, so that flushes before the first cached query are seen
            installation.ensure_installed(session, type(self).cache_manager)

    def _fetch_directly(self) -> Any:
        # a hit served before Session.execute runs (see ``direct``)
        return direct.fetch(self)

    def options(self, *args: Any) -> CachingQuery[_T]:
        """``Query.options()``; cache options resolve regions in this class's manager.

        Two ``FromCache`` options naming different entries are refused here.
        """
        for arg in args:
            if isinstance(arg, CacheOption):
                break
        else:  # loader options only: Query's own method, nothing to check
            return super().options(*args)
        manager = type(self).cache_manager
        if manager is not None:
            args = tuple(
                arg.bound_to(manager) if isinstance(arg, CacheOption) else arg for arg in args
            )
        single_from_cache((*_sa_internals.statement_options(self), *args))
        return super().options(*args)

    if not TYPE_CHECKING:  # type checkers keep Query's precise overloads

        def with_entities(self, *entities: Any, **kwargs: Any) -> CachingQuery[Any]:
            """``Query.with_entities()``, keeping this query's cache option."""
            # Query moves earlier options aside with the replaced entities;
            # the cache options belong to the query, whatever it selects.
            query = super().with_entities(*entities, **kwargs)
            present = _sa_internals.statement_options(query)
            carried = [
                option
                for option in _sa_internals.statement_options(self)
                if isinstance(option, CacheOption) and option not in present
            ]
            return query.options(*carried) if carried else query

    def with_cache_key(
        self,
        cache_key: str,
        region: str = DEFAULT_REGION,
        namespace: str | None = None,
        expire: int | None = None,
    ) -> CachingQuery[_T]:
        """This query, cached under the explicit key ``cache_key``."""
        return self.options(FromCache(region, namespace, cache_key=cache_key, expire=expire))

    # -- the handle on this query's entry ----------------------------------

    def cache_option(self) -> FromCache:
        """The ``FromCache`` option this query carries."""
        option = single_from_cache(_sa_internals.statement_options(self))
        if option is not None:
            return option
        raise CacheOptionError(
            "this query has no cache option; add one with "
            "options(FromCache(...)) or with_cache_key(...)"
        )

    def cache_and_key(self) -> tuple[Cache, str]:
        """The Beaker ``Cache`` holding this query's entry, and its key.

        ``cache.get(key)`` reads the stored entry directly.
        """
        option = self.cache_option()
        statement, params = _sa_internals.query_execution_parts(self)
        return handles.cache_and_key(self.session, statement, option, params, self.load_options)

    def invalidate(self) -> None:
        """Remove this query's entry; the next execution runs the SQL."""
        cache, key = self.cache_and_key()
        store.invalidate(cache, key)

    def get_value(
        self,
        merge: bool = True,
        createfunc: Callable[[], Sequence[Any]] | None = None,
    ) -> list[Any]:
        """The cached result list, shaped like ``all()``.

        ``merge=True`` returns objects of this query's session;
        ``merge=False`` the stored (detached) objects themselves. When no
        entry exists, ``createfunc()`` makes and stores one, or KeyError.
        """
        cache, key = self.cache_and_key()
        local = regions.is_session_local(cache)
        watch = self._watch(cache)
        entry = store.read(cache, key, watch)
        if entry is None:
            if createfunc is None:
                raise KeyError(key)
            entry = self._entry_for(createfunc(), local)
            store.write(cache, key, entry, self.cache_option().expire, watch=watch)
        if entry.kind == OBJECTS:
            if merge:
                return _sa_internals.query_rows(objects.replay(self.session, entry, local))
            return _sa_internals.query_rows(entry.data())
        if merge:
            return self.all()
        # Objects of a throwaway session: detached once it closes.
        with type(self.session)(bind=self.session.connection(), autoflush=False) as private:
            installation.ensure_installed(private, type(self).cache_manager)
            return self.with_session(private).all()

    def set_value(self, value: Sequence[Any]) -> None:
        """Store ``value`` (shaped like ``all()``) as this query's entry."""
        cache, key = self.cache_and_key()
        entry = self._entry_for(value, regions.is_session_local(cache))
        store.write(cache, key, entry, self.cache_option().expire, watch=self._watch(cache))

    def _watch(self, cache: Cache) -> Any:
        # with automatic invalidation on, what the entry is checked against
        statement, _ = _sa_internals.query_execution_parts(self)
        return core.watch_for(self.session, statement, self.cache_option(), cache)

    def _entry_for(self, value: Sequence[Any], local: bool) -> Any:
        descriptions = self.column_descriptions
        single = (
            len(descriptions) == 1
            and descriptions[0]["entity"] is not None
            and descriptions[0]["type"] is descriptions[0]["entity"]
            and not _sa_internals.load_option(self.load_options, "only_return_tuples")
        )
        names = [d["name"] for d in descriptions]
        return objects.entry_from_rows(self.session, names, list(value), single, local)


_bound_classes: dict[int, tuple[CacheManager, type[CachingQuery[Any]]]] = {}


def query_callable(cache_manager: CacheManager) -> type[CachingQuery[Any]]:
    """A ``CachingQuery`` class whose regions come from ``cache_manager``.

    Use it as ``sessionmaker(query_cls=query_callable(manager))``.
    """
    if not isinstance(cache_manager, CacheManager):
        raise TypeError(f"query_callable() takes a beaker CacheManager, not {cache_manager!r}")
    found = _bound_classes.get(id(cache_manager))
    if found is not None and found[0] is cache_manager:
        return found[1]
    cls = type("CachingQuery", (CachingQuery,), {"cache_manager": cache_manager})
    _bound_classes[id(cache_manager)] = (cache_manager, cls)
    return cls
