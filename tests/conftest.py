"""Fixtures shared by every test module: database, SQL counting, regions."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator

import beaker.cache
import pytest
from beaker.cache import CacheManager
from beaker.container import MemoryNamespaceManager
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from caching_query import CachingQuery
from examples import fixture_data

pytest_plugins = ["tests.servers"]


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


@pytest.fixture
def sql(engine: Engine) -> Iterator[SQLCounter]:
    counter = SQLCounter(engine)
    yield counter
    counter.close()


def _clear_memory_namespaces() -> None:
    for dictionary in list(MemoryNamespaceManager.namespaces.dict.values()):
        dictionary.clear()


@pytest.fixture
def region_config() -> dict[str, Any]:
    """The configuration of the ``default`` region; overridden per backend."""
    return {"type": "memory"}


@pytest.fixture
def cache_manager(region_config: dict[str, Any]) -> Iterator[CacheManager]:
    """A manager with a ``default`` region, also published in Beaker's globals."""
    saved = dict(beaker.cache.cache_regions)
    beaker.cache.cache_regions.clear()
    _clear_memory_namespaces()
    manager = CacheManager(cache_regions={"default": dict(region_config)})
    yield manager
    beaker.cache.cache_regions.clear()
    beaker.cache.cache_regions.update(saved)
    _clear_memory_namespaces()


@pytest.fixture
def Session(engine: Engine, cache_manager: CacheManager) -> sessionmaker[Session]:  # noqa: N802
    return sessionmaker(bind=engine, query_cls=CachingQuery)


@pytest.fixture
def session(Session: sessionmaker[Session]) -> Iterator[Session]:  # noqa: N803
    with Session() as s:
        yield s
