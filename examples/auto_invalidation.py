"""Automatic invalidation: a committed write makes the cached results it affects misses.

One line, ``caching_query.auto_invalidate(Session)``, and a cached query
serves the new rows right after any session, connection or process
sharing the cache commits a write to a table the query read -- and stays
a hit after writes to other tables, or writes that were rolled back.

Run it with ``python -m examples.auto_invalidation`` (any ``CACHE_BACKEND``).
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session as PlainSession

import caching_query
from caching_query import FromCache

from .environment import Session, cache_manager, engine, report
from .model import Address, Person

caching_query.auto_invalidate(Session, cache_manager)


def person_10() -> str:
    query = Session.query(Person).filter(Person.id == 10).options(FromCache("default", "auto"))
    name = query.one().name
    Session.remove()
    return name


def rename(name: str) -> None:
    # A plain session of another factory: it needs no cache set-up to be seen
    with PlainSession(engine) as session:
        session.execute(update(Person).where(Person.id == 10).values(name=name))
        session.commit()


def main() -> None:
    original = person_10()
    report(1, f"load person 10 ({original})", 1)
    assert person_10() == original
    report(2, "load it again", 0)

    rename("person ten")
    report(3, "another session renames person 10 and commits", 1)
    assert person_10() == "person ten"
    report(4, "load it again: the commit made the entry a miss", 1)
    assert person_10() == "person ten"
    report(5, "and again", 0)

    with PlainSession(engine) as session:
        session.execute(update(Address).where(Address.id == 1).values(street="1 New St"))
        session.commit()
        session.execute(update(Person).where(Person.id == 10).values(name="never"))
        session.rollback()
    report(6, "a committed write to address, a rolled-back one to person", 2)
    assert person_10() == "person ten"
    report(7, "load person 10 again: still a hit", 0)

    rename(original)
    report(8, "rename person 10 back", 1)


if __name__ == "__main__":
    main()
