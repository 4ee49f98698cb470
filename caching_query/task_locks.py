"""Creation locks between the asyncio tasks of one thread, which Beaker's locks cannot tell apart.

``AsyncSession`` runs every task's session in the event loop's thread.
Beaker's local creation locks belong to a thread (a memory region's is
reentrant: every task takes it at once and runs the query), and a wait
that blocks (a ``threading.Lock``, ``time.sleep`` while polling a lock in
memcached or Redis) would stop the loop, and with it the task that holds
the lock. So a miss inside the bridge first takes a per-key lock of its
event loop, waiting for it with ``await``: one task per key reaches the
region's own lock and runs the query, the others wake up to find its
entry. Used by ``locks`` only; the miss logic stays in ``misses``.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from .internals import _sa_greenlet

_Name = tuple[Any, ...]
_registry: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[_Name, _KeyLock]] = (
    weakref.WeakKeyDictionary()
)


class _KeyLock:
    """Held by one task at a time (reentrant for it); waiters wait on futures of the loop."""

    __slots__ = ("owner", "depth", "waiters")

    def __init__(self) -> None:
        self.owner: asyncio.Task[Any] | None = None
        self.depth = 0
        self.waiters: list[asyncio.Future[None]] = []

    def attempt(self, task: asyncio.Task[Any]) -> bool:
        if self.owner is None or self.owner is task:
            self.owner = task
            self.depth += 1
            return True
        return False

    async def acquire(self, task: asyncio.Task[Any], timeout: float | None) -> bool:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                while not self.attempt(task):
                    waiter = loop.create_future()
                    self.waiters.append(waiter)
                    try:
                        await waiter
                    finally:
                        self.waiters.remove(waiter)
        except TimeoutError:
            return False
        return True

    def release(self) -> None:
        self.depth -= 1
        if self.depth:
            return
        self.owner = None
        for waiter in self.waiters:  # all of them: one wins, the others wait again
            if not waiter.done():
                waiter.set_result(None)


class TaskLock:
    """A region's creation lock (``inner``), taken only by the task holding the loop's key lock."""

    def __init__(self, name: _Name, inner: Any) -> None:
        self.inner = inner
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._locks = locks = _registry.setdefault(self._loop, {})
        self._name = name
        self._key_lock = locks.get(name) or locks.setdefault(name, _KeyLock())
        self._held = False

    def attempt(self) -> bool:
        """The key lock if no other task holds it, never waiting."""
        if self._task is None or not self._key_lock.attempt(self._task):
            return False
        self._held = True
        return True

    def acquire(self, timeout: float | None) -> bool:
        """Wait with ``await`` for the key lock, at most ``timeout`` seconds (None: no limit)."""
        if self.attempt():
            return True
        if self._task is None:
            return False
        self._held = _sa_greenlet.wait(self._key_lock.acquire(self._task, timeout))
        return self._held

    def release_task(self) -> None:
        """Let the next task of this loop in; forget the key lock when nobody wants it."""
        if not self._held:
            return
        self._held = False
        key_lock = self._key_lock
        key_lock.release()
        if key_lock.owner is None and not key_lock.waiters:
            self._locks.pop(self._name, None)

    def release(self) -> None:
        """Release ``inner``, then the key lock (what ``misses`` calls after a held miss)."""
        try:
            self.inner.release()
        finally:
            self.release_task()


def name_for(cache: Any, key: str) -> _Name:
    return (getattr(cache, "region", None), cache.namespace_name, key)
