"""One step of tests/test_cross_process.py, run in a process of its own.

    python -m tests.cross_process_worker query|invalidate

The cache and the database come from the environment, as for the examples
(``CACHE_BACKEND``, ``CACHE_URL``, ``CACHE_DIR``, ``DATABASE_URL``: see
examples/environment.py). The last line of stdout is a JSON report: the SQL
statements each part ran, the rows, the cache keys this process derived, and
``hash()`` of a string, which shows PYTHONHASHSEED was in effect.

``examples.environment`` (engine, regions, Session) is imported in ``main()``
only: the test module imports this one for its constants, and the pytest
process must not configure the examples' regions or database.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from sqlalchemy.orm import Session as OrmSession

from caching_query import FromCache, RelationshipCache
from examples.model import Person

IDS = (10, 14)
GET_ID = 42


def people_query(session: OrmSession) -> Any:
    return (
        session.query(Person)
        .filter(Person.id.between(*IDS))
        .order_by(Person.id)
        .options(
            FromCache("default", "cross_process_people"),
            RelationshipCache("default", "cross_process_addresses", Person.addresses),
        )
    )


def query(sessions: Any, sql: Any) -> dict[str, Any]:
    session = sessions()
    try:
        people = people_query(session).all()
        query_sql = sql.take()
        rows = [[p.id, p.name] for p in people]
        addresses = [[a.street for a in p.addresses] for p in people]  # lazy loads
        lazy_sql = sql.take()
        person = session.get(Person, GET_ID, options=[FromCache("default", "cross_process_get")])
        get_sql = sql.take()
        return {
            "query_sql": query_sql,
            "lazy_sql": lazy_sql,
            "get_sql": get_sql,
            "rows": rows,
            "addresses": addresses,
            "got": [person.id, person.name] if person is not None else None,
        }
    finally:
        sessions.remove()


def invalidate(sessions: Any, sql: Any) -> dict[str, Any]:
    session = sessions()
    try:
        people_query(session).invalidate()
        return {"invalidate_sql": sql.take()}
    finally:
        sessions.remove()


def main(action: str) -> None:
    from examples.environment import Session, sql

    session = Session()
    try:
        key = people_query(session).cache_and_key()[1]
    finally:
        Session.remove()
    sql.take()
    report = {"query": query, "invalidate": invalidate}[action](Session, sql)
    report.update(action=action, key=key, hash=hash("caching_query"))
    print(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:])
