"""Canaries for the private SQLAlchemy and Beaker names automatic invalidation uses.

Each test fails with the name when SQLAlchemy or Beaker changes it, rather
than invalidation silently stopping.
"""

from __future__ import annotations

import inspect as pyinspect

from beaker.cache import Cache
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.orm import joinedload

from caching_query import regions
from caching_query.internals import _beaker_internals, _sa_internals
from examples.model import Address, Person


def test_compiled_statement_is_the_core_statement_the_orm_built(engine):
    statement = select(Person).options(joinedload(Person.addresses))
    core = _sa_internals.compiled_statement(statement.compile(dialect=engine.dialect))
    assert core is not statement  # the ORM's own, with the eager join
    assert {"person", "address"} <= {t.name for t in _walk_tables(core)}
    assert {t.name for t in _walk_tables(statement)} == {"person"}


def _walk_tables(element):
    from sqlalchemy.sql import visitors
    from sqlalchemy.sql.selectable import TableClause

    return [node for node in visitors.iterate(element) if isinstance(node, TableClause)]


def test_for_update():
    assert _sa_internals.for_update(select(Person).with_for_update())
    assert not _sa_internals.for_update(select(Person))


def test_may_write_reads_the_execution_context(engine):
    from sqlalchemy import event

    seen = []

    def note(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement.split()[0], _sa_internals.may_write(context)))

    event.listen(engine, "after_cursor_execute", note)
    try:
        with engine.connect() as connection:
            connection.execute(select(Person.id).limit(1)).all()
            connection.execute(update(Address.__table__).where(Address.id == -1).values(street="x"))
            connection.execute(text("SELECT 1")).all()
            connection.exec_driver_sql("SELECT 2").all()
            connection.rollback()
    finally:
        event.remove(engine, "after_cursor_execute", note)
    # compiled SELECTs are known not to write; DML and any SQL text may
    assert seen == [("SELECT", False), ("UPDATE", True), ("SELECT", True), ("SELECT", True)]


def test_is_autocommit(engine):
    with engine.connect() as connection:
        assert not _sa_internals.is_autocommit(connection)
        assert _sa_internals.is_autocommit(
            connection.execution_options(isolation_level="AUTOCOMMIT")
        )


def test_do_commit_is_where_the_commit_happens(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'commit.db'}")
    dialect = engine.dialect
    assert list(pyinspect.signature(dialect.do_commit).parameters) == ["dbapi_connection"]
    assert list(pyinspect.signature(dialect.do_commit_twophase).parameters)[:2] == [
        "connection",
        "xid",
    ]
    announced = []
    _sa_internals.publish_after_commit(dialect, lambda info: announced.append(dict(info)))
    _sa_internals.publish_after_commit(dialect, lambda info: announced.append("twice"))
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        connection.info["mark"] = 1
    # once per commit, after it, with the connection's info; one wrapper per dialect
    assert [entry["mark"] for entry in announced] == [1]
    engine.dispose()


def test_ended_transaction_reads_pysqlite(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'sp.db'}")
    with engine.connect() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        connection.commit()
        connection.exec_driver_sql("SAVEPOINT a")
        connection.exec_driver_sql("INSERT INTO t VALUES (1)")
        assert not _sa_internals.ended_transaction(connection)
        connection.exec_driver_sql("RELEASE SAVEPOINT a")
        assert _sa_internals.ended_transaction(connection)
    engine.dispose()


def test_records_of_two_namespaces_round_trip(cache_manager, backend):
    """set_records and read_records_with agree with Beaker's own reads, on every backend."""
    first = regions.get_cache("default", "canary_one", None)
    second = regions.get_cache("default", "canary_two", None)
    _beaker_internals.set_records(second.namespace, {b"~t:a": "A", b"~t:b": "B"})
    _beaker_internals.set_records(first.namespace, {b"k": "K"})
    found, other = _beaker_internals.read_records_with(
        first.namespace, [b"k", b"absent"], second.namespace, [b"~t:b", b"~t:a", b"~t:c"]
    )
    assert (found, other) == (["K", None], ["B", "A", None])
    own = Cache("canary_two", **cache_manager.regions["default"])
    _beaker_internals.keep_namespace_on_one_node(own.namespace)  # the library's cluster layout
    own.namespace.acquire_read_lock()
    try:
        assert own.namespace[b"~t:a"] == "A"
    finally:
        own.namespace.release_read_lock()
    if backend in ("memcached", "redis"):
        # one client: one round trip answers both namespaces
        client = "mc" if backend == "memcached" else "client"
        assert getattr(first.namespace, client) is getattr(second.namespace, client)
