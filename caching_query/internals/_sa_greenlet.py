"""SQLAlchemy's greenlet bridge (AsyncSession): whether code runs inside it, and how to await there.

``AsyncSession`` runs the synchronous ``Session`` in a greenlet and turns
each database call into an ``await`` on the event loop. Code of this
library running in that greenlet (a miss waiting for another task's
result) must wait the same way instead of blocking the loop. The two
helpers live in ``sqlalchemy.util.concurrency``, which is not public API;
``tests/test_sa_internals.py`` checks them.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable
from typing import Any, TypeVar

_T = TypeVar("_T")

__all__ = ["in_bridge", "wait"]


def in_bridge() -> bool:
    """True in a greenlet that ``AsyncSession`` (``greenlet_spawn``) runs sync code in."""
    if "greenlet" not in sys.modules:  # never imported: no bridge can be running
        return False
    from sqlalchemy.util import concurrency

    return bool(concurrency.in_greenlet())


def wait(awaitable: Awaitable[_T]) -> _T:
    """Await ``awaitable`` on the event loop from inside the bridge (``in_bridge()``)."""
    from sqlalchemy.util import concurrency

    await_: Any = getattr(concurrency, "await_", None) or concurrency.await_only
    return await_(awaitable)  # type: ignore[no-any-return]
