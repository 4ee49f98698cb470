"""Fixtures shared by every test module: database, SQL counting, regions."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import beaker.cache
import bmemcached
import pytest
import redis
from beaker.cache import CacheManager
from beaker.container import MemoryNamespaceManager
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    MetaData,
    PickleType,
    String,
    Table,
    create_engine,
    event,
)
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker

from caching_query import CachingQuery, health
from caching_query.invalidation import publish
from examples import blog, fixture_data

pytest_plugins = ["tests.servers", "tests.server_groups"]


class SQLCounter:
    """Counts statements an engine sends (``before_cursor_execute``)."""

    def __init__(self, engine: Engine) -> None:
        self.statements: list[str] = []
        self._lock = threading.Lock()
        event.listen(engine, "before_cursor_execute", self._seen)
        self._engine = engine

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        with self._lock:
            self.statements.append(statement)

    @property
    def count(self) -> int:
        return len(self.statements)

    def reset(self) -> None:
        with self._lock:
            self.statements.clear()

    @contextmanager
    def expect(self, count: int) -> Iterator[None]:
        """Assert the block sends exactly ``count`` statements."""
        before = len(self.statements)
        yield
        sent = self.statements[before:]
        assert len(sent) == count, f"expected {count} statements, got {len(sent)}: {sent}"

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._seen)


# CQ_LEGACY_PATH=hook runs legacy queries through Session.execute and the
# hook, as sessions with other do_orm_execute hooks do; by default they take
# the direct entrance (caching_query.direct). test20 runs the suite that way.
HOOK_PATH_ONLY = os.environ.get("CQ_LEGACY_PATH") == "hook"


@pytest.fixture(autouse=True)
def legacy_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which entrance legacy queries take in this test: "direct" or "hook"."""
    if HOOK_PATH_ONLY and not getattr(request.module, "CHOOSES_ITS_PATH", False):
        monkeypatch.setattr(CachingQuery, "_fetch_directly", lambda query: None)
        return "hook"
    return "direct"


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A SQLite file with the examples' fixture data (read-only for tests)."""
    path = tmp_path_factory.mktemp("db") / "people.db"
    engine = create_engine(f"sqlite:///{path}")
    fixture_data.install(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def writable_engine(tmp_path: Any) -> Iterator[Engine]:
    """A private copy of the fixture database, for tests that write."""
    engine = create_engine(f"sqlite:///{tmp_path / 'rw.db'}")
    fixture_data.install(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def blog_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The blog (examples/blog.py) with its seed data, in a SQLite file in WAL mode."""
    path = tmp_path_factory.mktemp("blog") / "seed.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        # readers do not block writers: tests hold a reader mid-query
        connection.exec_driver_sql("PRAGMA journal_mode=WAL")
    blog.Base.metadata.create_all(engine)
    with OrmSession(engine) as session:
        blog.seed(session)
    engine.dispose()
    return path


@pytest.fixture
def blog_engine(blog_template: Path, tmp_path: Path) -> Iterator[Engine]:
    """A private copy of the seeded blog, for tests that write."""
    path = tmp_path / "blog.db"
    shutil.copy(blog_template, path)
    engine = create_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()


@pytest.fixture
def blog_sql(blog_engine: Engine) -> Iterator[SQLCounter]:
    """Counts the statements the blog's engine sends."""
    counter = SQLCounter(blog_engine)
    yield counter
    counter.close()


@pytest.fixture
def sql(engine: Engine) -> Iterator[SQLCounter]:
    counter = SQLCounter(engine)
    yield counter
    counter.close()


def _clear_memory_namespaces() -> None:
    for dictionary in list(MemoryNamespaceManager.namespaces.dict.values()):
        dictionary.clear()


def _memcached(request: pytest.FixtureRequest, tmp: Path) -> dict[str, Any]:
    server = request.getfixturevalue("memcached_server")
    bmemcached.Client([server.url]).flush_all()
    return {
        "type": "ext:memcached",
        "url": server.url,
        "memcache_module": "bmemcached",
        "lock_dir": str(tmp / "lock"),
    }


def _redis(request: pytest.FixtureRequest, tmp: Path) -> dict[str, Any]:
    server = request.getfixturevalue("redis_server")
    redis.Redis.from_url(server.url).flushdb()
    return {"type": "ext:redis", "url": server.url}


def _redis_cluster(request: pytest.FixtureRequest, tmp: Path) -> dict[str, Any]:
    cluster = request.getfixturevalue("redis_cluster")
    cluster.flush()
    return {"type": "ext:rediscluster", "urls": cluster.urls}


def _postgres(request: pytest.FixtureRequest, tmp: Path) -> dict[str, Any]:
    server = request.getfixturevalue("postgres_server")
    table = f"cq_cache_{abs(hash(request.node.nodeid)) % 10**8}"
    # pre-ping: the server tests restart PostgreSQL under pooled connections
    return {
        "type": "ext:database",
        "url": server.url,
        "table_name": table,
        "sa_opts": {"sa.pool_pre_ping": True},
    }


def _database_sqlite(request: pytest.FixtureRequest, tmp: Path) -> dict[str, Any]:
    return {"type": "ext:database", "url": f"sqlite:///{tmp / 'cache.db'}"}


def _sqla_table(url: str, tmp: Path, name: str = "beaker_cache") -> dict[str, Any]:
    # The table Beaker's make_cache_table() describes; that function needs
    # the namespace class to have been used first.
    engine = create_engine(url, pool_pre_ping=True)
    metadata = MetaData()
    table = Table(
        name,
        metadata,
        Column("namespace", String(255), primary_key=True),
        Column("accessed", DateTime, nullable=False),
        Column("created", DateTime, nullable=False),
        Column("data", PickleType, nullable=False),
    )
    metadata.create_all(engine)
    return {"type": "ext:sqla", "bind": engine, "table": table, "lock_dir": str(tmp / "lock")}


def _sqla_sqlite(request: pytest.FixtureRequest, tmp: Path) -> dict[str, Any]:
    return _sqla_table(f"sqlite:///{tmp / 'cache.db'}", tmp)


def _sqla_postgres(request: pytest.FixtureRequest, tmp: Path) -> dict[str, Any]:
    server = request.getfixturevalue("postgres_server")
    return _sqla_table(server.url, tmp, f"cq_sqla_{abs(hash(request.node.nodeid)) % 10**8}")


BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], dict[str, Any]]] = {
    "memory": lambda request, tmp: {"type": "memory"},
    "file": lambda request, tmp: {"type": "file", "data_dir": str(tmp)},
    "dbm": lambda request, tmp: {"type": "dbm", "data_dir": str(tmp)},
    "database-sqlite": _database_sqlite,
    "sqla-sqlite": _sqla_sqlite,
    "memcached": _memcached,
    "redis": _redis,
    "redis-cluster": _redis_cluster,
    "database-postgresql": _postgres,
    "sqla-postgresql": _sqla_postgres,
}
SERVER_BACKENDS = {"memcached", "redis", "redis-cluster", "database-postgresql", "sqla-postgresql"}
# CQ_BACKENDS=memory,file narrows a local run; CI runs them all.
SELECTED = [b for b in os.environ.get("CQ_BACKENDS", ",".join(BACKENDS)).split(",") if b]


@pytest.fixture(
    params=[
        pytest.param(name, marks=[pytest.mark.server] if name in SERVER_BACKENDS else [])
        for name in SELECTED
    ]
)
def backend(request: pytest.FixtureRequest) -> str:
    """The Beaker backend the ``default`` region uses in this test."""
    return request.param


@pytest.fixture
def region_config(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The configuration of the ``default`` region, for each backend in turn."""
    return BACKENDS[backend](request, tmp_path_factory.mktemp("cache"))


@pytest.fixture
def cache_manager(region_config: dict[str, Any]) -> Iterator[CacheManager]:
    """A manager with a ``default`` region, also published in Beaker's globals."""
    saved = dict(beaker.cache.cache_regions)
    beaker.cache.cache_regions.clear()
    _clear_memory_namespaces()
    health.reset()
    manager = CacheManager(cache_regions={"default": dict(region_config)})
    yield manager
    publish.forget()
    health.reset()
    beaker.cache.cache_regions.clear()
    beaker.cache.cache_regions.update(saved)
    _clear_memory_namespaces()


@pytest.fixture
def Session(engine: Engine, cache_manager: CacheManager) -> sessionmaker[OrmSession]:  # noqa: N802
    return sessionmaker(bind=engine, query_cls=CachingQuery)


@pytest.fixture
def session(Session: sessionmaker[OrmSession]) -> Iterator[OrmSession]:  # noqa: N803
    with Session() as s:
        yield s
