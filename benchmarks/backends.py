"""Beaker region configurations, one region per backend, named after it.

File-based backends get their own directory under the run's temporary
directory, server backends a server started for the run, so every run
starts from an empty cache and leaves nothing behind.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from . import servers

ALL = ("memory", "file", "dbm", "redis", "memcached", "postgres", "rediscluster", "memcached-pool")
SERVER_BACKED = ("redis", "memcached", "postgres", "rediscluster", "memcached-pool")


def default_names() -> list[str]:
    """memory and file, plus redis and memcached when their binaries exist."""
    names = ["memory", "file"]
    names += [name for name in ("redis", "memcached") if servers.binary(name)]
    return names


def parse(text: str) -> list[str]:
    """``"memory,file"`` -> ``["memory", "file"]``; unknown names are an error."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in ALL]
    if unknown or not names:
        raise ValueError(
            f"unknown backend(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(ALL)}"
        )
    return list(dict.fromkeys(names))


def region(name: str, tmp: Path, running: servers.Servers) -> dict[str, Any]:
    """The Beaker region configuration for backend ``name``.

    Starts the backend's server if it has one; RuntimeError when it cannot.
    """
    expire = {"expire": 3600}
    if name == "memory":
        return {"type": "memory", **expire}
    directory = tmp / f"cache-{name}"
    shutil.rmtree(directory, ignore_errors=True)
    if name == "file":
        return {
            "type": "file",
            "data_dir": str(directory / "data"),
            "lock_dir": str(directory / "lock"),
            **expire,
        }
    if name == "dbm":
        return {
            "type": "dbm",
            "data_dir": str(directory / "data"),
            "lock_dir": str(directory / "lock"),
            **expire,
        }
    if name == "redis":
        return {"type": "ext:redis", "url": running.url("redis"), **expire}
    if name == "memcached":
        return {
            "type": "ext:memcached",
            "url": running.url("memcached"),
            "memcache_module": "bmemcached",
            "lock_dir": str(directory / "lock"),
            **expire,
        }
    if name == "rediscluster":  # three masters with a replica each
        return {"type": "ext:rediscluster", "urls": running.url("rediscluster"), **expire}
    if name == "memcached-pool":  # three servers, keys spread over them
        return {"type": "ext:memcached", "url": running.url("memcached-pool"), **expire}
    if name == "postgres":
        return {
            "type": "ext:database",
            "url": running.url("postgres"),
            "table_name": "cq_bench_cache",
            **expire,
        }
    raise ValueError(f"unknown backend {name!r}")
