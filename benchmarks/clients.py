"""Measurement 10: the clients Beaker can talk to memcached and Redis with.

Beaker's memcached backend takes ``memcache_module``: ``bmemcached``
(python-binary-memcached, the binary protocol) or ``memcache``
(python-memcached, the text protocol); ``cmemcache`` is long dead. Its Redis
backend uses redis-py, which parses replies in C when ``hiredis`` is
installed. Each client gets a region of its own on the run's server; the
one-row and 100-row legacy hits and one raw GET of the entry are measured
for each, in this run.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import redis
from sqlalchemy.orm import Session

from caching_query import FromCache
from examples.model import Person

from .entrances import _raw_get_stats
from .environment import Bench, legacy_all
from .timing import measure

SIZES = (1, 100)
MEMCACHED_MODULES = {"bmemcached": "python-binary-memcached", "memcache": "python-memcached"}


def extra_regions(regions: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One more region per installed client, beside the run's memcached and Redis regions."""
    extra: dict[str, dict[str, Any]] = {}
    memcached = regions.get("memcached")
    if memcached is not None:
        for module, package in MEMCACHED_MODULES.items():
            if module != "bmemcached" and importlib.util.find_spec(module) is not None:
                extra[f"memcached/{package}"] = {**memcached, "memcache_module": module}
    plain = regions.get("redis")
    if plain is not None and _hiredis_available():
        # another database number: Beaker keeps one client per URL
        url = plain["url"].rsplit("/", 1)[0] + "/1"
        extra["redis/no-hiredis"] = {**plain, "url": url}
    return extra


def _hiredis_available() -> bool:
    return importlib.util.find_spec("hiredis") is not None


def _without_hiredis(bench: Bench, region: str) -> None:
    """Give the region's redis-py client the pure-Python reply parser."""
    with bench.cached() as session:
        query = session.query(Person).options(FromCache(region, "clients.probe"))
        cache, _ = query.cache_and_key()  # type: ignore[attr-defined]
    client = cache.namespace.client
    # redis-py's parser classes are not public API; the benchmark alone uses them
    from redis._parsers import _RESP2Parser

    client.connection_pool.connection_kwargs["parser_class"] = _RESP2Parser
    client.connection_pool.disconnect()


def _client_name(bench: Bench, region: str) -> str:
    if region.startswith("memcached/"):
        return region.split("/", 1)[1]
    if region == "memcached":
        return MEMCACHED_MODULES[bench.manager.regions[region].get("memcache_module", "bmemcached")]
    if region == "redis/no-hiredis":
        return "redis-py, Python parser"
    return f"redis-py {redis.__version__}{', hiredis' if _hiredis_available() else ''}"


def run(bench: Bench) -> list[dict[str, Any]]:
    """Per client: the hits and one raw GET."""
    names = [
        name
        for name in bench.manager.regions
        if name in ("memcached", "redis") or name.startswith(("memcached/", "redis/"))
    ]
    if "redis/no-hiredis" in names:
        _without_hiredis(bench, "redis/no-hiredis")
    records = []
    for region in names:
        for rows in SIZES:
            # a namespace per client: two clients flag the same bytes differently
            option = FromCache(region, f"clients.{region}.{rows}")
            with bench.cached() as session:
                legacy_all(session, rows, option)
            hit = measure(
                lambda s, n=rows, o=option: legacy_all(s, n, o),
                bench.plan,
                bench.cached,
                Session.close,
            )
            raw, size = _raw_get_stats(bench, region, rows, option)
            records.append(
                {
                    "region": region,
                    "client": _client_name(bench, region),
                    "rows": rows,
                    "entry_bytes": size,
                    "hit": hit.as_dict(),
                    "raw_get": raw.as_dict(),
                }
            )
    return records
