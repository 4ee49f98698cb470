"""Names a backend would choke on, and what a stored entry keeps alive."""

from __future__ import annotations

import gc
import weakref

from sqlalchemy import create_engine
from sqlalchemy.orm import joinedload, sessionmaker

from caching_query import CachingQuery, FromCache
from examples import fixture_data
from examples.model import Person

AWKWARD = "a namespace with spaces, ümlauts and 東京 / slashes\t" * 8


def test_long_unicode_key_and_namespace_on_every_backend(Session, sql):
    def run():
        with Session() as s:
            q = s.query(Person).filter(Person.id == 11)
            return q.with_cache_key(AWKWARD * 2, namespace=AWKWARD).one().name

    with sql.expect(1):
        assert run() == "person 11"
    with sql.expect(0):
        assert run() == "person 11"


def test_long_derived_key_on_every_backend(Session, sql):
    names = [f"person {n:02d}" for n in range(1, 101)] + ["x" * 300]

    def run():
        with Session() as s:
            q = (
                s.query(Person)
                .filter(Person.name.in_(names))
                .options(FromCache("default", AWKWARD))
            )
            return len(q.all())

    with sql.expect(1):
        assert run() == 100
    with sql.expect(0):
        assert run() == 100


def test_entry_keeps_no_session_connection_or_engine_alive(tmp_path, cache_manager, backend):
    engine = create_engine(f"sqlite:///{tmp_path / 'gc.db'}")
    fixture_data.install(engine)
    Session = sessionmaker(bind=engine, query_cls=CachingQuery)
    session = Session()
    q = session.query(Person).options(joinedload(Person.addresses), FromCache("default", "gc"))
    q.all()
    cache, key = q.cache_and_key()
    session_ref = weakref.ref(session)
    connection_refs = [weakref.ref(c) for c in engine.pool._pool.queue]
    engine_ref = weakref.ref(engine)
    session.close()
    engine.dispose()
    del session, q, Session, engine
    gc.collect()
    assert session_ref() is None
    assert all(ref() is None for ref in connection_refs)
    assert engine_ref() is None
    assert len(cache.get(key)) == 200  # the entry (one joined row per address) is still there
