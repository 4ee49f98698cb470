"""Person -> Address -> PostalCode -> City -> Country, the examples' model."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Country(Base):
    __tablename__ = "country"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))

    def __repr__(self) -> str:
        return f"Country({self.name!r})"


class City(Base):
    __tablename__ = "city"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    country_id: Mapped[int] = mapped_column(ForeignKey("country.id"))
    country: Mapped[Country] = relationship()

    def __repr__(self) -> str:
        return f"City({self.name!r})"


class PostalCode(Base):
    __tablename__ = "postal_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(10))
    city_id: Mapped[int] = mapped_column(ForeignKey("city.id"))
    city: Mapped[City] = relationship()

    @property
    def country(self) -> Country:
        return self.city.country

    def __repr__(self) -> str:
        return f"PostalCode({self.code!r})"


class Address(Base):
    __tablename__ = "address"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    street: Mapped[str] = mapped_column(String(200))
    postal_code_id: Mapped[int] = mapped_column(ForeignKey("postal_code.id"))
    postal_code: Mapped[PostalCode] = relationship()

    @property
    def city(self) -> City:
        return self.postal_code.city

    @property
    def country(self) -> Country:
        return self.postal_code.country

    def __str__(self) -> str:
        return f"{self.street}\t{self.city.name}, {self.postal_code.code}\t{self.country.name}"


class Person(Base):
    __tablename__ = "person"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    addresses: Mapped[list[Address]] = relationship(order_by=Address.id, collection_class=list)

    def __init__(self, name: str, *addresses: Address) -> None:
        self.name = name
        self.addresses = list(addresses)

    def format_full(self) -> str:
        return "\t".join([str(self), *[str(a) for a in self.addresses]])

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"Person({self.name!r})"
