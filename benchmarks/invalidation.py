"""Measurement 7: what automatic invalidation costs.

* a hit with versions checked against the same hit without (one-row and
  100-row ``select()`` hits, fresh session per call, the two measured
  alternately), on every backend;
* backend round trips per hit, counted by Redis itself
  (``INFO commandstats``: commands the server processed during N hits);
* what a commit pays: a one-row ORM update committed, without and with
  invalidation on, and the publication alone for 1, 5 and 20 tables.

Runs last: once automatic invalidation is on, every engine of the process
reports its writes, and the other figures must not include that.
"""

from __future__ import annotations

import sys
from typing import Any

import bmemcached
import redis
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

import caching_query
from caching_query import regions
from caching_query.invalidation import versions
from examples.model import Person

from .environment import Bench, close_pair, session_pairs
from .timing import Stats, measure, measure_pair

ROWS = (1, 100)
TABLE_COUNTS = (1, 5, 20)
ROUND_TRIP_HITS = 200


class AutoSession(Session):
    """Sessions with automatic invalidation on (the comparison's other side)."""


def _query(rows: int, backend: str, namespace: str) -> Any:
    return (
        select(Person)
        .where(Person.id <= rows)
        .order_by(Person.id)
        .options(caching_query.FromCache(backend, namespace))
    )


def _hits(bench: Bench, auto: sessionmaker[Any], backend: str, rows: int) -> tuple[Stats, Stats]:
    """The same hit without and with versions checked, measured alternately."""
    off, on = f"inv.off.{rows}", f"inv.on.{rows}"

    sessions = session_pairs(bench.cached, auto)
    for session, namespace in zip(sessions(), (off, on), strict=True):
        session.scalars(_query(rows, backend, namespace)).all()  # the miss that stores it
        session.close()
    return measure_pair(
        lambda pair: pair[0].scalars(_query(rows, backend, off)).all(),
        lambda pair: pair[1].scalars(_query(rows, backend, on)).all(),
        bench.plan,
        sessions,
        close_pair,
    )


def _commit(bench: Bench) -> Stats:
    counter = iter(range(10**9))

    def call(session: Session) -> None:
        session.execute(update(Person).where(Person.id == 1).values(name=f"p{next(counter)}"))
        session.commit()

    return measure(call, bench.plan, bench.plain, Session.close)


def _redis_counts(config: dict[str, Any]) -> tuple[Any, int]:
    """Commands processed so far by the region's Redis (every node of a
    cluster), and how many INFO calls that took."""
    if config["type"] == "ext:rediscluster":
        host, port = config["urls"].split(",")[0].removeprefix("redis://").split(":")
        with redis.RedisCluster(host=host, port=int(port)) as cluster:
            answers = cluster.info("stats", target_nodes=redis.RedisCluster.ALL_NODES)
        return sum(a["total_commands_processed"] for a in answers.values()), len(answers)
    with redis.Redis.from_url(config["url"]) as client:
        return client.info("stats")["total_commands_processed"], 1


def _memcached_gets(config: dict[str, Any]) -> tuple[Any, int]:
    """Keys read so far by the region's memcached servers (``cmd_get``)."""
    stats = bmemcached.Client(config["url"].split(";")).stats()
    return sum(int(s.get("cmd_get", 0)) for s in stats.values()), 0


def _server_requests(config: dict[str, Any], hit: Any) -> float:
    """Commands (Redis) or keys read (memcached) per hit, counted by the servers."""
    count = (
        _redis_counts if config["type"] in ("ext:redis", "ext:rediscluster") else _memcached_gets
    )
    before, infos = count(config)
    for _ in range(ROUND_TRIP_HITS):
        hit()
    after, _ = count(config)
    return (after - before - infos) / ROUND_TRIP_HITS  # the first INFO counts too


def run(bench: Bench, backends: list[str]) -> dict[str, Any]:
    commit_plain = _commit(bench)
    auto = sessionmaker(bind=bench.engine, class_=AutoSession)
    caching_query.auto_invalidate(auto, bench.manager)
    hits = []
    for backend in backends:
        for rows in ROWS:
            without, with_versions = _hits(bench, auto, backend, rows)
            hits.append(
                {
                    "backend": backend,
                    "rows": rows,
                    "without": without.as_dict(),
                    "with_versions": with_versions.as_dict(),
                    "ratio": round(with_versions.median_us / without.median_us, 4),
                }
            )
            print(
                f"  {backend:9} {rows:4} rows  with/without versions {hits[-1]['ratio']:.3f}",
                file=sys.stderr,
            )
    requests: dict[str, dict[str, float]] = {}
    for backend in backends:
        config = bench.manager.regions[backend]
        if config["type"] not in ("ext:redis", "ext:rediscluster", "ext:memcached"):
            continue
        requests[backend] = {}
        for label, factory, namespace in (
            ("without", bench.cached, "inv.off.1"),
            ("with_versions", auto, "inv.on.1"),
        ):

            def hit(
                factory: Any = factory, namespace: str = namespace, name: str = backend
            ) -> None:
                with factory() as session:
                    session.scalars(_query(1, name, namespace)).all()

            requests[backend][label] = round(_server_requests(config, hit), 3)
    commit_auto = _commit(bench)
    publications = {}
    for backend in backends:
        cache = regions.get_cache(backend, versions.VERSIONS_NAMESPACE, bench.manager)
        for count in TABLE_COUNTS:
            tables = {f"bench_table_{i}" for i in range(count)}
            stats = measure(
                lambda _, cache=cache, tables=tables: versions.write(
                    cache, versions.new_tokens(tables)
                ),
                bench.plan,
            )
            publications[f"{backend}:{count}"] = stats.as_dict()
    return {
        "hits": hits,
        "redis_commands_per_hit": requests.get("redis", {}),
        "server_requests_per_hit": requests,
        "commit": {
            "without": commit_plain.as_dict(),
            "with_invalidation": commit_auto.as_dict(),
            "ratio": round(commit_auto.median_us / commit_plain.median_us, 4),
        },
        "publish_us": publications,
    }
