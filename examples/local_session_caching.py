"""A cache that lives and dies with the current Session.

The "local_session" region stores its entries in the scoped Session's
``info`` dictionary: a repeated query is answered without SQL and returns
the session's very own objects (identity is preserved), and
``Session.remove()`` takes the cache away with the session.

Run it with ``python -m examples.local_session_caching``.
"""

from __future__ import annotations

from caching_query import FromCache

from .environment import Session, report, sql
from .model import Person


def person10_query():
    return (
        Session.query(Person)
        .options(FromCache("local_session", "by_name"))
        .filter(Person.name == "person 10")
    )


def main() -> None:
    # A fresh session has an empty local cache.
    Session.remove()
    sql.take()

    q = person10_query()
    person10 = q.one()
    report(1, f"load {person10!r} with FromCache('local_session', 'by_name')", 1)
    assert person10.name == "person 10"

    again = q.one()
    report(2, "same query again", 0)
    assert again is person10

    cache, key = q.cache_and_key()
    cached = cache.get(key)
    report(3, "read the entry with q.cache_and_key(): cache.get(key)[0]", 0, note="")
    assert person10 is cached[0], "the local cache must hold the session's own object"
    print("    the cached object is the session's own person10:", cached[0] is person10)

    rebuilt = person10_query().one()
    report(4, "the query built anew in the same session", 0)
    assert rebuilt is person10

    Session.remove()
    sql.take()
    fresh = person10_query().one()
    report(5, "Session.remove(), then the same query in the new session", 1, note="cache removed")
    assert fresh.name == "person 10"
    assert fresh is not person10

    fresh_again = person10_query().one()
    report(6, "same query again in the new session", 0)
    assert fresh_again is fresh

    Session.remove()
    print("ok")


if __name__ == "__main__":
    main()
