"""The stored form of a cached result.

Everything this library writes under a key is a ``CacheEntry``. The
``format`` field lets a later version change the payload (raw rows,
table names for invalidation, version stamps) while old readers treat an
entry they do not understand as a miss instead of misreading it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import FrozenResult

from . import _sa_internals

ENTRY_FORMAT = 1


class CacheEntry:
    """A frozen ORM result plus what is needed to replay it faithfully."""

    __slots__ = ("format", "result", "unique_required", "meta")

    def __init__(
        self,
        result: FrozenResult[Any],
        unique_required: bool = False,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.format = ENTRY_FORMAT
        self.result = result
        # The source result refused to be fetched without .unique();
        # a hit must refuse the same way.
        self.unique_required = unique_required
        # Open-ended metadata for future readers (tables read, stamps).
        self.meta = meta or {}

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name in self.__slots__:
            setattr(self, name, state.get(name))

    # Read-only sequence of the stored rows, shaped like Query.all(), so
    # that ``cache.get(key)[0]`` is the first cached object.
    def rows(self) -> list[Any]:
        return _sa_internals.query_rows(self.result())

    def __getitem__(self, index: Any) -> Any:
        return self.rows()[index]

    def __len__(self) -> int:
        return len(self.rows())

    def __iter__(self) -> Any:
        return iter(self.rows())

    def __repr__(self) -> str:
        return f"<CacheEntry format={self.format} rows={len(self.result.data)}>"


def is_valid(value: object) -> bool:
    """True for an entry this version of the library can read."""
    return (
        type(value) is CacheEntry
        and value.format == ENTRY_FORMAT
        and isinstance(value.result, FrozenResult)
    )
