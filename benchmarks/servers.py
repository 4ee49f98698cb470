"""Real memcached, Redis and PostgreSQL servers, started for one run.

The process classes of ``tests/servers.py`` are reused (loopback, free
port, fresh temporary directory, the whole process group killed on stop,
PostgreSQL run as ``postgres`` through runuser when we are root), but not
its pytest fixtures: ``find_binary`` there skips a test, so binaries are
looked up here. That module imports pytest, so it is imported only when
a server is actually wanted: a memory-only run needs neither.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

_BINARIES = {
    "redis": "redis-server",
    "memcached": "memcached",
    "rediscluster": "redis-server",
    "memcached-pool": "memcached",
}
POOL_SIZE = 3


class _Pool:
    """Several servers that one region uses as one: its ``url`` joins theirs with ``;``."""

    def __init__(self, servers: list[Any], workdir: Path) -> None:
        self.servers, self.workdir = servers, workdir
        self.url = ";".join(server.url for server in servers)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
            shutil.rmtree(server.workdir, ignore_errors=True)


def _pg_ctl() -> str | None:
    # Debian keeps the server tools off PATH, one directory per major version.
    debian = sorted(
        glob.glob("/usr/lib/postgresql/[0-9]*/bin/pg_ctl"),
        key=lambda path: int(Path(path).parts[-3]),
    )
    return debian[-1] if debian else shutil.which("pg_ctl")


def binary(name: str) -> str | None:
    """The server binary for ``name`` (redis, memcached, postgres), if installed."""
    if name == "postgres":
        return _pg_ctl()
    return shutil.which(_BINARIES[name])


def _server_module() -> ModuleType:
    from tests import servers  # noqa: PLC0415 - pulls in pytest; only when needed

    return servers


class Servers:
    """Starts each server at most once, on first use; ``stop()`` ends them all."""

    def __init__(self) -> None:
        self._running: dict[str, Any] = {}

    def url(self, name: str) -> str:
        """The URL of the running ``name`` server, started now if need be."""
        if name not in self._running:
            self._running[name] = self._start(name)
        return str(self._running[name].url)

    def server(self, name: str) -> Any:
        """The running ``name`` server object (started on first use)."""
        self.url(name)
        return self._running[name]

    def _start(self, name: str) -> Any:
        path = binary(name)
        if path is None:
            raise RuntimeError(f"{name} is not installed")
        mod = _server_module()
        if name == "rediscluster":
            from tests.server_groups import start_cluster  # noqa: PLC0415

            return start_cluster()
        if name == "memcached-pool":
            pool = [self._start("memcached") for _ in range(POOL_SIZE)]
            return _Pool(pool, Path(tempfile.mkdtemp(prefix="cq-bench-pool-")))
        if name == "postgres":
            workdir = Path(tempfile.mkdtemp(prefix=f"cq-bench-{name}-"))
            if os.geteuid() == 0:  # initdb runs as postgres: hand it the directory
                user = pwd.getpwnam("postgres")
                os.chown(workdir, user.pw_uid, user.pw_gid)
            server = mod.PostgresServer(os.path.dirname(path), mod.free_port(), workdir)
            start = server.initdb
        elif name == "redis":
            server = mod.redis_process(path, "bench-redis")
            start = server.start
        else:
            server = mod.memcached_process(path, "bench-memcached")
            start = server.start
        try:
            start()
        except BaseException:
            server.stop()
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        return server

    def stop(self) -> None:
        """Stop every server started and remove its directory."""
        while self._running:
            _, server = self._running.popitem()
            try:
                server.stop()
            finally:
                shutil.rmtree(server.workdir, ignore_errors=True)
