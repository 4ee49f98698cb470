"""Cache lazy loads of relationships with ``RelationshipCache``.

Every person is loaded with their addresses (``joinedload``); printing an
address walks Address.postal_code -> PostalCode.city -> City.country, each
a lazy load. ``RelationshipCache`` options serve those lazy loads from the
"default" region, so once they are cached, loading and printing everyone
again in a new session takes exactly one SQL statement: the people query.

Run it with ``python -m examples.relationship_caching``.
"""

from __future__ import annotations

from sqlalchemy.orm import joinedload

from caching_query import RelationshipCache

from .environment import Session, cache_manager, report, sql
from .fixture_data import PEOPLE
from .model import Address, City, Person, PostalCode

cache_address_bits = (
    RelationshipCache("default", "byid", PostalCode.city)
    .and_(RelationshipCache("default", "byid", City.country))
    .and_(RelationshipCache("default", "byid", Address.postal_code))
)


def load_and_print_everyone() -> list[str]:
    people = Session.query(Person).options(joinedload(Person.addresses), cache_address_bits)
    lines = [person.format_full() for person in people]
    for line in lines:
        print("   ", line)
    return lines


def main() -> None:
    # Start with an empty "byid" namespace (memory and file regions).
    cache_manager.get_cache_region("byid", "default").clear()
    Session.remove()
    sql.take()

    first = load_and_print_everyone()
    # The people query, then one lazy load per distinct postal code (5), city
    # (3) and country (2): later many-to-one loads of an object the session
    # already holds are answered by its identity map without any query.
    report(1, "load everyone with addresses and print them", 1 + 5 + 3 + 2, note="")
    assert len(first) == PEOPLE

    Session.remove()
    second = load_and_print_everyone()
    report(2, "Session.remove(), load and print everyone again", 1, note="address bits from cache")
    assert second == first

    Session.remove()
    print("ok")


if __name__ == "__main__":
    main()
