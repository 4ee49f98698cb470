"""Servers that work as one, for the tests: a Redis Cluster and a memcached pool.

The cluster has three masters with a replica each, built the way an
operator builds one: six ``redis-server --cluster-enabled yes`` processes
and ``redis-cli --cluster create --cluster-replicas 1``; a short
``cluster-node-timeout`` makes a replica take over a killed master within
a couple of seconds. The pool is three memcached servers, started fresh
for each test that asks (tests kill its members).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import suppress
from functools import partial
from pathlib import Path

import pytest
import redis

from tests.servers import HOST, Server, _answers, find_binary, free_port, memcached_process

NODES = 6
NODE_TIMEOUT_MS = 1000


class RedisCluster:
    """The six nodes, and what tests ask of them."""

    def __init__(self, nodes: list[Server], workdir: Path) -> None:
        self.nodes = nodes
        self.workdir = workdir

    @property
    def urls(self) -> str:
        """Beaker's ``urls`` setting: every node, comma-separated."""
        return ",".join(f"redis://{HOST}:{node.port}" for node in self.nodes)

    def client(self) -> redis.RedisCluster:
        return redis.RedisCluster(host=HOST, port=self.nodes[0].port)

    def node_of(self, key: str) -> Server:
        """The node serving ``key``'s slot as master now."""
        with self.client() as client:
            port = client.get_node_from_key(key).port
        return next(node for node in self.nodes if node.port == port)

    def wait_healthy(self, deadline: float = 30.0) -> None:
        """Until every live node says the cluster is ok and every slot has a master."""
        until = time.monotonic() + deadline
        while time.monotonic() < until:
            states = []
            for node in self.nodes:
                if not node.alive():
                    continue
                with suppress(redis.RedisError, OSError):
                    info = redis.Redis(host=HOST, port=node.port).cluster("info")
                    states.append(info.get("cluster_state") == "ok")
            if states and all(states):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the Redis Cluster is not healthy after {deadline}s")

    @property
    def url(self) -> str:
        return self.urls

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def commands_processed(self) -> int:
        """Commands every live node has processed so far (``INFO stats``)."""
        total = 0
        for node in self.nodes:
            if node.alive():
                with redis.Redis(host=HOST, port=node.port) as client:
                    total += client.info("stats")["total_commands_processed"]
        return total

    def flush(self) -> None:
        for node in self.nodes:
            if node.alive():
                with suppress(redis.RedisError):
                    redis.Redis(host=HOST, port=node.port).flushall()


def _cluster_port() -> int:
    # a node also listens on its port + 10000 (the cluster bus)
    while True:
        port = free_port()
        if port <= 55535:
            with suppress(OSError), socket.socket() as sock:
                sock.bind((HOST, port + 10000))
                return port


def _node(binary: str, workdir: Path) -> Server:
    port = _cluster_port()
    home = workdir / str(port)
    home.mkdir()
    argv = [binary, "--port", str(port), "--bind", HOST, "--dir", str(home)]
    argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
    argv += ["--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--save", "", "--appendonly", "no"]
    # a replica takes over however long ago it last heard from its master
    argv += ["--cluster-replica-validity-factor", "0", "--repl-ping-replica-period", "1"]
    probe = partial(_answers, port, b"PING\r\n", b"+PONG")
    return Server(f"redis-cluster-{port}", argv, port, home, f"redis://{HOST}:{port}", probe)


def start_cluster() -> RedisCluster:
    """Six nodes started and joined into a cluster; ``stop()`` ends them."""
    binary = shutil.which("redis-server") or find_binary("redis-server", "redis-server")
    cli = shutil.which("redis-cli") or find_binary("redis-cli", "redis-tools")
    workdir = Path(tempfile.mkdtemp(prefix="cq-redis-cluster-"))
    cluster = RedisCluster([_node(binary, workdir) for _ in range(NODES)], workdir)
    try:
        for node in cluster.nodes:
            node.start()
        subprocess.run(
            [cli, "--cluster", "create", *(f"{HOST}:{n.port}" for n in cluster.nodes)]
            + ["--cluster-replicas", "1", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        cluster.wait_healthy()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture
def memcached_pool() -> Iterator[list[Server]]:
    """Three memcached servers, for one test."""
    binary = find_binary("memcached", "memcached")
    servers = [memcached_process(binary, f"memcached-pool{n}") for n in range(3)]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()
            shutil.rmtree(server.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()
