"""Stampede protection: N threads missing on one key run the query once."""

from __future__ import annotations

import threading
import time

from sqlalchemy import event, func, select

from caching_query import FromCache
from examples.model import Person

THREADS = 8


def test_concurrent_misses_run_the_query_once(engine, Session, sql):
    @event.listens_for(engine, "connect")
    def add_slow(dbapi_connection, record):
        # one slow row keeps the first query running while the others miss
        dbapi_connection.create_function("slow", 1, lambda x: (x == 1 and time.sleep(0.3)) or x)

    engine.dispose()  # new connections get the function
    barrier = threading.Barrier(THREADS)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def worker():
        try:
            with Session() as s:
                q = (
                    s.query(Person)
                    .filter(func.slow(Person.id) < 5)
                    .order_by(Person.id)
                    .options(FromCache("default", "stampede"))
                )
                barrier.wait()
                results.append([p.name for p in q.all()])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    sql.reset()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    event.remove(engine, "connect", add_slow)
    engine.dispose()
    assert not errors
    selects = [s for s in sql.statements if "slow" in s]
    assert len(selects) == 1, selects
    assert results == [["person 01", "person 02", "person 03", "person 04"]] * THREADS
    assert select  # keep import used for readers running this alone
