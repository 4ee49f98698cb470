"""The benchmark's database: the examples' model with enough people.

``examples/fixture_data.py`` installs 100 people; a 1000-row result needs
more, so this loader writes the same kind of data (same countries, cities
and postal codes, two addresses per person) for ``PEOPLE`` people, with
bulk INSERTs so that setting up takes well under a second.
"""

from __future__ import annotations

from sqlalchemy import Engine, func, insert, select
from sqlalchemy.orm import Session

from examples.model import Address, Base, City, Country, Person, PostalCode

PEOPLE = 1200

_COUNTRIES = [{"id": 1, "name": "United States"}, {"id": 2, "name": "Japan"}]
_CITIES = [
    {"id": 1, "name": "Chicago", "country_id": 1},
    {"id": 2, "name": "New York", "country_id": 1},
    {"id": 3, "name": "Tokyo", "country_id": 2},
]
_CODES = [
    {"id": 1, "code": "60601", "city_id": 1},
    {"id": 2, "code": "60602", "city_id": 1},
    {"id": 3, "code": "10001", "city_id": 2},
    {"id": 4, "code": "10002", "city_id": 2},
    {"id": 5, "code": "100-0001", "city_id": 3},
]


def install(engine: Engine, people: int = PEOPLE) -> int:
    """Create the tables and ``people`` people; return the Person count."""
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        existing = session.scalar(select(func.count(Person.id)))
        if existing:
            return int(existing)
        session.execute(insert(Country), _COUNTRIES)
        session.execute(insert(City), _CITIES)
        session.execute(insert(PostalCode), _CODES)
        session.execute(
            insert(Person),
            [{"id": n, "name": f"person {n:04d}"} for n in range(1, people + 1)],
        )
        addresses = []
        for n in range(1, people + 1):
            addresses.append(
                {"person_id": n, "street": f"{n} Main Street", "postal_code_id": n % 5 + 1}
            )
            addresses.append(
                {"person_id": n, "street": f"{n} Side Street", "postal_code_id": (n + 2) % 5 + 1}
            )
        session.execute(insert(Address), addresses)
        session.commit()
    return people
