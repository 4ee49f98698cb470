"""Process-local creation locks by name, for regions whose misses only this process can see.

A memory region's creation lock is Beaker's ``NameLock``: a lock found
in a weak-valued registry, built anew (with its mutex, weak reference and
container) by every miss and freed when the miss lets go of it. That was
about a tenth of a one-row miss. The locks here live in a plain dict
only while some thread holds or waits for them, and cost two short
critical sections and one ``RLock``. The same kind of lock serves the
``ext:database`` / ``ext:sqla`` namespaces and regions without a
``lock_dir``, for which Beaker has no lock between threads at all.
"""

from __future__ import annotations

import threading


class _Slot:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.users = 0  # threads holding or waiting for it


_mutex = threading.Lock()
_in_use: dict[str, _Slot] = {}


class NameLock:
    """One creation lock per name in this process, reentrant like Beaker's.

    ``acquire(wait=True)`` and ``release()`` as Beaker's ``NameLock``; a
    lock nobody holds or waits for is forgotten, so the dict does not grow
    with the keys ever missed.
    """

    __slots__ = ("name", "_held")

    def __init__(self, name: str) -> None:
        self.name = name
        self._held: _Slot | None = None

    def acquire(self, wait: bool = True) -> bool:
        with _mutex:
            slot = _in_use.get(self.name)
            if slot is None:
                slot = _in_use[self.name] = _Slot()
            slot.users += 1
        if slot.lock.acquire(wait):
            self._held = slot
            return True
        self._let_go(slot)
        return False

    def release(self) -> None:
        slot = self._held
        if slot is None:
            raise RuntimeError(f"creation lock {self.name!r} released without being held")
        slot.lock.release()  # RuntimeError, before anything changes, if not held here
        self._let_go(slot)

    def _let_go(self, slot: _Slot) -> None:
        with _mutex:
            slot.users -= 1
            if slot.users == 0 and _in_use.get(self.name) is slot:
                del _in_use[self.name]


def names_in_use() -> int:
    """How many names have a holder or a waiter now (0 when no miss is running)."""
    return len(_in_use)
