"""The query options that turn caching on.

Both are ``UserDefinedOption`` objects: SQLAlchemy carries them on the
statement untouched and leaves them out of its compiled-statement cache
key, and the ``do_orm_execute`` hook in ``core`` acts on them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Self

from beaker.cache import Cache, CacheManager
from sqlalchemy import inspect
from sqlalchemy.orm.interfaces import UserDefinedOption

from . import keys, regions
from .exc import CacheOptionError
from .internals import _sa_internals

if TYPE_CHECKING:
    from sqlalchemy.orm import Mapper
    from sqlalchemy.orm.attributes import QueryableAttribute

DEFAULT_REGION = "default"
DEFAULT_NAMESPACE = "caching_query"


def _check_name(value: object, what: str, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}: {value!r}")
    if not value:
        raise ValueError(f"{what} must not be empty")


def _check_expire(expire: object) -> None:
    if expire is None:
        return
    if isinstance(expire, bool) or not isinstance(expire, int) or expire < 0:
        raise ValueError(f"expire must be None or a number of seconds >= 0, not {expire!r}")


class CacheOption(UserDefinedOption):
    """Where results go: a region, a namespace, optionally a fixed key."""

    region: str
    namespace: str | None
    cache_key: str | None
    expire: int | None
    cache_manager: CacheManager | None

    def _set_target(
        self,
        region: str,
        namespace: str | None,
        cache_key: str | None,
        expire: int | None,
        cache_manager: CacheManager | None,
    ) -> None:
        _check_name(region, "region")
        _check_name(namespace, "namespace", optional=True)
        _check_name(cache_key, "cache_key", optional=True)
        _check_expire(expire)
        self.region = region
        self.namespace = namespace
        self.cache_key = cache_key
        self.expire = expire
        self.cache_manager = cache_manager

    def bound_to(self, cache_manager: CacheManager | None) -> Self:
        """This option, resolving its region in ``cache_manager``.

        An option that already names a manager keeps it.
        """
        if cache_manager is None or self.cache_manager is not None:
            return self
        bound: Self = self._clone()  # type: ignore[no-untyped-call]
        bound.cache_manager = cache_manager
        return bound

    def __getstate__(self) -> dict[str, Any]:
        # Objects loaded under a propagating option carry it in their state,
        # and a pickling backend stores them: keep the option portable. A
        # CacheManager may hold sessions, so the binding stays in-process;
        # an unpickled option resolves regions like an unbound one.
        state = dict(self.__dict__)
        state["cache_manager"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def cache(self, default_manager: CacheManager | None = None) -> Cache:
        """The Beaker ``Cache`` this option stores into."""
        return regions.get_cache(
            self.region,
            keys.safe_name(self.namespace or DEFAULT_NAMESPACE, "namespace"),
            self.cache_manager or default_manager,
        )


class FromCache(CacheOption):
    """Cache the results of the query carrying this option.

    ``FromCache("default", "by_name")`` names a Beaker region and a
    namespace in it. Without ``cache_key`` the key is derived from the
    statement and its bound values; ``expire`` (seconds) overrides the
    region's expiry for entries this option writes. ``auto_invalidate=False``
    keeps this query's entries out of automatic invalidation (they are then
    invalidated by hand or expire) where the session has it on.
    """

    def __init__(
        self,
        region: str = DEFAULT_REGION,
        namespace: str | None = None,
        cache_key: str | None = None,
        expire: int | None = None,
        *,
        cache_manager: CacheManager | None = None,
        auto_invalidate: bool | None = None,
    ) -> None:
        super().__init__()
        self._set_target(region, namespace, cache_key, expire, cache_manager)
        if not (auto_invalidate is None or isinstance(auto_invalidate, bool)):
            raise TypeError(f"auto_invalidate must be None, True or False, not {auto_invalidate!r}")
        self.auto_invalidate = auto_invalidate

    def __repr__(self) -> str:
        extra = "" if self.auto_invalidate is None else f", auto_invalidate={self.auto_invalidate}"
        return (
            f"FromCache({self.region!r}, {self.namespace!r}, "
            f"cache_key={self.cache_key!r}, expire={self.expire!r}{extra})"
        )


class NoCache(UserDefinedOption):
    """Keep a query out of the cache where ``cache_all()`` would cache it.

    ``select(User).options(NoCache())``, or the execution option
    ``cache=False``.
    """

    def __repr__(self) -> str:
        return "NoCache()"


def same_target(a: CacheOption, b: CacheOption) -> bool:
    """True when two options would read and write the same entries."""
    return (a.region, a.namespace, a.cache_key, a.expire, _auto(a)) == (
        b.region,
        b.namespace,
        b.cache_key,
        b.expire,
        _auto(b),
    )


def _auto(option: CacheOption) -> bool | None:
    return getattr(option, "auto_invalidate", None)


def single_from_cache(options: Iterable[Any]) -> FromCache | None:
    """The one ``FromCache`` among ``options``; two that disagree are an error."""
    found: FromCache | None = None
    for option in options:
        if isinstance(option, FromCache):
            if found is not None and not same_target(found, option):
                raise CacheOptionError(
                    f"conflicting cache options on one query: {found!r} and {option!r}"
                )
            found = option
    return found


class RelationshipCache(_sa_internals.CacheKeyedOption, CacheOption):
    """Serve the lazy load of a relationship from the cache.

    ``RelationshipCache("default", "by_id", PostalCode.city)`` caches every
    lazy load of ``PostalCode.city`` (and of the same relationship on
    subclasses) for objects loaded by the query carrying the option.
    Several relationships are chained with ``and_()``.

    The option names a relationship, not a set of instances. With
    inheritance, a relationship is the one its declaring class defines:
    where ``Car`` and ``Truck`` inherit ``maker`` from ``Vehicle``,
    ``Car.maker`` and ``Vehicle.maker`` name the same relationship, and
    either caches its lazy loads for every object the carrying query
    loaded -- cars (and subclasses of ``Car``) for ``select(Car)``, trucks
    too for a polymorphic ``select(Vehicle)``. SQLAlchemy itself reports
    such a load as one of ``Vehicle.maker``, whatever the instance's class,
    and its statement and result are the same for every subclass, so
    sharing its entries is never wrong. A relationship a subclass declares
    (or redeclares) itself is only matched on that subclass and its own
    subclasses. Entries are keyed by the lazy load's statement and values
    (the parent's foreign key or primary key), so objects with different
    related rows never share one.
    """

    propagate_to_loaders = True

    def __init__(
        self,
        region: str,
        namespace: str | None,
        attribute: QueryableAttribute[Any],
        expire: int | None = None,
        *,
        cache_manager: CacheManager | None = None,
    ) -> None:
        super().__init__()
        self._set_target(region, namespace, None, expire, cache_manager)
        prop = getattr(attribute, "property", None)
        if prop is None or not hasattr(prop, "direction"):
            raise TypeError(
                f"RelationshipCache needs a relationship attribute such as "
                f"Address.postal_code, not {attribute!r}"
            )
        # The class, not its Mapper, so that the option pickles.
        self.entity: type[Any] = attribute.class_  # type: ignore[assignment]
        self.key: str = prop.key
        self._chain: tuple[RelationshipCache, ...] = (self,)

    def and_(self, *others: RelationshipCache) -> RelationshipCache:
        """One option covering this relationship and ``others``."""
        combined: RelationshipCache = self._clone()  # type: ignore[no-untyped-call]
        chain = list(self._chain)
        for other in others:
            if not isinstance(other, RelationshipCache):
                raise TypeError(f"and_() takes RelationshipCache options, not {other!r}")
            chain.extend(other._chain)
        combined._chain = tuple(chain)
        return combined

    def bound_to(self, cache_manager: CacheManager | None) -> RelationshipCache:
        if cache_manager is None:
            return self
        bound: RelationshipCache = self._clone()  # type: ignore[no-untyped-call]
        bound._chain = tuple(CacheOption.bound_to(link, cache_manager) for link in self._chain)
        return bound

    def cache_key_parts(self) -> tuple[Any, ...]:
        return ("caching_query.RelationshipCache",) + tuple(
            (
                link.region,
                link.namespace,
                link.expire,
                f"{link.entity.__module__}.{link.entity.__qualname__}",
                link.key,
            )
            for link in self._chain
        )

    def links(self) -> Iterator[RelationshipCache]:
        return iter(self._chain)

    def matches(self, mapper: Mapper[Any], key: str) -> bool:
        """True when this link covers relationship ``key`` of ``mapper``.

        ``mapper`` is the one the load's path names, which for an inherited
        relationship is its declaring class's (``Vehicle`` for a car's
        ``maker``), never the instance's own subclass: the link is matched
        on the class declaring the relationship it names.
        """
        if key != self.key:
            return False
        # an aliased entity's path element (with_polymorphic, aliased())
        mapper = getattr(mapper, "mapper", mapper)
        return mapper.isa(_declaring_mapper(self.entity, key))

    def __repr__(self) -> str:
        names = ", ".join(f"{link.entity.__name__}.{link.key}" for link in self._chain)
        return f"RelationshipCache({self.region!r}, {self.namespace!r}, {names})"


def _declaring_mapper(entity: type, key: str) -> Mapper[Any]:
    """The mapper declaring relationship ``key`` that ``entity`` has.

    ``Car.maker`` inherited from ``Vehicle`` is ``Vehicle``'s property; one
    ``Car`` declares (or redeclares) is ``Car``'s.
    """
    mapper: Mapper[Any] = inspect(entity)
    if mapper.has_property(key):
        return mapper.get_property(key).parent
    return mapper
