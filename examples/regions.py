"""The Beaker configuration of the examples' ``default`` region, per backend.

Kept apart from ``environment`` (which opens the examples' database) so
that test workers can configure the same region for a database of their own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CACHE_DIR = Path(os.environ.get("CACHE_DIR", HERE / ".cache"))


def shared_region(backend: str, url: str | None, cache_dir: Path = CACHE_DIR) -> dict[str, Any]:
    """The Beaker configuration of the ``default`` region for ``backend``.

    ``cache_dir`` holds the file backend's data and the lock files.
    """
    if backend == "memory":
        return {"type": "memory", "expire": 3600}
    if backend == "file":
        return {
            "type": "file",
            "data_dir": str(cache_dir / "data"),
            "lock_dir": str(cache_dir / "lock"),
            "expire": 3600,
        }
    if backend == "memcached":
        return {
            "type": "ext:memcached",
            "url": url or "127.0.0.1:11211",
            "memcache_module": "bmemcached",
            "lock_dir": str(cache_dir / "lock"),
            "expire": 3600,
        }
    if backend == "redis":
        return {"type": "ext:redis", "url": url or "redis://127.0.0.1:6379/0", "expire": 3600}
    if backend == "rediscluster":
        # every node (or a few: the client discovers the rest), comma-separated;
        # the creation lock lives in the cluster: no lock_dir
        return {
            "type": "ext:rediscluster",
            "urls": url or "redis://127.0.0.1:7000,redis://127.0.0.1:7001,redis://127.0.0.1:7002",
            "expire": 3600,
        }
    if backend == "memcached-pool":
        # several servers, ";"-separated: keys are spread over them
        return {
            "type": "ext:memcached",
            "url": url or "127.0.0.1:11211;127.0.0.1:11212;127.0.0.1:11213",
            "memcache_module": "bmemcached",
            "expire": 3600,
        }
    raise SystemExit(
        "CACHE_BACKEND must be memory, file, memcached, memcached-pool, redis or "
        f"rediscluster, not {backend!r}"
    )
