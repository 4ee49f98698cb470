"""Putting the cache hook on session factories, classes and sessions, and which manager each uses.

``install()`` hooks what an application hands it (a ``sessionmaker``,
``scoped_session``, ``Session`` class or session, or an async one, see
``async_session``); ``CachingQuery`` calls ``ensure_installed()`` for the
session it runs in. The hook itself is ``core``'s.
"""

from __future__ import annotations

import weakref
from typing import Any

from beaker.cache import CacheManager
from sqlalchemy import event
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from . import async_session
from .async_session import SessionTarget

_installed: weakref.WeakSet[Any] = weakref.WeakSet()
_default_managers: weakref.WeakKeyDictionary[Any, CacheManager] = weakref.WeakKeyDictionary()
_private_classes: weakref.WeakKeyDictionary[type, bool] = weakref.WeakKeyDictionary()


def install(target: SessionTarget, cache_manager: CacheManager | None = None) -> None:
    """Let sessions made by ``target`` serve cache options.

    ``target`` is a ``sessionmaker``, ``scoped_session``, ``Session``
    subclass or instance, or their async counterpart (``async_sessionmaker``,
    ``async_scoped_session``, ``AsyncSession``: see ``async_session``).
    ``CachingQuery`` calls this itself; 2.0-style ``select()`` /
    ``Session.get()`` users call it once. Regions are looked up in
    ``cache_manager``, else in the manager of a ``query_callable`` query
    class given to the sessionmaker, else in Beaker's global regions.
    Calling it again moves the hook behind ``do_orm_execute`` hooks
    registered since.
    """
    _install(target, cache_manager)


def _install(
    target: SessionTarget, cache_manager: CacheManager | None = None
) -> tuple[Any, CacheManager | None]:
    """``install()``; returns the object hooked and the manager resolved for it."""
    target = async_session.sync_target(target)
    if isinstance(target, scoped_session):
        target = target.session_factory
    if isinstance(target, sessionmaker):
        if cache_manager is None:
            cache_manager = getattr(target.kw.get("query_cls"), "cache_manager", None)
        target = target.class_
    if not (
        isinstance(target, Session) or (isinstance(target, type) and issubclass(target, Session))
    ):
        raise TypeError(
            f"install() takes a sessionmaker, scoped_session, Session class or "
            f"Session (or their async_sessionmaker, async_scoped_session, AsyncSession "
            f"counterparts), not {target!r}"
        )
    if cache_manager is not None:
        _default_managers[target] = cache_manager
    if target in _installed:
        # Again: move the hook behind do_orm_execute hooks registered since,
        # so that they shape what gets cached (see _later_hooks_run).
        event.remove(target, "do_orm_execute", _hook())
    event.listen(target, "do_orm_execute", _hook())
    _installed.add(target)
    return target, cache_manager or _default_managers.get(target)


def ensure_installed(session: Session, cache_manager: CacheManager | None = None) -> None:
    """Install the hook for ``session``'s class unless it is already there.

    ``cache_manager`` (a ``query_callable`` class's) becomes the class's
    default unless one is set: options that lost their binding by being
    pickled with the objects they loaded resolve regions through it.
    """
    cls = type(session)
    private = _private_classes.get(cls)
    if private is None:
        private = _private_classes[cls] = _is_private_class(cls)
    target: Any = cls if private else session
    if cache_manager is not None and target not in _default_managers:
        _default_managers[target] = cache_manager
    if target not in _installed and cls not in _installed:
        install(target)


def _is_private_class(cls: type[Session]) -> bool:
    """True for a bare subclass, such as the one each sessionmaker makes.

    Hooking it affects only the sessions of that factory. A class with a
    body of its own (``Session`` itself, ``ShardedSession``, an
    application's subclass) is used elsewhere too: there the hook goes on
    the session instance instead.
    """
    return cls is not Session and all(name.startswith("__") for name in vars(cls))


def default_manager(session: Session) -> CacheManager | None:
    """The manager ``session``'s regions resolve in, if one was given for it or its class."""
    return _default_managers.get(session) or _default_managers.get(type(session))


def _hook() -> Any:
    from .core import HOOK  # the core imports this module

    return HOOK
