"""The basics: cache a query's results with ``FromCache``.

Shows that the first run emits SQL and later runs (even in a fresh
session) are served from the cache, that different bound values get
their own cache entry, that a query can be cached under an explicit key
with ``with_cache_key()``, and that ``invalidate()`` drops an entry so the
next run goes to the database again.

Run it with ``python -m examples.helloworld``.
"""

from __future__ import annotations

from caching_query import FromCache

from .environment import Session, report, sql
from .fixture_data import PEOPLE
from .model import Person


def names(people: list[Person]) -> list[str]:
    return sorted(person.name for person in people)


def expected(start: int, end: int) -> list[str]:
    """The names BETWEEN compares as strings: "person 100" sorts before "person 11"."""
    low, high = f"person {start:02d}", f"person {end:02d}"
    return sorted(
        name
        for name in (f"person {number:02d}" for number in range(1, PEOPLE + 1))
        if low <= name <= high
    )


def main() -> None:
    def query_02_12():
        return (
            Session.query(Person)
            .filter(Person.name.between("person 02", "person 12"))
            .options(FromCache("default"))
        )

    def query_05_15():
        return (
            Session.query(Person)
            .filter(Person.name.between("person 05", "person 15"))
            .options(FromCache("default"))
        )

    def query_u2andu3():
        return (
            Session.query(Person)
            .filter(Person.name.in_(["person 02", "person 03"]))
            .with_cache_key("u2andu3")
        )

    # Start from empty entries: file/memcached/redis regions outlive the process.
    for query in (query_02_12(), query_05_15(), query_u2andu3()):
        query.invalidate()
    Session.remove()
    sql.take()

    people = query_02_12().all()
    report(1, "load person 02..12", 1)
    print("   ", ", ".join(names(people)))
    assert names(people) == expected(2, 12)

    people = query_02_12().all()
    report(2, "same query again", 0)
    assert names(people) == expected(2, 12)

    Session.remove()
    people = query_02_12().all()
    report(3, "same query in a fresh session (after Session.remove())", 0)
    assert names(people) == expected(2, 12)

    people = query_05_15().all()
    report(4, "load person 05..15 (other bound values, its own entry)", 1)
    print("   ", ", ".join(names(people)))
    assert names(people) == expected(5, 15)

    people = query_05_15().all()
    report(5, "person 05..15 again", 0)
    assert names(people) == expected(5, 15)

    people = query_u2andu3().all()
    report(6, "load person 02, 03 cached under the key 'u2andu3'", 1)
    print("   ", ", ".join(names(people)))
    assert names(people) == ["person 02", "person 03"]

    Session.remove()
    people = query_u2andu3().all()
    report(7, "'u2andu3' again in a fresh session", 0)
    assert names(people) == ["person 02", "person 03"]

    query = query_02_12()
    query.invalidate()
    report(8, "invalidate() the person 02..12 entry", 0, note="")

    people = query.all()
    report(9, "load person 02..12 after invalidate()", 1)
    assert names(people) == expected(2, 12)

    people = query_02_12().all()
    report(10, "person 02..12 again", 0)
    assert names(people) == expected(2, 12)

    Session.remove()
    print("ok")


if __name__ == "__main__":
    main()
