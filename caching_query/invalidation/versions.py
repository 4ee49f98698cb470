"""Where table versions live, and how an entry is checked against them.

Every table has a version: a random token (never a clock) kept in the same
backend as the entries, under ``~t:<table>`` in the namespace
``VERSIONS_NAMESPACE``, so every process sharing memcached, Redis, a file
directory or a SQL table sees the same ones (a memory region's versions are
its process's own). A committed write replaces the tokens of the tables it
wrote (``publish``). An entry records the tokens of its tables as they were
*before* its query ran, and is served only while every one is unchanged: a
reader that raced a writer stores rows that are already invalid.

A version that is missing (evicted, expired, flushed, a restarted server)
never matches, so losing versions only causes misses. The number of
version keys is the number of tables, plus two: ``EVERYTHING``, changed by
writes whose tables are unknown and checked by every entry, and
``ANY_TABLE``, changed by every write and checked by entries whose tables
are unknown.

Session-local regions keep their entries in one session, whose own writes
are the ones that matter: they check process-local write counters instead.
"""

from __future__ import annotations

import contextlib
import itertools
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from beaker.cache import Cache

from ..internals import _beaker_internals
from . import dependencies, tracking
from .dependencies import ANY_TABLE
from .statements import EVERYTHING

VERSIONS_NAMESPACE = "caching_query~tables"
TABLES = "tables"  # the entry's meta field holding {table: token}

Tokens = dict[str, Any]


def version_key(table: str) -> bytes:
    return ("~t:" + table).encode("ascii", "backslashreplace")


def read(versions: Cache, tables: Iterable[str]) -> Tokens:
    """The current tokens of ``tables`` (None where missing), in one round trip."""
    names = list(tables)
    values = _beaker_internals.read_records(versions.namespace, [version_key(t) for t in names])
    return dict(zip(names, values, strict=True))


def write(versions: Cache, tokens: Mapping[str, str]) -> None:
    """Store ``tokens``, in one round trip where the backend can."""
    _beaker_internals.set_records(
        versions.namespace, {version_key(table): token for table, token in tokens.items()}
    )


def new_tokens(tables: Iterable[str]) -> dict[str, str]:
    token = uuid.uuid4().hex
    # One random token per commit is enough: no two commits share one.
    # The witness goes first: see Recording.
    names = sorted(tables, key=lambda table: table != ANY_TABLE)
    return dict.fromkeys(names, token)


# -- process-local write counters, for session-local regions -----------------

_counter = itertools.count(1)
_local_serials: dict[str, int] = {}


def note_local_write(tables: Iterable[str]) -> None:
    """Any write in this process, committed or not: session-local entries of its tables go."""
    serial = next(_counter)
    for table in (*tables, ANY_TABLE):
        _local_serials[table] = serial


# -- the check a cached execution makes ---------------------------------------


class Watch:
    """The tables one cached execution depends on, and where their versions are.

    ``store`` reads ``tables``' versions in the same round trip as the
    entry (``read_with``), asks ``is_current`` whether the entry may be
    served, and on a miss takes ``before_query`` tokens to record in the
    entry it stores.
    """

    __slots__ = ("versions", "structure", "tables", "strict", "usable")

    def __init__(
        self,
        versions: Cache | None,
        structure: Any,
        tables: frozenset[str],
        strict: bool = False,
        usable: bool = True,
    ) -> None:
        self.versions = versions  # None: session-local counters
        self.structure = structure
        self.tables = tables
        self.strict = strict  # "cache every query": never store what reads the clock
        self.usable = usable  # False: the versions are known to be stale

    @property
    def namespace(self) -> Any:
        return self.versions.namespace if self.versions is not None else None

    def keys(self) -> list[bytes]:
        return [version_key(t) for t in self.tables]

    def current(self, values: Iterable[Any] | None = None) -> Tokens:
        """The tokens of ``tables``, from ``values`` read alongside the entry."""
        if self.versions is None:
            return {t: _local_serials.get(t, 0) for t in self.tables}
        if values is None:
            return read(self.versions, self.tables)
        return dict(zip(self.tables, values, strict=True))

    def _read_more(self, tables: Iterable[str]) -> Tokens:
        if self.versions is None:
            return {t: _local_serials.get(t, 0) for t in tables}
        return read(self.versions, tables)

    def is_current(self, entry: Any, current: Tokens) -> bool:
        """True when every table ``entry`` was read from still has the version it recorded."""
        recorded = entry.meta.get(TABLES)
        if not isinstance(recorded, dict) or EVERYTHING not in recorded:
            return False  # stored without versions: it may be stale
        unread = [t for t in recorded if t not in current]
        if unread:
            # loads stored with the entry named more tables than this
            # process knew of: read them now, and with the entry next time
            current.update(self._read_more(unread))
            dependencies.remember(self.structure, frozenset(recorded))
            self.tables = self.tables | frozenset(recorded)
        return all(current.get(t) == token for t, token in recorded.items())

    def before_query(self, current: Tokens) -> Tokens:
        """The tokens a result about to be read records; missing ones are made first."""
        missing = [t for t, token in current.items() if token is None]
        if missing and self.versions is not None:
            made = new_tokens(missing)
            write(self.versions, made)
            current = {**current, **made}
        return dict(current)


# -- what a miss reads, as it runs -------------------------------------------


class Recording:
    """What a miss read, to be recorded in the entry it stores.

    Before the miss ran, the versions of the tables its statement was
    expected to read were taken, with ``ANY_TABLE`` among them as a witness:
    every publication changes it. The statements the miss actually ran
    (``note_ran``) may have read more tables -- what the ORM added when
    compiling, loads the loader triggered. Their versions, read afterwards
    together with the witness (witness last, and publications write it
    first), are as good as read before only if the witness is unchanged:
    then nothing was published in between. Otherwise the result is not
    stored, and the next miss reads them all first.
    """

    __slots__ = ("watch", "tokens", "read_tables", "volatile", "started", "old_snapshot")

    def __init__(self, watch: Watch, tokens: Tokens) -> None:
        self.watch = watch
        self.tokens = tokens
        self.read_tables: set[str] = set()
        self.volatile = False
        self.started = False
        self.old_snapshot = False

    def recorded(self) -> Tokens | None:
        """The tokens the entry records, or None: do not store it."""
        if self.old_snapshot or (self.volatile and self.watch.strict):
            return None
        if not self.read_tables:  # nothing reported (session-local loads)
            return dict(self.tokens)
        wanted = self.read_tables | {EVERYTHING}
        tokens = self.tokens
        unread = [t for t in wanted if t not in tokens]
        if unread:
            witness = tokens.get(ANY_TABLE)
            found = self.watch._read_more([*unread, ANY_TABLE])
            if witness is None or found[ANY_TABLE] != witness:
                return None  # something was published meanwhile
            if any(found[t] is None for t in unread):
                return None  # a missing version is a change
            tokens = {**tokens, **found}
            dependencies.remember(self.watch.structure, frozenset(unread))
        return {t: tokens[t] for t in wanted}


_recording: ContextVar[Recording | None] = ContextVar("caching_query_recording", default=None)


@contextlib.contextmanager
def recording(watch: Watch, tokens: Tokens) -> Iterator[Recording]:
    """While a miss builds its result, the statements it runs report here."""
    current = Recording(watch, tokens)
    reset = _recording.set(current)
    try:
        yield current
    finally:
        _recording.reset(reset)


def note_running(connection: Any) -> None:
    """The miss being recorded is about to send its first statement on ``connection``."""
    current = _recording.get()
    if current is None or current.started:
        return
    current.started = True
    if tracking.reads_an_older_snapshot(connection):
        current.old_snapshot = True


def note_ran(structure: Any, compiled: Any) -> None:
    """A statement of the miss being recorded ran; ``compiled`` is what it sent."""
    current = _recording.get()
    if current is None:
        return
    reads = dependencies.learn(structure, compiled)
    current.read_tables.update(reads.tables)
    current.volatile = current.volatile or reads.volatile
