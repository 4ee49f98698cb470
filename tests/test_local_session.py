"""Session-local caches (``ext:local_session``): issue 3.

The region keeps one dictionary per namespace in ``Session.info`` of the
current session, so every test counts SQL to tell a hit from a miss and
checks that the cache lives and dies with that session.
"""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Callable, Iterator
from contextvars import ContextVar, copy_context
from typing import Any

import beaker.cache
import pytest
from beaker.cache import CacheManager
from beaker.exceptions import MissingCacheParameter
from sqlalchemy import Engine, event, inspect
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import scoped_session, sessionmaker

from caching_query import CachingQuery, FromCache, store, writes
from caching_query.internals import _beaker_internals
from caching_query.local_session import _INFO_KEY, ScopedSessionNamespace
from examples.model import Person
from tests.conftest import SQLCounter

REGION = "local_session"


def person_query(session: Any, name: str = "person 10", namespace: str = "by_name") -> Any:
    """``session.query(Person)`` by name, cached in the local region."""
    return session.query(Person).options(FromCache(REGION, namespace)).filter(Person.name == name)


# -- fixtures ---------------------------------------------------------------


@pytest.fixture
def make_scoped(
    request: pytest.FixtureRequest,
) -> Callable[[Engine], scoped_session[OrmSession]]:
    """Makes ``scoped_session``s over ``CachingQuery``; each is removed at tear-down."""

    def make(bind: Engine) -> scoped_session[OrmSession]:
        scoped = scoped_session(sessionmaker(bind=bind, query_cls=CachingQuery))
        request.addfinalizer(scoped.remove)
        return scoped

    return make


@pytest.fixture
def Session(  # noqa: N802 - the scenario's name; overrides conftest's sessionmaker
    engine: Engine,
    cache_manager: CacheManager,
    make_scoped: Callable[[Engine], scoped_session[OrmSession]],
) -> scoped_session[OrmSession]:
    """A thread-local ``scoped_session`` on the read-only fixture database."""
    return make_scoped(engine)


@pytest.fixture
def local_region(Session: scoped_session[OrmSession]) -> CacheManager:  # noqa: N803
    """The configuration-only form: the package's ``beaker.backends`` entry point."""
    return CacheManager(
        cache_regions={REGION: {"type": "ext:local_session", "scoped_session": Session}}
    )


@pytest.fixture
def restore_backend() -> Iterator[Callable[[str], None]]:
    """Call it with a Beaker type name before overriding it; tear-down puts it back."""
    saved: dict[str, Any] = {}
    _MISSING = object()

    def remember(name: str) -> None:
        # A lookup loads the entry points first, so an entry point's class
        # is what is saved.
        try:
            original = beaker.cache.clsmap[name]
        except KeyError:
            original = _MISSING
        saved.setdefault(name, original)

    yield remember
    for name, original in saved.items():
        if original is _MISSING:
            beaker.cache.clsmap._clsmap.pop(name, None)
        else:
            _beaker_internals.register_backend(name, original)


@pytest.fixture
def thread_sql(engine: Engine) -> Iterator[list[tuple[int, str]]]:
    """(thread id, statement) of every statement the engine sends."""
    seen: list[tuple[int, str]] = []
    lock = threading.Lock()

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        with lock:
            seen.append((threading.get_ident(), statement))

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


@pytest.fixture
def rw_sql(writable_engine: Engine) -> Iterator[SQLCounter]:
    counter = SQLCounter(writable_engine)
    yield counter
    counter.close()


# -- 1. the scenario, configuration-only registration -----------------------


def scenario(Session: scoped_session[OrmSession], sql: SQLCounter) -> None:  # noqa: N803
    """Issue 3's scenario; every step with its SQL count."""
    q = person_query(Session)
    with sql.expect(1):
        person10 = q.one()
    assert person10.name == "person 10"
    with sql.expect(0):
        assert q.one() is person10
    cache, key = q.cache_and_key()
    with sql.expect(0):
        assert person10 is cache.get(key)[0]
    with sql.expect(0):
        assert person_query(Session).one() is person10, "a rebuilt query hits too"

    Session.remove()
    q = person_query(Session)
    with sql.expect(1):
        fresh = q.one()
    assert fresh is not person10
    assert fresh.name == "person 10"
    with sql.expect(0):
        assert q.one() is fresh
    assert cache.get(key)[0] is fresh, "the same Cache now reads the new session's entry"


def test_entry_point_registration_scenario(Session, local_region, sql):
    assert beaker.cache.clsmap["ext:local_session"] is ScopedSessionNamespace
    scenario(Session, sql)


def test_entry_point_cache_is_session_local(Session, local_region):
    cache, _ = person_query(Session).cache_and_key()
    assert isinstance(cache.namespace, ScopedSessionNamespace)
    assert cache.namespace.current_session is Session
    assert cache.namespace.session_local is True


# -- 2. the classic registration --------------------------------------------


@pytest.mark.parametrize("name", ["ext:local_session_classic", "ext:local_session"])
def test_classic_registration_scenario(Session, cache_manager, restore_backend, sql, name):
    restore_backend(name)
    bound = ScopedSessionNamespace.create_session_container(name, Session)
    assert issubclass(bound, ScopedSessionNamespace)
    assert beaker.cache.clsmap[name] is bound
    CacheManager(cache_regions={REGION: {"type": name}})  # no scoped_session key
    cache, _ = person_query(Session).cache_and_key()
    assert type(cache.namespace) is bound
    assert cache.namespace.current_session is Session
    scenario(Session, sql)


def test_classic_override_was_restored():
    """The finalizer of the tests above put the entry point's class back."""
    assert beaker.cache.clsmap["ext:local_session"] is ScopedSessionNamespace
    assert "ext:local_session_classic" not in beaker.cache.clsmap._clsmap


def test_classic_reregistration_binds_the_new_scoped_session(
    engine, cache_manager, make_scoped, restore_backend, sql
):
    """Registering a name again (a new app, a new test) must bind the new session.

    Each round uses a fresh scoped_session and the same region config and
    namespace, as a per-test fixture or an app factory would.
    """
    name = "ext:local_session_rebound"
    restore_backend(name)
    for _ in range(2):
        Session = make_scoped(engine)  # noqa: N806
        ScopedSessionNamespace.create_session_container(name, Session)
        CacheManager(cache_regions={REGION: {"type": name}})
        scenario(Session, sql)
        cache, _key = person_query(Session).cache_and_key()
        assert cache.namespace.current_session is Session
        Session.remove()


# -- 3. objects are not expunged --------------------------------------------


def test_cached_objects_stay_in_the_session(Session, local_region, sql):
    q = person_query(Session)
    with sql.expect(1):
        person10 = q.one()
    assert person10 in Session()
    assert inspect(person10).session is Session()
    assert inspect(person10).persistent
    with sql.expect(0):
        again = q.one()
    assert again is person10
    assert person10 in Session()
    assert inspect(person10).session is Session()
    # The entry is the session's own object, not a detached copy.
    cache, key = q.cache_and_key()
    assert inspect(cache.get(key)[0]).session is Session()
    # Attributes are loaded: reading them is no SQL.
    with sql.expect(0):
        assert (person10.id, person10.name) == (10, "person 10")


def test_the_cache_lives_in_session_info(Session, local_region, sql):
    q = person_query(Session)
    assert _INFO_KEY not in Session().info
    with sql.expect(1):
        person10 = q.one()
    cache, key = q.cache_and_key()
    caches = Session().info[_INFO_KEY]
    assert list(caches) == [cache.namespace.namespace]
    stored_at, expire, entry = caches[cache.namespace.namespace][key.encode()]
    assert entry[0] is person10
    Session.remove()
    assert _INFO_KEY not in Session().info


# -- 4. threads -------------------------------------------------------------


def test_threads_never_see_each_others_entries(Session, local_region, thread_sql):
    barrier = threading.Barrier(2, timeout=30)
    errors: list[BaseException] = []
    people: dict[str, Person] = {}
    sessions: dict[str, OrmSession] = {}
    idents: dict[str, int] = {}

    def sent() -> int:
        me = threading.get_ident()
        return sum(1 for ident, _ in list(thread_sql) if ident == me)

    def expect(count: int, before: int) -> None:
        assert sent() - before == count, f"expected {count} statements, got {sent() - before}"

    def thread_a() -> None:
        idents["A"] = threading.get_ident()
        try:
            q = person_query(Session)
            before = sent()
            people["A"] = q.one()
            expect(1, before)
            sessions["A"] = Session()
            barrier.wait()  # 1: A has cached person 10
            barrier.wait()  # 2: B has run the same query
            before = sent()
            assert q.one() is people["A"]
            cache, key = q.cache_and_key()
            assert cache.get(key)[0] is people["A"]
            expect(0, before)
            assert Session() is sessions["A"]
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
        finally:
            Session.remove()

    def thread_b() -> None:
        idents["B"] = threading.get_ident()
        try:
            barrier.wait()  # 1
            q = person_query(Session)
            cache, key = q.cache_and_key()
            before = sent()
            assert store.read(cache, key) is None, "B must not see A's entry"
            with pytest.raises(KeyError):
                cache.get(key)
            expect(0, before)
            people["B"] = q.one()
            expect(1, before)
            assert q.one() is people["B"]
            expect(1, before)
            sessions["B"] = Session()
            barrier.wait()  # 2
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
        finally:
            Session.remove()

    threads = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]
    assert not any(t.is_alive() for t in threads)

    by_thread = {name: [s for i, s in thread_sql if i == ident] for name, ident in idents.items()}
    assert [len(by_thread["A"]), len(by_thread["B"])] == [1, 1], by_thread
    assert all(s.lstrip().upper().startswith("SELECT") for s in by_thread["A"] + by_thread["B"])
    assert sessions["A"] is not sessions["B"]
    assert people["A"] is not people["B"]
    assert people["A"].name == people["B"].name == "person 10"
    # The main thread's own session never saw either entry.
    cache, key = person_query(Session).cache_and_key()
    assert store.read(cache, key) is None


# -- 5. a plain Session through a callable -----------------------------------


@pytest.fixture
def current_session() -> ContextVar[OrmSession]:
    return ContextVar("current_session")


@pytest.fixture
def plain_region(cache_manager: CacheManager, current_session: ContextVar[OrmSession]) -> None:
    CacheManager(
        cache_regions={REGION: {"type": "ext:local_session", "scoped_session": current_session.get}}
    )


@pytest.fixture
def plain_sessions(engine: Engine) -> Iterator[Callable[[], OrmSession]]:
    """Makes plain (non-scoped) sessions; all are closed at tear-down."""
    made: list[OrmSession] = []

    def make() -> OrmSession:
        session = sessionmaker(bind=engine, query_cls=CachingQuery)()
        made.append(session)
        return session

    yield make
    for session in made:
        session.close()


def test_plain_session_through_a_contextvar(plain_region, current_session, plain_sessions, sql):
    first, second = plain_sessions(), plain_sessions()

    token = current_session.set(first)
    q = person_query(first)
    with sql.expect(1):
        person10 = q.one()
    with sql.expect(0):
        assert q.one() is person10
    cache, key = q.cache_and_key()
    assert cache.get(key)[0] is person10
    assert inspect(person10).session is first
    current_session.reset(token)

    token = current_session.set(second)
    q2 = person_query(second)
    with sql.expect(1):
        other = q2.one()
    with sql.expect(0):
        assert q2.one() is other
    assert other is not person10
    assert inspect(other).session is second
    current_session.reset(token)

    token = current_session.set(first)
    with sql.expect(0):
        assert person_query(first).one() is person10
    current_session.reset(token)

    assert set(first.info[_INFO_KEY]) == set(second.info[_INFO_KEY])


def test_plain_session_in_separate_contexts(plain_region, current_session, plain_sessions, sql):
    """Each ``contextvars`` context (an asyncio task, say) has its own cache."""

    def request() -> Person:
        session = plain_sessions()
        current_session.set(session)
        with sql.expect(1):
            person = person_query(session).one()
        with sql.expect(0):
            assert person_query(session).one() is person
        return person

    a = copy_context().run(request)
    b = copy_context().run(request)
    assert a is not b
    with pytest.raises(LookupError):
        current_session.get()


# -- 6. garbage collection ----------------------------------------------------


class _Tracked(dict):  # type: ignore[type-arg]
    """A dict that can be weakly referenced, to watch the library's dictionaries."""


def test_removed_session_is_garbage_collected(Session, local_region, sql):
    q = person_query(Session)
    # Kept alive on purpose: the Beaker Cache (and its namespace manager,
    # which holds the scoped_session) must not keep the session alive.
    cache, key = q.cache_and_key()
    session = Session()
    # The library setdefaults into these, so it stores into our dicts.
    caches = session.info.setdefault(_INFO_KEY, _Tracked())
    namespace = caches.setdefault(cache.namespace.namespace, _Tracked())
    with sql.expect(1):
        person10 = q.one()
    assert session.info[_INFO_KEY] is caches
    assert key.encode() in namespace, "the entry went into our tracked dict"

    refs = {
        "session": weakref.ref(session),
        "session.info caches": weakref.ref(caches),
        "namespace dictionary": weakref.ref(namespace),
        "cached object": weakref.ref(person10),
    }
    del session, caches, namespace, person10, q
    Session.remove()
    gc.collect()
    alive = [name for name, ref in refs.items() if ref() is not None]
    assert not alive, f"still alive after Session.remove(): {alive}"

    # The next session starts empty, through the very same Cache.
    with sql.expect(0):
        assert store.read(cache, key) is None
    with sql.expect(1):
        assert person_query(Session).one().name == "person 10"


def test_closed_plain_session_is_garbage_collected(plain_region, current_session, engine, sql):
    factory = sessionmaker(bind=engine, query_cls=CachingQuery)
    session = factory()
    token = current_session.set(session)
    q = person_query(session)
    cache, key = q.cache_and_key()
    with sql.expect(1):
        person10 = q.one()
    refs = [weakref.ref(session), weakref.ref(person10)]
    current_session.reset(token)
    session.close()
    del session, person10, q
    gc.collect()
    assert [ref() for ref in refs] == [None, None]

    with factory() as fresh:
        current_session.set(fresh)
        with sql.expect(0):
            assert store.read(cache, key) is None


# -- 7. a missing scoped_session ----------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [{}, {"scoped_session": None}, {"scoped_session": "myapp.Session"}],
    ids=["absent", "none", "not-callable"],
)
def test_missing_scoped_session_is_a_clear_error(Session, cache_manager, sql, extra):
    assert beaker.cache.clsmap["ext:local_session"] is ScopedSessionNamespace
    CacheManager(cache_regions={REGION: {"type": "ext:local_session", **extra}})
    q = person_query(Session, namespace="missing_scoped_session")
    with sql.expect(0), pytest.raises(MissingCacheParameter, match="'scoped_session'"):
        q.one()


# -- 8. uncommitted changes ---------------------------------------------------


def test_flushed_changes_do_not_bypass_a_local_region(
    writable_engine, cache_manager, make_scoped, rw_sql
):
    """core.execute_cached bypasses *shared* regions only.

    A session with unpublished changes (dirty/new/deleted objects, or a flush
    in the current transaction) skips shared regions, but a session-local
    region is private to that session and keeps serving it.
    """
    sql = rw_sql
    Session = make_scoped(writable_engine)  # noqa: N806
    CacheManager(cache_regions={REGION: {"type": "ext:local_session", "scoped_session": Session}})
    q = person_query(Session)
    with sql.expect(1):
        person10 = q.one()

    # Unflushed change: a hit is still served, and no autoflush runs.
    person10.name = "renamed"
    assert writes.has_unpublished_changes(Session())
    with sql.expect(0):
        assert q.one() is person10

    # Flushed change in the open transaction.
    with sql.expect(1):
        Session.flush()
    assert not Session().dirty
    assert writes.has_unpublished_changes(Session())
    with sql.expect(0):
        hit = q.one()
    assert hit is person10
    assert hit.name == "renamed", "the session's own object, with its own change"

    # A miss while changes are unpublished is stored and then served.
    q11 = person_query(Session, "person 11")
    with sql.expect(1):
        person11 = q11.one()
    with sql.expect(0):
        assert q11.one() is person11

    # The same session and a shared region: bypassed, nothing stored.
    shared = (
        Session.query(Person)
        .options(FromCache("default", "shared"))
        .filter(Person.name == "person 12")
    )
    with sql.expect(1):
        shared.one()
    with sql.expect(1):
        shared.one()
    cache, key = shared.cache_and_key()
    assert store.read(cache, key) is None

    # Session.remove() rolls back and takes the private cache with it.
    Session.remove()
    with sql.expect(1):
        again = person_query(Session).one()
    assert again.name == "person 10"
    with sql.expect(1):
        shared = (
            Session.query(Person)
            .options(FromCache("default", "shared"))
            .filter(Person.name == "person 12")
        )
        shared.one()
    with sql.expect(0):
        shared.one()
