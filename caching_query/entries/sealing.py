"""Entries as bytes: signed, so a shared server cannot make us unpickle its data, and measured.

On a backend that serializes (everything but memory regions) an entry's
record is pickled here, into bytes that start with a marker. Knowing the
bytes lets a region refuse an entry over its size limit before the
backend does (memcached refuses one by a false answer that looks like a
dead server), and count what it reads and writes.

With ``signing_keys`` configured, the bytes carry an HMAC-SHA256 of the
pickle, and an entry is unpickled only once its MAC checks out against
one of the keys (the first signs; the others are accepted, for rotation).
Beaker's own layer around it (the file backend's pickled dict, the Redis
and dbm values, ext:database's pickled row, memcached's pickled items) is
then read by an unpickler that refuses every class, so a crafted pickle
there fails without running anything. Unsigned or wrongly signed entries
are misses, logged once per namespace.

Signing stops code execution and forged entries; a party that can write
to the cache server can still turn entries into misses, or put back bytes
it read earlier.
"""

from __future__ import annotations

import hmac
import io
import logging
import pickle
import re
from dataclasses import dataclass, field
from typing import Any

from ..exc import CacheOptionError
from ..internals import _beaker_internals

log = logging.getLogger("caching_query")

SIGNING_KEYS = "signing_keys"
MAX_ENTRY_BYTES = "max_entry_bytes"
OWN_SETTINGS = (SIGNING_KEYS, MAX_ENTRY_BYTES)

# memcached's default item size limit is 1 MiB including the item header
# and the key (at most 250 bytes): an entry of up to this many bytes fits.
MEMCACHED_ITEM_LIMIT = 1024 * 1024 - 1024

_SIGNED = b"cqs1"
_PLAIN = b"cqp1"
_HEAD = len(_SIGNED)
_MAC = 32  # sha256


class Oversized(Exception):
    """An entry larger than its region's ``max_entry_bytes``."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the entry is {size} bytes, over the region's limit of {limit}")
        self.size = size
        self.limit = limit


class Unsigned(Exception):
    """Bytes whose signature is missing or does not match a configured key."""


class NoClassesUnpickler(pickle.Unpickler):
    """An unpickler that builds no object of any class: what a backend's own layer is read with."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: with signing keys configured, "
            "only signed entries are unpickled"
        )


def load_without_classes(data: Any) -> Any:
    """``pickle.loads`` that builds only bytes, str, numbers, tuples, lists, dicts."""
    return NoClassesUnpickler(io.BytesIO(data)).load()


def _keys_from(value: Any) -> tuple[bytes, ...]:
    if value is None or value == "" or value == []:
        return ()
    if isinstance(value, (str, bytes)):
        # a Beaker .ini gives one string: keys separated by commas or lines
        text = value.decode() if isinstance(value, bytes) else value
        items: list[Any] = [part.strip() for part in re.split(r"[,\n]", text) if part.strip()]
    else:
        items = list(value)
    keys = []
    for item in items:
        if isinstance(item, str):
            item = item.encode("utf-8")
        if not isinstance(item, bytes) or len(item) < 16:
            what = f"{len(item)} bytes" if isinstance(item, bytes) else type(item).__name__
            raise CacheOptionError(
                f"{SIGNING_KEYS}: each key must be a str or bytes of at least 16 "
                f"bytes, not {what}"  # never the key itself: it would reach logs
            )
        keys.append(item)
    return tuple(keys)


def _limit_from(value: Any, default: int | None) -> int | None:
    if value is None or value == "":
        return default
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise CacheOptionError(
            f"{MAX_ENTRY_BYTES} must be a whole number of bytes (0: no limit), not {value!r}"
        ) from None
    if limit < 0:
        raise CacheOptionError(f"{MAX_ENTRY_BYTES} must not be negative, not {limit}")
    return limit or None


@dataclass(frozen=True)
class Sealing:
    """How one region's backend stores entries."""

    serializes: bool
    keys: tuple[bytes, ...] = field(default=(), repr=False)
    max_bytes: int | None = None

    @classmethod
    def configure(
        cls, settings: dict[str, Any], serializes: bool, default_limit: int | None
    ) -> Sealing:
        return cls(
            serializes,
            _keys_from(settings.get(SIGNING_KEYS)) if serializes else (),
            _limit_from(settings.get(MAX_ENTRY_BYTES), default_limit) if serializes else None,
        )

    @property
    def signs(self) -> bool:
        return bool(self.keys)

    def seal(self, record: Any, where: bytes) -> bytes:
        """``record`` as the bytes to store under ``where`` (namespace and key);
        ``Oversized`` over the limit."""
        payload = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
        if self.keys:
            data = _SIGNED + _mac(self.keys[0], where, payload) + payload
        else:
            data = _PLAIN + payload
        if self.max_bytes is not None and len(data) > self.max_bytes:
            raise Oversized(len(data), self.max_bytes)
        return data

    def open(self, data: bytes, where: bytes) -> Any:
        """The record ``seal()`` made into ``data`` for ``where``.

        ``Unsigned`` when keys are configured and ``data`` is not signed by
        one of them for this very namespace and key (a signed entry copied
        under another key is refused too): then nothing of it is unpickled.
        ``ValueError`` for bytes that are not a sealed record at all.
        """
        head = data[:_HEAD]
        view = memoryview(data)
        if head == _SIGNED:
            payload = view[_HEAD + _MAC :]
            if self.keys:
                mac = data[_HEAD : _HEAD + _MAC]
                if not any(
                    hmac.compare_digest(mac, _mac(key, where, payload)) for key in self.keys
                ):
                    raise Unsigned(
                        "its signature matches none of the configured signing keys "
                        "for this namespace and key"
                    )
            return pickle.loads(payload)
        if head == _PLAIN:
            if self.keys:
                raise Unsigned("it is not signed")
            return pickle.loads(view[_HEAD:])
        raise ValueError("not a record this library sealed")


def _mac(key: bytes, where: bytes, payload: Any) -> bytes:
    signer = hmac.new(key, where, "sha256")
    signer.update(b"\0")
    signer.update(payload)
    return signer.digest()


_warned_unsigned: set[tuple[str, str]] = set()


def warn_unsigned(region: str, namespace: str, key: str, why: str) -> None:
    """Log, once per namespace, that an entry was refused unread."""
    if (region, namespace) in _warned_unsigned:
        return
    _warned_unsigned.add((region, namespace))
    log.warning(
        "caching_query: refusing the entry under key %r in region %r namespace %r: %s; "
        "it is treated as a miss and never unpickled (logged once per namespace)",
        key,
        region,
        namespace,
        why,
    )


def serializes(namespace: Any) -> bool:
    """True for a namespace whose backend pickles what it stores."""
    return _beaker_internals.memory_records(namespace) is None and not getattr(
        namespace, "session_local", False
    )
