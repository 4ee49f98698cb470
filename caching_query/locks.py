"""Which lock guards a namespace, where Beaker leaves one unguarded.

Beaker gives ``ext:database`` and ``ext:sqla`` namespaces a null access
lock although one object holds the whole namespace for every thread, and
hands out a null creation lock when no ``lock_dir`` is configured.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from typing import Any

from beaker.cache import Cache
from beaker.synchronization import NameLock, null_synchronizer

from .keys import backend_key

_guards: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()


def thread_guard(namespace: Any) -> Any:
    """A context manager serializing threads on ``namespace`` where Beaker does not."""
    if not isinstance(getattr(namespace, "access_lock", None), null_synchronizer):
        return contextlib.nullcontext()
    guard = _guards.get(namespace)
    if guard is None:
        guard = _guards.setdefault(namespace, threading.RLock())
    return guard


def creation_lock(cache: Cache, key: str) -> Any:
    """The lock a miss on ``key`` holds while it runs the query."""
    lock = cache.namespace.get_creation_lock(backend_key(key))
    if isinstance(lock, null_synchronizer):
        # No lock_dir configured: still one creator per key in this process.
        return NameLock(identifier=f"caching_query/{cache.namespace_name}/{key}")
    return lock
