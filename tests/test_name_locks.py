"""Process-local creation locks (``name_locks``): one holder per name, forgotten when free."""

from __future__ import annotations

import threading
import time

import pytest
from beaker.cache import CacheManager
from sqlalchemy import event, func
from sqlalchemy.orm import sessionmaker

from caching_query import FromCache, locks, name_locks, query_callable
from examples.model import Person

THREADS = 6


def _holder_blocks_others(first: name_locks.NameLock, second: name_locks.NameLock) -> bool:
    """Whether another thread fails to take ``second`` while this one holds ``first``."""
    taken: list[bool] = []

    def attempt() -> None:
        taken.append(second.acquire(False))
        if taken[-1]:
            second.release()

    assert first.acquire()
    try:
        thread = threading.Thread(target=attempt)
        thread.start()
        thread.join()
    finally:
        first.release()
    return not taken[0]


def test_one_holder_per_name_across_threads():
    assert _holder_blocks_others(name_locks.NameLock("a"), name_locks.NameLock("a"))
    assert not _holder_blocks_others(name_locks.NameLock("a"), name_locks.NameLock("b"))
    assert name_locks.names_in_use() == 0


def test_reentrant_in_one_thread_and_forgotten_after_the_last_release():
    lock = name_locks.NameLock("reentrant")
    assert lock.acquire() and lock.acquire(False)
    lock.release()
    assert name_locks.names_in_use() == 1  # still held once
    lock.release()
    assert name_locks.names_in_use() == 0


def test_a_failed_attempt_leaves_nothing_behind():
    holder = name_locks.NameLock("busy")
    assert holder.acquire()
    outcome: list[bool] = []
    attempt = name_locks.NameLock("busy")
    thread = threading.Thread(target=lambda: outcome.append(attempt.acquire(False)))
    thread.start()
    thread.join()
    assert outcome == [False]
    holder.release()
    assert name_locks.names_in_use() == 0


def test_releasing_one_lock_twice_never_drops_anothers_hold():
    held = name_locks.NameLock("shared")
    done = name_locks.NameLock("shared")
    assert held.acquire() and done.acquire()
    done.release()
    with pytest.raises(RuntimeError, match="shared"):
        done.release()  # already released: the other hold stays
    assert name_locks.names_in_use() == 1
    assert _holder_blocks_others(held, name_locks.NameLock("shared"))  # still held
    held.release()
    assert name_locks.names_in_use() == 0


def test_release_without_acquire_is_an_error():
    with pytest.raises(RuntimeError, match="not-held"):
        name_locks.NameLock("not-held").release()
    lock = name_locks.NameLock("once")
    lock.acquire()
    lock.release()
    with pytest.raises(RuntimeError):
        lock.release()
    assert name_locks.names_in_use() == 0


@pytest.fixture
def memory_sessions(engine):
    manager = CacheManager(cache_regions={"memory": {"type": "memory"}})
    return sessionmaker(bind=engine, query_cls=query_callable(manager)), manager


def test_memory_regions_take_the_process_local_lock(memory_sessions):
    _, manager = memory_sessions
    cache = FromCache("memory", "name_locks", cache_manager=manager).cache()
    assert isinstance(locks.creation_lock(cache, "k"), name_locks.NameLock)


def test_concurrent_memory_misses_run_once_and_leave_no_lock(engine, sql, memory_sessions):
    sessions, _ = memory_sessions

    @event.listens_for(engine, "connect")
    def add_slow(dbapi_connection, record):
        # the first query runs long enough for every other thread to miss
        dbapi_connection.create_function("slow", 1, lambda x: (x == 1 and time.sleep(0.3)) or x)

    engine.dispose()
    barrier = threading.Barrier(THREADS)
    results: list[list[str]] = []

    def worker(namespace: str) -> None:
        with sessions() as session:
            query = (
                session.query(Person)
                .filter(func.slow(Person.id) < 4)
                .order_by(Person.id)
                .options(FromCache("memory", namespace))
            )
            barrier.wait()
            results.append([p.name for p in query.all()])

    try:
        for namespace in ("name_locks.a", "name_locks.b"):
            threads = [threading.Thread(target=worker, args=(namespace,)) for _ in range(THREADS)]
            sql.reset()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert len([s for s in sql.statements if "slow" in s]) == 1
    finally:
        event.remove(engine, "connect", add_slow)
        engine.dispose()
    assert results == [["person 01", "person 02", "person 03"]] * (2 * THREADS)
    assert name_locks.names_in_use() == 0
