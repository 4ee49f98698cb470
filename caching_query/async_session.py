"""Where an ``AsyncSession`` target's queries run: the synchronous ``Session`` it wraps.

``AsyncSession`` executes through a ``Session`` of its ``sync_session_class``
inside SQLAlchemy's greenlet bridge, so the ``do_orm_execute`` hook that
``install()`` puts on that class serves async sessions through the one
path every query takes. This maps each async target to it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Union

from sqlalchemy.orm import Session, scoped_session, sessionmaker

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session, async_sessionmaker

SessionTarget = Union[
    Session,
    type[Session],
    sessionmaker[Any],
    scoped_session[Any],
    "AsyncSession",
    "type[AsyncSession]",
    "async_sessionmaker[Any]",
    "async_scoped_session[Any]",
]


def sync_target(target: Any) -> Any:
    """The sync ``Session`` class or instance behind an async target; other targets unchanged.

    An ``async_sessionmaker`` (or the ``async_scoped_session`` around one)
    gets a private ``sync_session_class`` of its own unless it names one
    already, as a ``sessionmaker`` has a private class: hooking ``Session``
    itself would cache for every session of the process. So does an
    ``AsyncSession`` subclass that inherits its ``sync_session_class``;
    ``AsyncSession`` itself maps to its ``Session``, like ``install(Session)``.
    """
    if "sqlalchemy.ext.asyncio" not in sys.modules:  # no async object can exist yet
        return target
    from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session, async_sessionmaker

    if isinstance(target, async_scoped_session):
        target = target.session_factory
    if isinstance(target, async_sessionmaker):
        given = target.kw.get("sync_session_class") or target.class_.sync_session_class
        sync = _private(given)
        target.kw["sync_session_class"] = sync
        return sync
    if isinstance(target, AsyncSession):
        return target.sync_session
    if isinstance(target, type) and issubclass(target, AsyncSession):
        if target is not AsyncSession and "sync_session_class" not in vars(target):
            target.sync_session_class = _private(target.sync_session_class)
        return target.sync_session_class
    return target


def _private(cls: type) -> type:
    from .installation import _is_private_class

    if _is_private_class(cls):
        return cls
    return type(f"Caching{cls.__name__}", (cls,), {"__module__": __name__})
