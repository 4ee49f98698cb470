"""Entries over a size limit are not stored; the query still answers, and no outage starts."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from typing import Any

import bmemcached
import pytest
from beaker.cache import CacheManager
from sqlalchemy import Integer, String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

import caching_query
from caching_query import FromCache, health
from caching_query.entries import records, sealing
from caching_query.operations import stats
from tests.conftest import SQLCounter
from tests.servers import Server, _serve, find_binary, memcached_process

ROWS = 1200
TEXT_SIZE = 1000  # 1200 rows of 1000 bytes: over memcached's 1 MiB item limit


class Base(DeclarativeBase):
    pass


class Blob(Base):
    __tablename__ = "blob"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(String)


@pytest.fixture(scope="module")
def blob_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    engine = create_engine(f"sqlite:///{tmp_path_factory.mktemp('blobs') / 'blobs.db'}")
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        # random hex: the memcached client compresses, and this stays large
        texts = [random.Random(n).randbytes(TEXT_SIZE // 2).hex() for n in range(ROWS)]
        conn.execute(
            Blob.__table__.insert(), [{"id": n + 1, "text": t} for n, t in enumerate(texts)]
        )
    yield engine
    engine.dispose()


@pytest.fixture
def blob_sql(blob_engine: Any) -> Iterator[SQLCounter]:
    counter = SQLCounter(blob_engine)
    yield counter
    counter.close()


@pytest.fixture(autouse=True)
def _fresh_warnings_and_counts() -> None:
    records._warned_shapes.clear()
    health.reset()
    stats.reset_statistics()


def _session(manager: CacheManager, engine: Any) -> Any:
    return sessionmaker(bind=engine, query_cls=caching_query.query_callable(manager))()


def _big(session: Any) -> int:
    query = session.query(Blob).order_by(Blob.id).options(FromCache("default", "big"))
    return sum(len(b.text) for b in query.all())


def _small(session: Any) -> list[int]:
    query = session.query(Blob.id).filter(Blob.id <= 3).order_by(Blob.id)
    return [row.id for row in query.options(FromCache("default", "small")).all()]


def _check_refused_entry_is_no_outage(
    manager: CacheManager, engine: Any, sql: SQLCounter, caplog: Any
) -> None:
    with caplog.at_level(logging.WARNING, "caching_query"):
        for _ in range(3):
            with _session(manager, engine) as session, sql.expect(1):
                assert _big(session) == ROWS * TEXT_SIZE
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([w for w in warnings if "not caching" in w]) == 1, warnings
    assert not [w for w in warnings if "unavailable" in w], "an oversized entry is not an outage"
    with _session(manager, engine) as session, sql.expect(1):
        assert _small(session) == [1, 2, 3]
    with _session(manager, engine) as session, sql.expect(0):
        assert _small(session) == [1, 2, 3], "other entries are still stored and read"
    counts = caching_query.statistics()[("default", "big")]
    assert counts.bypassed == {"oversized": 3}
    assert counts.stores == 0 and counts.misses == 3 and counts.backend_errors == 0


def test_memcached_default_limit(memcached_server, blob_engine, blob_sql, caplog):
    bmemcached.Client([memcached_server.url]).flush_all()
    config = {"type": "ext:memcached", "url": memcached_server.url}
    manager = CacheManager(cache_regions={"default": config})
    cache = FromCache("default", "big", cache_manager=manager).cache()
    assert cache.sealing.max_bytes == sealing.MEMCACHED_ITEM_LIMIT
    _check_refused_entry_is_no_outage(manager, blob_engine, blob_sql, caplog)


@pytest.fixture(scope="module")
def small_item_memcached() -> Iterator[Server]:
    """A memcached whose item size limit (64 KiB) is below the library's default."""
    binary = find_binary("memcached", "memcached")
    server = memcached_process(binary, "memcached-64k", "-I", "64k", "-o", "slab_chunk_max=32768")
    yield from _serve(server, server.start)


def test_memcached_refusing_an_item_is_no_outage(
    small_item_memcached, blob_engine, blob_sql, caplog
):
    """The server's own limit is lower than the region's: it refuses, and answers."""
    config = {"type": "ext:memcached", "url": small_item_memcached.url, "max_entry_bytes": 0}
    manager = CacheManager(cache_regions={"default": config})
    _check_refused_entry_is_no_outage(manager, blob_engine, blob_sql, caplog)


@pytest.mark.parametrize("kind", ["file", "redis"])
def test_configured_limit(kind, request, tmp_path, blob_engine, blob_sql, caplog):
    if kind == "redis":
        config: dict[str, Any] = {
            "type": "ext:redis",
            "url": request.getfixturevalue("redis_server").url,
        }
    else:
        config = {"type": "file", "data_dir": str(tmp_path)}
    manager = CacheManager(cache_regions={"default": {**config, "max_entry_bytes": "100000"}})
    _check_refused_entry_is_no_outage(manager, blob_engine, blob_sql, caplog)


def test_no_limit_elsewhere(tmp_path, blob_engine, blob_sql):
    manager = CacheManager(cache_regions={"default": {"type": "file", "data_dir": str(tmp_path)}})
    assert FromCache("default", "big", cache_manager=manager).cache().sealing.max_bytes is None
    with _session(manager, blob_engine) as session, blob_sql.expect(1):
        assert _big(session) == ROWS * TEXT_SIZE
    with _session(manager, blob_engine) as session, blob_sql.expect(0):
        assert _big(session) == ROWS * TEXT_SIZE
    counts = caching_query.statistics()[("default", "big")]
    assert counts.bytes_written > ROWS * TEXT_SIZE and counts.bytes_read == counts.bytes_written


def test_zero_means_no_limit_even_on_memcached(memcached_server):
    config = {"type": "ext:memcached", "url": memcached_server.url, "max_entry_bytes": 0}
    manager = CacheManager(cache_regions={"default": config})
    assert FromCache("default", "x", cache_manager=manager).cache().sealing.max_bytes is None


@pytest.mark.parametrize("value", ["lots", -5, "1.5"])
def test_bad_limit_names_the_setting(value, tmp_path):
    config = {"type": "file", "data_dir": str(tmp_path), "max_entry_bytes": value}
    manager = CacheManager(cache_regions={"default": config})
    with pytest.raises(caching_query.CacheOptionError, match="max_entry_bytes"):
        FromCache("default", "x", cache_manager=manager).cache()
