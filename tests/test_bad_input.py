"""Bad input gets an error naming what was wrong; bad cache data is a miss."""

from __future__ import annotations

import logging
import pickle

import pytest
from beaker.cache import CacheManager
from sqlalchemy import literal, select
from sqlalchemy.orm import sessionmaker

import caching_query
from caching_query import (
    CacheOptionError,
    CachingQuery,
    FromCache,
    UnknownRegionError,
    install,
    query_callable,
)
from examples.model import Person


def test_unknown_region_names_it_and_the_configured_ones(session):
    q = session.query(Person).options(FromCache("nope", "ns"))
    with pytest.raises(UnknownRegionError, match=r"'nope'.*configured regions: 'default'"):
        q.all()


def test_unknown_region_in_bound_manager(engine):
    manager = CacheManager(cache_regions={"mine": {"type": "memory"}})
    Session = sessionmaker(bind=engine, query_cls=query_callable(manager))
    with Session() as s, pytest.raises(UnknownRegionError, match="'mine'"):
        s.query(Person).options(FromCache("default")).all()


@pytest.mark.parametrize("key", [5, b"bytes", None, ["k"]])
def test_non_string_key(session, key):
    with pytest.raises(TypeError, match="cache_key must be a str"):
        session.query(Person).with_cache_key(key) if key is not None else FromCache(cache_key=5)


def test_empty_key_and_namespace():
    with pytest.raises(ValueError, match="cache_key must not be empty"):
        FromCache("default", "ns", cache_key="")
    with pytest.raises(ValueError, match="namespace must not be empty"):
        FromCache("default", "")
    with pytest.raises(TypeError, match="region must be a str"):
        FromCache(None)
    with pytest.raises(ValueError, match="expire"):
        FromCache("default", expire=-1)


def test_conflicting_cache_options(session, Session):
    with pytest.raises(CacheOptionError, match="conflicting cache options"):
        session.query(Person).options(FromCache("default", "a")).with_cache_key("k")
    install(Session)
    stmt = select(Person).options(FromCache("default", "a"), FromCache("default", "b"))
    with pytest.raises(CacheOptionError, match="conflicting cache options"):
        session.execute(stmt).all()


def test_same_option_twice_is_not_a_conflict(session, sql):
    q = session.query(Person).filter(Person.id == 1)
    q = q.options(FromCache("default", "a")).options(FromCache("default", "a"))
    with sql.expect(1):
        q.all()


def test_yield_per_is_refused(session):
    q = session.query(Person).options(FromCache("default", "a")).yield_per(10)
    with pytest.raises(CacheOptionError, match="yield_per"):
        q.all()
    with pytest.raises(CacheOptionError, match="yield_per"):
        session.execute(
            select(Person).options(FromCache()), execution_options={"yield_per": 5}
        ).all()


def test_handles_need_a_cache_option(session):
    with pytest.raises(CacheOptionError, match="no cache option"):
        session.query(Person).invalidate()


@pytest.mark.parametrize(
    "stored",
    [
        "a foreign string",
        (0, None, "foreign value in a beaker record"),
        (0, None, [1, 2, 3]),
    ],
)
def test_foreign_value_is_a_logged_miss(session, sql, caplog, stored):
    q = session.query(Person).filter(Person.id == 1).options(FromCache("default", "bad"))
    cache, key = q.cache_and_key()
    namespace = cache.namespace
    namespace.acquire_write_lock()  # opens file, dbm and database namespaces
    try:
        namespace[key.encode()] = stored
    finally:
        namespace.release_write_lock()
    with caplog.at_level(logging.WARNING, "caching_query"), sql.expect(1):
        assert [p.name for p in q.all()] == ["person 01"]
    assert "caching_query" in caplog.text
    with sql.expect(0):
        assert [p.name for p in q.all()] == ["person 01"]


def test_corrupt_pickle_in_file_region_is_a_logged_miss(tmp_path, engine, sql, caplog):
    manager = CacheManager(cache_regions={"f": {"type": "file", "data_dir": str(tmp_path)}})
    Session = sessionmaker(bind=engine, query_cls=query_callable(manager))
    with Session() as s:
        q = s.query(Person).filter(Person.id == 2).options(FromCache("f", "corrupt"))
        q.all()
        cache, key = q.cache_and_key()
        path = cache.namespace.file
        with open(path, "wb") as f:
            f.write(b"\x80\x04not a pickle")
        with caplog.at_level(logging.WARNING, "caching_query"), sql.expect(1):
            assert [p.name for p in q.all()] == ["person 02"]
        assert "caching_query" in caplog.text
    assert pickle  # imported for readers


def test_unknown_install_target():
    with pytest.raises(TypeError, match="install"):
        install(object())


def test_plain_query_class_unaffected(engine, sql):
    Session = sessionmaker(bind=engine)
    with Session() as s, sql.expect(1):
        assert s.query(Person).filter(Person.id == 1).one().name == "person 01"
    assert CachingQuery


def test_readme_names_are_importable_from_the_package():
    """Every ``caching_query.X`` and ``from caching_query import X`` in README.rst exists."""
    import re
    from pathlib import Path

    import caching_query

    readme = (Path(__file__).resolve().parent.parent / "README.rst").read_text()
    names = set(re.findall(r"caching_query\.([A-Za-z_]\w*)\(", readme))
    for imported in re.findall(r"from caching_query import ([\w, ]+)", readme):
        names.update(name.strip() for name in imported.split(","))
    assert {"ScopedSessionNamespace", "auto_invalidate", "cache_all", "FromCache"} <= names
    missing = sorted(name for name in names if not hasattr(caching_query, name))
    assert not missing, f"README.rst shows names caching_query does not export: {missing}"


@pytest.mark.parametrize(
    "statement",
    [
        lambda: select(Person.__table__).where(Person.__table__.c.id < 3),
        lambda: select(literal(1)),
    ],
    ids=["table", "literal"],
)
def test_fromcache_on_core_select_without_entities_runs_uncached(Session, sql, statement):
    """No ORM result to replay into: documented, it runs as if uncached, never an AttributeError."""
    caching_query.install(Session)
    for _ in range(2):
        with Session() as session, sql.expect(1):
            rows = session.execute(statement().options(FromCache("default", "core"))).all()
        assert len(rows) in (1, 2)
