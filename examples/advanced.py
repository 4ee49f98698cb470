"""Query caching and relationship caching together, plus invalidation.

``load_name_range()`` caches a range of people with
``FromCache("default", "name_range")`` and, with
``RelationshipCache("default", "by_person", Person.addresses)``, the lazy
load of each person's addresses. The steps show a cached query, lazy
loads that go to the database once and then come from the relationship
cache (also in a new session), a second range with its own entry, and
``invalidate=True`` forcing the SQL to run again.

Run it with ``python -m examples.advanced``.
"""

from __future__ import annotations

from caching_query import FromCache, RelationshipCache

from .environment import Session, cache_manager, report, sql
from .fixture_data import PEOPLE
from .model import Person


def load_name_range(start: int, end: int, invalidate: bool = False) -> list[Person]:
    """The people named "person <start>" to "person <end>", cached.

    Names compare as strings, so "person 100" falls between "person 10"
    and "person 11".
    """
    q = (
        Session.query(Person)
        .filter(Person.name.between(f"person {start:02d}", f"person {end:02d}"))
        .options(
            FromCache("default", "name_range"),
            RelationshipCache("default", "by_person", Person.addresses),
        )
    )
    if invalidate:
        q.invalidate()
    return q.all()


def expected_names(start: int, end: int) -> list[str]:
    low, high = f"person {start:02d}", f"person {end:02d}"
    every = (f"person {number:02d}" for number in range(1, PEOPLE + 1))
    return sorted(name for name in every if low <= name <= high)


def names(people: list[Person]) -> list[str]:
    return sorted(person.name for person in people)


def touch_addresses(people: list[Person]) -> int:
    """Load every person's addresses and check they are that person's own.

    Returns the number of addresses seen.
    """
    seen = 0
    for person in people:
        number = int(person.name.split()[1])
        streets = [address.street for address in person.addresses]
        assert streets == [f"{number} Main Street", f"{number} Side Street"], (person, streets)
        seen += len(streets)
    return seen


def main() -> None:
    # Empty both namespaces (memory and file regions) and start a new session.
    for namespace in ("name_range", "by_person"):
        cache_manager.get_cache_region(namespace, "default").clear()
    Session.remove()
    sql.take()

    in_2_12 = expected_names(2, 12)

    people = load_name_range(2, 12)
    report(1, "load person 02..12", 1)
    print("   ", ", ".join(names(people)))
    assert names(people) == in_2_12

    people = load_name_range(2, 12)
    report(2, "load person 02..12 again", 0)
    assert names(people) == in_2_12

    people = load_name_range(2, 12)
    addresses = touch_addresses(people)
    report(
        3,
        f"load person 02..12 again and touch .addresses ({addresses} addresses)",
        len(in_2_12),
        note="people from cache, one lazy load per person",
    )
    assert addresses == 2 * len(in_2_12)
    for person in people:
        print(f"    {person.name}: " + "; ".join(a.street for a in person.addresses))

    people = load_name_range(2, 12)
    addresses = touch_addresses(people)
    report(4, "once more, touching .addresses", 0)
    assert addresses == 2 * len(in_2_12)

    Session.remove()
    people = load_name_range(2, 12)
    addresses = touch_addresses(people)
    report(
        5,
        "Session.remove(), load person 02..12 and touch .addresses",
        0,
        note="people from cache, addresses from the relationship cache",
    )
    assert names(people) == in_2_12
    assert addresses == 2 * len(in_2_12)

    people = load_name_range(25, 40)
    report(6, "load person 25..40 (a range of its own)", 1)
    print("   ", ", ".join(names(people)))
    assert names(people) == expected_names(25, 40)

    people = load_name_range(2, 12, invalidate=True)
    report(7, "load person 02..12 with invalidate=True", 1, note="entry invalidated")
    assert names(people) == in_2_12

    Session.remove()
    people = load_name_range(2, 12)
    addresses = touch_addresses(people)
    report(
        8,
        "Session.remove(), load person 02..12 and touch .addresses",
        0,
        note="people from the new entry, addresses from the relationship cache",
    )
    assert names(people) == in_2_12
    assert addresses == 2 * len(in_2_12)

    Session.remove()
    print("ok")


if __name__ == "__main__":
    main()
