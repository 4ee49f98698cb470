"""Which lock a miss holds while it runs its query, so that it runs once.

Beaker's creation lock is a file on the local disk for memcached (ten
application servers missing one key all run the query) and, for Redis,
a key that lives 15 minutes and is waited on forever (one crashed
process blocks a key for that long). For memcached and Redis regions the
lock here lives in the cache server itself: ``add`` with a TTL on
memcached, ``SET NX PX`` on Redis (redis-py's ``Lock``). A process that
finds it taken polls for the entry its holder stores, for at most
``lock_wait`` seconds, and takes the lock over once ``lock_ttl`` has
expired on a holder that died. Past ``lock_wait`` it runs the query
itself rather than wait longer.

Beaker also leaves ``ext:database`` and ``ext:sqla`` namespaces unguarded
between threads, and hands out a null creation lock when no ``lock_dir``
is configured; both get a process-local lock here.

Inside ``AsyncSession``'s greenlet bridge the lock is first taken among
the tasks of the event loop (``task_locks``), and every wait is an
``await``: a blocked event loop would never let the holder finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from beaker.cache import Cache
from beaker.synchronization import null_synchronizer

from .exc import CacheOptionError
from .internals import _beaker_internals, _sa_greenlet
from .keys import backend_key
from .name_locks import NameLock
from .task_locks import TaskLock, name_for

log = logging.getLogger("caching_query")

LOCK_TTL = "lock_ttl"
LOCK_WAIT = "lock_wait"
STALE_WHILE_REVALIDATE = "stale_while_revalidate"
OWN_SETTINGS = (LOCK_TTL, LOCK_WAIT, STALE_WHILE_REVALIDATE)
_FIRST_POLL, _LONGEST_POLL = 0.005, 0.1

_guards: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()


def thread_guard(namespace: Any) -> Any:
    """A context manager serializing threads on ``namespace`` where Beaker does not."""
    if not isinstance(getattr(namespace, "access_lock", None), null_synchronizer):
        return contextlib.nullcontext()
    guard = _guards.get(namespace)
    if guard is None:
        guard = _guards.setdefault(namespace, threading.RLock())
    return guard


def _seconds(settings: dict[str, Any], name: str, default: float, zero: bool = False) -> float:
    value = settings.get(name)
    if value is None or value == "":
        return default
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise CacheOptionError(f"{name} must be a number of seconds, not {value!r}") from None
    if seconds < 0 or (seconds == 0 and not zero):
        raise CacheOptionError(
            f"{name} must be {'0 or more' if zero else 'more than 0'} seconds, not {seconds}"
        )
    return seconds


@dataclass(frozen=True)
class LockSettings:
    """A region's ``lock_ttl``, ``lock_wait`` and ``stale_while_revalidate``, in seconds.

    ``stale_while_revalidate``: for that long after an entry expires, a
    miss that finds another process already making the new entry serves
    the old one instead of waiting; an entry cleared, invalidated or whose
    tables were written is never served that way. 0 (the default): off.
    """

    ttl: float = 30.0
    wait: float = 30.0
    stale_while_revalidate: float = 0.0

    @classmethod
    def configure(cls, settings: dict[str, Any]) -> LockSettings:
        return cls(
            _seconds(settings, LOCK_TTL, cls.ttl),
            _seconds(settings, LOCK_WAIT, cls.wait),
            _seconds(settings, STALE_WHILE_REVALIDATE, 0.0, zero=True),
        )


class ServerLock:
    """A creation lock held in the cache server: it expires if its holder dies."""

    def __init__(self, attempt: Callable[[], bool], release: Callable[[], None], wait: float):
        self._attempt = attempt
        self._release = release
        self.wait = wait

    def attempt(self) -> bool:
        """Take the lock if it is free; never waits."""
        return self._attempt()

    def release(self) -> None:
        self._release()  # only if still ours: a lock taken over is not dropped


def creation_lock(cache: Cache, key: str) -> Any:
    """The lock a miss on ``key`` holds while it runs the query."""
    lock = _region_lock(cache, key)
    if _sa_greenlet.in_bridge():
        return TaskLock(name_for(cache, key), lock)
    return lock


def _region_lock(cache: Cache, key: str) -> Any:
    settings: LockSettings = getattr(cache, "lock_settings", None) or LockSettings()
    held_in_server = _beaker_internals.server_lock(cache.namespace, backend_key(key), settings.ttl)
    if held_in_server is not None:
        return ServerLock(*held_in_server, wait=settings.wait)
    namespace = cache.namespace
    if _beaker_internals.memory_records(namespace) is not None:
        # Beaker's own is a NameLock built anew by every miss (see name_locks)
        return NameLock(f"caching_query/memory/{cache.namespace_name}/{key}")
    lock = namespace.get_creation_lock(backend_key(key))
    if isinstance(lock, null_synchronizer):
        # No lock_dir configured: still one creator per key in this process.
        return NameLock(f"caching_query/{cache.namespace_name}/{key}")
    return lock


def attempt(lock: Any) -> bool:
    """Take ``lock`` if it is free, without waiting."""
    if isinstance(lock, TaskLock):
        if not lock.attempt():
            return False
        taken = False
        try:
            taken = attempt(lock.inner)
        finally:
            if not taken:
                lock.release_task()
        return taken
    if isinstance(lock, ServerLock):
        return lock.attempt()
    return bool(lock.acquire(False))


_warned_waits: set[tuple[str, str]] = set()


def acquire_or_find(lock: Any, find: Callable[[], Any], where: tuple[str, str]) -> tuple[bool, Any]:
    """Hold ``lock``, or find what its holder stored: ``(held, found)``.

    A local lock is simply waited for (``(True, None)``). For a lock in
    the server, ``find()`` is polled while another process holds it; past
    the lock's ``wait`` this gives up, ``(False, None)``: the caller runs
    the query without the lock rather than wait longer.
    """
    if isinstance(lock, TaskLock):
        return _acquire_in_task(lock, find, where)
    if not isinstance(lock, ServerLock):
        if _sa_greenlet.in_bridge():  # held by another thread: poll, the loop runs meanwhile
            pause = _FIRST_POLL
            while not lock.acquire(False):
                pause = _pause(pause)
            return True, None
        lock.acquire()
        return True, None
    deadline = time.monotonic() + lock.wait
    pause = _FIRST_POLL
    while not lock.attempt():
        pause = _pause(pause)
        found = find()
        if found is not None:
            return False, found
        if time.monotonic() >= deadline:
            _warn_waited(lock.wait, where)
            return False, None
    return True, None


def _acquire_in_task(
    lock: TaskLock, find: Callable[[], Any], where: tuple[str, str]
) -> tuple[bool, Any]:
    """``acquire_or_find`` for a task in the bridge: the loop's key lock, then the region's."""
    wait = lock.inner.wait if isinstance(lock.inner, ServerLock) else None
    if not lock.acquire(wait):
        _warn_waited(wait or 0.0, where)
        return False, None
    try:
        held, found = acquire_or_find(lock.inner, find, where)
    except BaseException:
        lock.release_task()
        raise
    if not held:
        lock.release_task()
    return held, found


def _pause(seconds: float) -> float:
    """Sleep (inside the bridge by awaiting, so that the event loop goes on);
    the next, longer pause of the backoff."""
    if _sa_greenlet.in_bridge():
        _sa_greenlet.wait(asyncio.sleep(seconds))
    else:
        time.sleep(seconds)
    return min(seconds * 2, _LONGEST_POLL)


def _warn_waited(seconds: float, where: tuple[str, str]) -> None:
    if where not in _warned_waits:
        _warned_waits.add(where)
        log.warning(
            "caching_query: waited %.1f s for another process or task to store a result in "
            "region %r namespace %r; running the query here instead (raise lock_wait "
            "if such queries take longer; logged once per namespace)",
            seconds,
            *where,
        )
