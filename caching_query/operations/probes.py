"""What the command line asks of a region's backend: a probe, and the server's own statistics."""

from __future__ import annotations

import os
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from beaker.cache import CacheManager

from .. import regions, store
from ..entries.entry import CacheEntry, StoredRows
from ..internals import _beaker_clients

__all__ = [
    "CHECK_NAMESPACE",
    "location",
    "PER_PROCESS",
    "BackendStats",
    "Probe",
    "probe",
    "region_type",
    "server_stats",
    "set_timeouts",
    "where",
]

CHECK_NAMESPACE = "caching_query~check"
# Types whose entries live inside each process: the command line reaches only its own.
PER_PROCESS = {
    "memory": "each application process has its own memory cache",
    "ext:local_session": "each Session has its own cache",
}
MEMCACHED_FIGURES = (
    "version",
    "uptime",
    "curr_connections",
    "curr_items",
    "total_items",
    "bytes",
    "limit_maxbytes",
    "cmd_get",
    "cmd_set",
    "get_hits",
    "get_misses",
    "evictions",
)
REDIS_FIGURES = (
    "redis_version",
    "uptime_in_seconds",
    "connected_clients",
    "used_memory",
    "used_memory_human",
    "maxmemory",
    "maxmemory_policy",
    "keyspace_hits",
    "keyspace_misses",
    "expired_keys",
    "evicted_keys",
)
_REDIS_SCHEMES = ("redis", "rediss", "unix")
_DB = re.compile(r"db[0-9]+")  # INFO's keyspace lines: db0 -> {"keys": ..., "expires": ...}


def region_type(manager: CacheManager, region: str) -> str:
    return str(manager.regions[region].get("type") or "memory")


def location(config: dict[str, Any]) -> str:
    """The server or directory a region's configuration points at, as configured."""
    return str(config.get("url") or config.get("data_dir") or config.get("dbm_dir") or "")


def where(config: dict[str, Any]) -> str:
    """The server or directory a region's configuration points at ("" for none), for display.

    A URL is shown without its password and query string.
    """
    found = location(config)
    parts = urlsplit(found)
    if not parts.scheme or "://" not in found:
        return found
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    if parts.password is not None:
        user += ":***"
    return urlunsplit(parts._replace(netloc=f"{user}@{host}" if user else host, query=""))


def _reason(error: BaseException) -> str:
    if isinstance(error, store.BackendFailure) and error.__cause__ is not None:
        error = error.__cause__  # what the client said, not the library's wrapper
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def _with_timeouts(url: str, seconds: float) -> str:
    parts = urlsplit(url)
    if parts.scheme not in _REDIS_SCHEMES:
        return url
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {name for name, _ in query}
    for name in ("socket_timeout", "socket_connect_timeout"):
        if name not in present:
            query.append((name, f"{seconds:g}"))
    return urlunsplit(parts._replace(query=urlencode(query)))


def set_timeouts(manager: CacheManager, seconds: float) -> None:
    """Give Redis and memcached connections a socket timeout, where their configuration has none.

    A Redis URL gets ``socket_timeout``/``socket_connect_timeout`` unless it
    sets them; memcached clients, which Beaker builds from the server list
    alone, get it on their connections. Call before anything is cached.
    """
    for name, config in manager.regions.items():
        kind = config.get("type")
        if kind == "ext:redis" and isinstance(config.get("url"), str):
            config["url"] = _with_timeouts(config["url"], seconds)
        elif kind == "ext:memcached":
            try:
                cache = region_cache(manager, name)
            except Exception:
                continue  # reported by the command that uses the region
            client = _beaker_clients.memcached_client(cache.namespace)
            if client is not None:
                _beaker_clients.set_memcached_timeout(client, seconds)


@dataclass
class Probe:
    """The answer of one region to a write, a read and a removal."""

    region: str
    type: str
    ok: bool
    ms: float | None = None
    error: str | None = None
    note: str | None = None


def region_cache(manager: CacheManager, region: str) -> Any:
    """The region's ``Cache`` as the application opens it: sealed, signed where
    configured (so that nothing read from the server is unpickled unchecked),
    and failing on settings the application would fail on."""
    return regions.get_cache(region, CHECK_NAMESPACE, manager)


def probe(manager: CacheManager, region: str) -> Probe:
    """Store an entry under a fresh key of ``CHECK_NAMESPACE``, read it back, remove it.

    It goes the way a cached query's entry goes (``store``), so signing and
    size settings take part. A memcached client answers a dead server with a
    miss rather than an error, so a read that does not return the entry
    written is a failure.
    """
    kind = region_type(manager, region)
    if kind == "ext:local_session":
        return Probe(region, kind, True, note=f"not probed: {PER_PROCESS[kind]}")
    key, value = f"probe-{uuid.uuid4().hex}", f"caching_query check {uuid.uuid4().hex}"
    started = time.perf_counter()
    try:
        cache = region_cache(manager, region)
        store.write(cache, key, CacheEntry.of_rows(StoredRows(("probe",), [(value,)]), {}))
        entry = store.read(cache, key)
        read = entry.data.rows[0][0] if entry is not None else None
        store.remove(cache, key)
        store.remove(cache, store.GENERATION_KEY)  # leave the server as it was
        if kind in ("file", "dbm"):
            cache.namespace.remove()  # the probe's namespace file
    except Exception as error:
        return Probe(region, kind, False, error=_reason(error))
    ms = round((time.perf_counter() - started) * 1000, 3)
    if read != value:
        return Probe(
            region,
            kind,
            False,
            ms,
            error="the value written was not read back (server down, or not storing)",
        )
    note = f"this process only: {PER_PROCESS[kind]}" if kind in PER_PROCESS else None
    return Probe(region, kind, True, ms, note=note)


@dataclass
class BackendStats:
    """What one backend (one server, directory, ...) says about itself."""

    regions: list[str]
    type: str
    where: str
    ok: bool = True
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, int] | None = None
    note: str | None = None
    error: str | None = None


def server_stats(
    manager: CacheManager, regions: list[str], everything: bool = False
) -> list[BackendStats]:
    """The statistics of each backend ``regions`` use, one entry per backend.

    ``everything`` keeps every figure a server reports, not only the ones
    that tell how the cache is doing.
    """
    found: dict[tuple[str, str], BackendStats] = {}
    for region in regions:
        config = manager.regions[region]
        kind = region_type(manager, region)
        slot = (kind, location(config))
        if slot in found:
            found[slot].regions.append(region)
            continue
        stats = found[slot] = BackendStats([region], kind, where(config))
        try:
            _fill(stats, manager, region, config, everything)
        except Exception as error:
            stats.ok, stats.error = False, _reason(error)
    return list(found.values())


def _fill(
    stats: BackendStats,
    manager: CacheManager,
    region: str,
    config: dict[str, Any],
    everything: bool,
) -> None:
    if stats.type == "ext:memcached":
        client = _beaker_clients.memcached_client(region_cache(manager, region).namespace)
        _memcached(stats, client, everything)
    elif stats.type == "ext:redis":
        client = _beaker_clients.redis_client(region_cache(manager, region).namespace)
        _redis(stats, client, everything)
    elif stats.type in PER_PROCESS:
        stats.note = f"no server statistics: {PER_PROCESS[stats.type]}"
    elif stats.type in ("file", "dbm"):
        stats.note = "no server statistics: entries are files in data_dir"
        stats.files = _files(stats.where)
    elif stats.type in ("ext:database", "ext:sqla"):
        stats.note = f"no server statistics for {stats.type}: entries are rows of a SQL table"
    else:
        stats.note = f"no server statistics for {stats.type}"


def _number(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        for convert in (int, float):
            try:
                return convert(value)
            except ValueError:
                pass
    return value


def _ratio(hits: Any, misses: Any) -> float | None:
    if isinstance(hits, int) and isinstance(misses, int) and hits + misses:
        return round(hits / (hits + misses), 4)
    return None


def _memcached(stats: BackendStats, client: Any, everything: bool) -> None:
    if hasattr(client, "stats"):  # bmemcached: {server: {name: bytes}}
        answers = dict(client.stats())
    else:  # python-memcached, pylibmc: [(server, {name: str})]
        answers = {str(server).split(" ", 1)[0]: figures for server, figures in client.get_stats()}
    if not answers:
        stats.ok, stats.error = False, "no memcached server answered"
    for server, raw in answers.items():
        figures = {str(name): _number(value) for name, value in raw.items()}
        if not figures:
            stats.ok = False
            stats.error = f"memcached server {server} did not answer"
        if not everything:
            figures = {name: figures[name] for name in MEMCACHED_FIGURES if name in figures}
        if figures:
            figures["hit_ratio"] = _ratio(figures.get("get_hits"), figures.get("get_misses"))
        stats.servers[str(server)] = figures


def _redis(stats: BackendStats, client: Any, everything: bool) -> None:
    info: dict[str, Any] = dict(client.info())
    keyspace = {name: info.pop(name) for name in list(info) if _DB.fullmatch(name)}
    figures = info if everything else {name: info[name] for name in REDIS_FIGURES if name in info}
    figures["hit_ratio"] = _ratio(info.get("keyspace_hits"), info.get("keyspace_misses"))
    for db, counts in sorted(keyspace.items()):
        for name, value in counts.items() if isinstance(counts, dict) else [("keys", counts)]:
            figures[f"{db}.{name}"] = value
    stats.servers[stats.where] = figures


def _files(data_dir: str) -> dict[str, int]:
    count = size = 0
    for folder, _, names in os.walk(data_dir) if data_dir else ():
        for name in names:
            try:
                size += os.stat(os.path.join(folder, name)).st_size
            except OSError:
                continue  # removed meanwhile
            count += 1
    return {"count": count, "bytes": size}
