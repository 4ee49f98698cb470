"""Fixture data for the examples' model: 100 people, each with two addresses."""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from .model import Address, Base, City, Country, Person, PostalCode

PEOPLE = 100


def install(engine: Engine) -> bool:
    """Create the tables and rows unless they exist; True when it created them."""
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        if session.scalar(select(Person.id).limit(1)) is not None:
            return False
        countries = [Country(id=1, name="United States"), Country(id=2, name="Japan")]
        cities = [
            City(id=1, name="Chicago", country=countries[0]),
            City(id=2, name="New York", country=countries[0]),
            City(id=3, name="Tokyo", country=countries[1]),
        ]
        codes = [
            PostalCode(id=1, code="60601", city=cities[0]),
            PostalCode(id=2, code="60602", city=cities[0]),
            PostalCode(id=3, code="10001", city=cities[1]),
            PostalCode(id=4, code="10002", city=cities[1]),
            PostalCode(id=5, code="100-0001", city=cities[2]),
        ]
        for number in range(1, PEOPLE + 1):
            session.add(
                Person(
                    f"person {number:02d}",
                    Address(street=f"{number} Main Street", postal_code=codes[number % 5]),
                    Address(street=f"{number} Side Street", postal_code=codes[(number + 2) % 5]),
                )
            )
        session.commit()
    return True
