"""The stored form of a cached result.

Everything this library writes under a key is a ``CacheEntry``. The
``format`` field lets a later version change the payload while old
readers treat an entry they do not understand as a miss instead of
misreading it. ``meta`` is open for what later versions add (tables read,
version stamps).

Two kinds of payload:

* ``rows`` (shared regions): the statement's raw rows and the names of
  their columns, plus the rows of loads the loader triggered, keyed by
  their own keys. Plain tuples of column values: compact, fast to pickle,
  and readable by any process running the same models.
* ``objects`` (session-local regions, ``set_value()``, and statements
  whose rows cannot be matched to columns): a ``FrozenResult`` of ORM
  objects.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy.engine import FrozenResult

from ..internals import _sa_internals

ENTRY_FORMAT = 2
ROWS = "rows"
OBJECTS = "objects"


class StoredRows(NamedTuple):
    """Rows as a cursor returned them, and the names of their columns.

    ``mutable`` says that some value is of a type that can change in
    place (a JSON dict, a pickled object): such rows are copied before
    objects are built from them, so that changing an attribute of a
    loaded object never changes what a memory region holds.
    """

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    mutable: bool = False


class CacheEntry:
    """A cached result plus what is needed to replay it faithfully."""

    __slots__ = ("format", "kind", "data", "nested", "unique_required", "meta")

    def __init__(
        self,
        kind: str,
        data: Any,
        nested: dict[str, StoredRows] | None = None,
        unique_required: bool = False,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.format = ENTRY_FORMAT
        self.kind = kind
        self.data = data
        self.nested = nested or {}
        # The source result refused to be fetched without .unique(); a hit
        # must refuse the same way (rows entries get this from the loader).
        self.unique_required = unique_required
        self.meta = meta or {}

    @classmethod
    def of_rows(cls, stored: StoredRows, nested: dict[str, StoredRows]) -> CacheEntry:
        return cls(ROWS, stored, nested)

    @classmethod
    def of_objects(cls, result: FrozenResult[Any], unique_required: bool = False) -> CacheEntry:
        return cls(OBJECTS, result, unique_required=unique_required)

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name in self.__slots__:
            setattr(self, name, state.get(name))

    # Read-only sequence of what is stored: the cached objects shaped like
    # Query.all() for an objects entry, named rows of column values for a
    # rows entry (``Query.get_value()`` turns those into objects).
    def rows(self) -> list[Any]:
        if self.kind == ROWS:
            return _sa_internals.named_rows(self.data.columns, self.data.rows)
        return _sa_internals.query_rows(self.data())

    def __getitem__(self, index: Any) -> Any:
        return self.rows()[index]

    def __len__(self) -> int:
        if self.kind == ROWS:
            return len(self.data.rows)
        return len(self.rows())

    def __iter__(self) -> Any:
        return iter(self.rows())

    def __repr__(self) -> str:
        return f"<CacheEntry format={self.format} kind={self.kind} rows={len(self)}>"


def is_valid(value: object) -> bool:
    """True for an entry this version of the library can read."""
    if type(value) is not CacheEntry or value.format != ENTRY_FORMAT:
        return False
    if value.kind == ROWS:
        return isinstance(value.data, StoredRows) and isinstance(value.nested, dict)
    return value.kind == OBJECTS and isinstance(value.data, FrozenResult)
