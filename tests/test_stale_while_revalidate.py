"""stale_while_revalidate: an expired entry is served while another process makes the new one.

Never past an invalidation: an entry cleared, invalidated or whose tables
were written is not served that way. The lock of the process making the
new entry is planted in the server, as a process on another machine would
hold it.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from beaker.cache import CacheManager
from sqlalchemy import update
from sqlalchemy.orm import sessionmaker

import caching_query
from caching_query import CacheOptionError, FromCache, health, regions
from caching_query.internals import _beaker_internals
from caching_query.invalidation import publish
from caching_query.keys import backend_key
from examples.model import Person
from tests.conftest import SQLCounter

pytestmark = pytest.mark.server


@pytest.fixture(params=["memcached", "redis"])
def region(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    from tests.conftest import _memcached, _redis

    config = (_memcached if request.param == "memcached" else _redis)(request, tmp_path)
    health.reset()
    yield {**config, "expire": 1, "stale_while_revalidate": 60, "lock_wait": 0.5}
    publish.forget()
    health.reset()


@pytest.fixture
def manager(region: dict[str, Any]) -> CacheManager:
    return CacheManager(cache_regions={"default": region})


@pytest.fixture
def Session(writable_engine: Any, manager: CacheManager) -> Any:  # noqa: N802
    return sessionmaker(bind=writable_engine, query_cls=caching_query.query_callable(manager))


@pytest.fixture
def sql(writable_engine: Any) -> Any:
    """Statements the writable database is sent (conftest's ``sql`` counts the read-only one)."""
    counter = SQLCounter(writable_engine)
    yield counter
    counter.close()


def _query(session: Any) -> Any:
    query = session.query(Person).filter(Person.id == 9)
    return query.options(FromCache("default", "swr"))


def _expire_and_lock(manager: CacheManager, session: Any) -> None:
    """Let the entry expire; then someone else starts making the new one."""
    time.sleep(2.1)  # past expire=1, whatever memcached's one-second clock does
    _, key = _query(session).cache_and_key()
    cache = regions.get_cache("default", "swr", manager)
    attempt, _ = _beaker_internals.server_lock(cache.namespace, backend_key(key), 60)
    assert attempt()


def test_the_old_entry_is_served_while_another_process_regenerates(manager, Session, sql):
    with Session() as s, sql.expect(1):
        assert _query(s).one().name == "person 09"
    with Session() as s:
        _expire_and_lock(manager, s)
    caching_query.reset_statistics()
    with Session() as s, sql.expect(0):
        assert _query(s).one().name == "person 09"
    assert caching_query.statistics()[("default", "swr")].stale_served == 1


def test_never_past_an_explicit_invalidation_or_clear(manager, Session, sql, writable_engine):
    with Session() as s, sql.expect(1):
        assert _query(s).one().name == "person 09"
    with writable_engine.begin() as conn:
        conn.execute(update(Person).where(Person.id == 9).values(name="new nine"))
    caching_query.clear("default", "swr", cache_manager=manager)
    with Session() as s:
        _expire_and_lock(manager, s)
    with Session() as s, sql.expect(1):  # waits lock_wait, then runs it itself
        assert _query(s).one().name == "new nine"


def test_never_past_an_automatic_invalidation(manager, Session, sql):
    caching_query.auto_invalidate(Session, manager)
    with Session() as s, sql.expect(1):
        assert _query(s).one().name == "person 09"
    with Session() as s:
        s.execute(update(Person).where(Person.id == 9).values(name="nine, renamed"))
        s.commit()
    with Session() as s:
        _expire_and_lock(manager, s)
    with Session() as s, sql.expect(1):
        assert _query(s).one().name == "nine, renamed"


def test_off_by_default_and_checked(tmp_path):
    config = {"type": "file", "data_dir": str(tmp_path)}
    cache = FromCache("default", "x", cache_manager=CacheManager(cache_regions={"default": config}))
    assert cache.cache().lock_settings.stale_while_revalidate == 0
    bad = CacheManager(cache_regions={"default": {**config, "stale_while_revalidate": -1}})
    with pytest.raises(CacheOptionError, match="stale_while_revalidate"):
        FromCache("default", "x", cache_manager=bad).cache()
