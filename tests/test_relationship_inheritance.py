"""RelationshipCache on relationships a subclass inherits from its base.

``Vehicle`` declares ``maker`` (many-to-one) and ``parts`` (one-to-many);
``Car`` (and its subclass ``SportsCar``) and ``Truck`` inherit both. The
lazy loader reports such a load as a load of ``Vehicle``'s relationship,
whichever subclass the instance is, so ``RelationshipCache(..., Car.maker)``
must cover it as ``RelationshipCache(..., Vehicle.maker)`` does. Both
hierarchies are tried: single-table and joined-table inheritance.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from beaker.cache import CacheManager
from sqlalchemy import ForeignKey, MetaData, String, create_engine, event, inspect, select, update
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    selectinload,
    sessionmaker,
    with_polymorphic,
)

import caching_query
from caching_query import CachingQuery, RelationshipCache, install
from tests.conftest import SQLCounter

# -- single-table inheritance ---------------------------------------------------


class SingleBase(DeclarativeBase):
    pass


class SMaker(SingleBase):
    __tablename__ = "s_maker"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20))


class SPart(SingleBase):
    __tablename__ = "s_part"
    id: Mapped[int] = mapped_column(primary_key=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("s_vehicle.id"))
    name: Mapped[str] = mapped_column(String(20))


class SVehicle(SingleBase):
    __tablename__ = "s_vehicle"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(20))
    maker_id: Mapped[int] = mapped_column(ForeignKey("s_maker.id"))
    maker: Mapped[SMaker] = relationship()
    parts: Mapped[list[SPart]] = relationship(order_by=SPart.id)
    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "vehicle"}


class SCar(SVehicle):
    __mapper_args__ = {"polymorphic_identity": "car"}


class SSportsCar(SCar):
    __mapper_args__ = {"polymorphic_identity": "sports_car"}


class STruck(SVehicle):
    __mapper_args__ = {"polymorphic_identity": "truck"}


# -- joined-table inheritance ---------------------------------------------------


class JoinedBase(DeclarativeBase):
    pass


class JMaker(JoinedBase):
    __tablename__ = "j_maker"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20))


class JPart(JoinedBase):
    __tablename__ = "j_part"
    id: Mapped[int] = mapped_column(primary_key=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("j_vehicle.id"))
    name: Mapped[str] = mapped_column(String(20))


class JVehicle(JoinedBase):
    __tablename__ = "j_vehicle"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(20))
    maker_id: Mapped[int] = mapped_column(ForeignKey("j_maker.id"))
    maker: Mapped[JMaker] = relationship()
    parts: Mapped[list[JPart]] = relationship(order_by=JPart.id)
    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "vehicle"}


class JCar(JVehicle):
    __tablename__ = "j_car"
    id: Mapped[int] = mapped_column(ForeignKey("j_vehicle.id"), primary_key=True)
    doors: Mapped[int] = mapped_column(default=4)
    __mapper_args__ = {"polymorphic_identity": "car"}


class JSportsCar(JCar):
    __tablename__ = "j_sports_car"
    id: Mapped[int] = mapped_column(ForeignKey("j_car.id"), primary_key=True)
    top_speed: Mapped[int] = mapped_column(default=300)
    __mapper_args__ = {"polymorphic_identity": "sports_car"}


class JTruck(JVehicle):
    __tablename__ = "j_truck"
    id: Mapped[int] = mapped_column(ForeignKey("j_vehicle.id"), primary_key=True)
    payload: Mapped[int] = mapped_column(default=10)
    __mapper_args__ = {"polymorphic_identity": "truck"}


# -- a subclass redeclaring the base's relationship (mapping only, no table) -----


class RedeclaredBase(DeclarativeBase):
    pass


class RMaker(RedeclaredBase):
    __tablename__ = "r_maker"
    id: Mapped[int] = mapped_column(primary_key=True)


class RVehicle(RedeclaredBase):
    __tablename__ = "r_vehicle"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    maker_id: Mapped[int] = mapped_column(ForeignKey("r_maker.id"))
    maker: Mapped[RMaker] = relationship()
    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "vehicle"}


class RCar(RVehicle):
    __mapper_args__ = {"polymorphic_identity": "car"}


class RVan(RVehicle):
    maker: Mapped[RMaker] = relationship(viewonly=True)
    __mapper_args__ = {"polymorphic_identity": "van"}


@dataclass(frozen=True)
class Hierarchy:
    metadata: MetaData
    Maker: Any
    Part: Any
    Vehicle: Any
    Car: Any
    SportsCar: Any
    Truck: Any


HIERARCHIES = {
    "single": Hierarchy(SingleBase.metadata, SMaker, SPart, SVehicle, SCar, SSportsCar, STruck),
    "joined": Hierarchy(JoinedBase.metadata, JMaker, JPart, JVehicle, JCar, JSportsCar, JTruck),
}

MAKERS = {1: "Ford", 2: "Volvo", 3: "MAN"}
# id: (class name, maker id, part names)
VEHICLES = {
    1: ("Car", 1, ["wheel 1a", "wheel 1b"]),
    2: ("Car", 2, ["wheel 2a"]),
    3: ("SportsCar", 1, []),
    4: ("Truck", 3, ["axle 4a"]),
    5: ("Truck", 2, ["axle 5a", "axle 5b"]),
}
CARS = [1, 2, 3]  # what a query of Car loads: cars and sports cars
TRUCKS = [4, 5]


@dataclass
class World:
    models: Hierarchy
    Session: sessionmaker[Session]
    sql: SQLCounter
    engine: Any


@pytest.fixture(params=sorted(HIERARCHIES))
def world(
    request: pytest.FixtureRequest, tmp_path: Any, cache_manager: CacheManager
) -> Iterator[World]:
    models = HIERARCHIES[request.param]
    engine = create_engine(f"sqlite:///{tmp_path / 'vehicles.db'}")
    models.metadata.create_all(engine)
    with Session(engine) as s:
        s.add_all([models.Maker(id=i, name=name) for i, name in MAKERS.items()])
        part_id = 0
        for vid, (cls_name, maker_id, parts) in VEHICLES.items():
            vehicle = getattr(models, cls_name)(id=vid, name=f"vehicle {vid}", maker_id=maker_id)
            s.add(vehicle)
            for name in parts:
                part_id += 1
                s.add(models.Part(id=part_id, vehicle_id=vid, name=name))
        s.commit()
    Sess = sessionmaker(bind=engine, query_cls=CachingQuery)
    install(Sess)
    counter = SQLCounter(engine)
    yield World(models, Sess, counter, engine)
    counter.close()
    engine.dispose()


def expected(attr: str, ids: list[int]) -> list[tuple[int, Any]]:
    if attr == "maker":
        return [(vid, MAKERS[VEHICLES[vid][1]]) for vid in ids]
    return [(vid, VEHICLES[vid][2]) for vid in ids]


def lazy_statements(attr: str, ids: list[int]) -> int:
    """Statements the lazy loads of ``ids`` send in one session without the cache.

    A many-to-one whose target is already in the session is not loaded
    again (the identity map answers), so it costs one per distinct maker.
    """
    if attr == "maker":
        return len({VEHICLES[vid][1] for vid in ids})
    return len(ids)


def touch(vehicle: Any, attr: str) -> Any:
    value = getattr(vehicle, attr)
    return value.name if attr == "maker" else [part.name for part in value]


def run(
    world: World,
    query: Callable[[Session], list[Any]],
    attr: str,
    lazy_sql: int,
) -> list[tuple[int, Any]]:
    """Load parents (one statement), then touch ``attr`` on each (``lazy_sql`` statements)."""
    with world.Session() as s:
        with world.sql.expect(1):
            parents = query(s)
        with world.sql.expect(lazy_sql):
            return [(v.id, touch(v, attr)) for v in parents]


def option(world: World, named_on: str, attr: str, namespace: str = "byid") -> RelationshipCache:
    return RelationshipCache("default", namespace, getattr(getattr(world.models, named_on), attr))


# -- the report: Car.maker / Car.parts never hit ------------------------------------------------


@pytest.mark.parametrize("attr", ["maker", "parts"])
@pytest.mark.parametrize("named_on", ["Car", "Vehicle"])
def test_second_pass_is_served_from_cache(world, named_on, attr):
    """Named on the subclass or on the base, the second pass sends no lazy load."""
    opt = option(world, named_on, attr)
    Car = world.models.Car

    def cars(s: Session) -> list[Any]:
        return s.query(Car).order_by(Car.id).options(opt).all()

    first = run(world, cars, attr, lazy_sql=lazy_statements(attr, CARS))
    assert first == expected(attr, CARS)
    second = run(world, cars, attr, lazy_sql=0)
    assert second == first


@pytest.mark.parametrize("attr", ["maker", "parts"])
def test_reported_case_hits_on_every_later_run(world, attr):
    """``RelationshipCache(..., Car.maker)`` used to send every lazy load on every run."""
    opt = option(world, "Car", attr)
    Car = world.models.Car

    def cars(s: Session) -> list[Any]:
        return s.query(Car).order_by(Car.id).options(opt).all()

    run(world, cars, attr, lazy_sql=lazy_statements(attr, CARS))
    for _ in range(2):
        assert run(world, cars, attr, lazy_sql=0) == expected(attr, CARS)


@pytest.mark.parametrize("attr", ["maker", "parts"])
@pytest.mark.parametrize("named_on", ["Car", "Vehicle"])
def test_2_0_style_select(world, named_on, attr):
    opt = option(world, named_on, attr)
    Car = world.models.Car
    stmt = select(Car).order_by(Car.id).options(opt)

    def cars(s: Session) -> list[Any]:
        return list(s.scalars(stmt))

    run(world, cars, attr, lazy_sql=lazy_statements(attr, CARS))
    assert run(world, cars, attr, lazy_sql=0) == expected(attr, CARS)


@pytest.mark.parametrize("attr", ["maker", "parts"])
def test_base_option_covers_a_subclass_of_the_subclass(world, attr):
    """A ``SportsCar`` is a ``Car``: its lazy loads are covered by either spelling."""
    SportsCar = world.models.SportsCar
    for named_on in ("Car", "Vehicle", "SportsCar"):
        opt = option(world, named_on, attr, namespace=f"ns_{named_on}")

        def sports(s: Session, opt: RelationshipCache = opt) -> list[Any]:
            return s.query(SportsCar).options(opt).all()

        run(world, sports, attr, lazy_sql=1)
        assert run(world, sports, attr, lazy_sql=0) == expected(attr, [3])


@pytest.mark.parametrize("attr", ["maker", "parts"])
@pytest.mark.parametrize("named_on", ["Car", "Vehicle"])
def test_polymorphic_query_of_the_base(world, named_on, attr):
    """The option names a relationship, not instances: ``Car.maker`` is ``Vehicle.maker``.

    So on a query of ``Vehicle`` it covers the trucks that query loaded too;
    the entries are keyed by the lazy load's own statement and values, so
    sharing them between subclasses is never wrong.
    """
    opt = option(world, named_on, attr)
    Vehicle = world.models.Vehicle
    everyone = sorted(VEHICLES)

    def vehicles(s: Session) -> list[Any]:
        return s.query(Vehicle).order_by(Vehicle.id).options(opt).all()

    first = run(world, vehicles, attr, lazy_sql=lazy_statements(attr, everyone))
    assert first == expected(attr, everyone)
    assert run(world, vehicles, attr, lazy_sql=0) == first


@pytest.mark.parametrize("attr", ["maker", "parts"])
def test_option_on_another_relationship_is_not_used(world, attr):
    """Naming ``Car.parts`` does not cache ``car.maker``, and the other way round."""
    other = "parts" if attr == "maker" else "maker"
    opt = option(world, "Car", other)
    Car = world.models.Car

    def cars(s: Session) -> list[Any]:
        return s.query(Car).order_by(Car.id).options(opt).all()

    for _ in range(2):
        assert run(world, cars, attr, lazy_sql=lazy_statements(attr, CARS)) == expected(attr, CARS)


@pytest.mark.parametrize("named_on", ["Car", "Vehicle"])
def test_selectin_load_through_an_aliased_with_polymorphic(world, named_on):
    """An eager load's path names the aliased entity, not a mapper (this used to raise)."""
    m = world.models
    opt = option(world, named_on, "parts")
    everyone = with_polymorphic(m.Vehicle, [m.Car, m.Truck], aliased=True)
    stmt = select(everyone).order_by(everyone.id).options(selectinload(everyone.parts), opt)
    for count in (2, 1):  # the vehicles, and their parts: from the cache the second time
        with world.Session() as s, world.sql.expect(count):
            rows = [(v.id, [p.name for p in v.parts]) for v in s.scalars(stmt)]
        assert rows == expected("parts", sorted(VEHICLES))


# -- distinct parents, distinct entries ---------------------------------------------------------


@pytest.mark.parametrize("named_on", ["Car", "Vehicle"])
def test_cars_with_different_makers_never_share_an_entry(world, named_on):
    Car = world.models.Car
    opt = option(world, named_on, "maker")

    def one(vid: int) -> Callable[[Session], list[Any]]:
        return lambda s: s.query(Car).filter(Car.id == vid).options(opt).all()

    assert run(world, one(1), "maker", lazy_sql=1) == [(1, "Ford")]
    # car 2's maker is another entry: a miss, not car 1's maker
    assert run(world, one(2), "maker", lazy_sql=1) == [(2, "Volvo")]
    assert run(world, one(1), "maker", lazy_sql=0) == [(1, "Ford")]
    assert run(world, one(2), "maker", lazy_sql=0) == [(2, "Volvo")]
    # a car pointed at another maker looks up that maker's entry
    with world.engine.begin() as conn:
        conn.execute(_repoint(world, 2, 3))
    assert run(world, one(2), "maker", lazy_sql=1) == [(2, "MAN")]
    assert run(world, one(2), "maker", lazy_sql=0) == [(2, "MAN")]


def _repoint(world: World, vehicle_id: int, maker_id: int) -> Any:
    table = inspect(world.models.Vehicle).local_table
    return update(table).where(table.c.id == vehicle_id).values(maker_id=maker_id)


@pytest.mark.parametrize("named_on", ["Car", "Vehicle"])
def test_cars_with_different_parts_never_share_an_entry(world, named_on):
    Car = world.models.Car
    opt = option(world, named_on, "parts")

    def one(vid: int) -> Callable[[Session], list[Any]]:
        return lambda s: s.query(Car).filter(Car.id == vid).options(opt).all()

    for lazy_sql in (1, 0):
        assert run(world, one(1), "parts", lazy_sql) == [(1, ["wheel 1a", "wheel 1b"])]
        assert run(world, one(2), "parts", lazy_sql) == [(2, ["wheel 2a"])]
        assert run(world, one(3), "parts", lazy_sql) == [(3, [])]


@pytest.mark.parametrize("named_on", ["Car", "Vehicle"])
def test_invalidation_of_a_subclass_collection(world, named_on):
    Car, Part = world.models.Car, world.models.Part
    opt = option(world, named_on, "parts")

    def cars(s: Session) -> list[Any]:
        return s.query(Car).order_by(Car.id).options(opt).all()

    run(world, cars, "parts", lazy_sql=3)
    with world.engine.begin() as conn:
        conn.execute(inspect(Part).local_table.insert().values(id=99, vehicle_id=2, name="spare 2"))
    # not automatically invalidated here: the stored collection is served
    assert run(world, cars, "parts", lazy_sql=0) == expected("parts", CARS)
    caching_query.clear("default", "byid")
    fresh = run(world, cars, "parts", lazy_sql=3)
    assert fresh == [
        (1, ["wheel 1a", "wheel 1b"]),
        (2, ["wheel 2a", "spare 2"]),
        (3, []),
    ]
    assert run(world, cars, "parts", lazy_sql=0) == fresh


# -- how the match is made ------------------------------------------------------------------------


@pytest.mark.parametrize("attr", ["maker", "parts"])
def test_lazy_loader_reports_the_declaring_mapper(world, attr):
    """Canary: SQLAlchemy restates an inherited relationship's path in terms of
    the class declaring it, whatever the instance's class; that is what
    ``RelationshipCache.matches()`` is handed."""
    Car, Vehicle = world.models.Car, world.models.Vehicle
    seen: list[Any] = []

    def record(state: Any) -> None:
        if state.is_relationship_load and state.lazy_loaded_from is not None:
            seen.append(state.loader_strategy_path)

    event.listen(world.Session, "do_orm_execute", record, insert=True)
    try:
        with world.Session() as s:
            car = s.query(Car).filter(Car.id == 1).one()
            touch(car, attr)
    finally:
        event.remove(world.Session, "do_orm_execute", record)
    assert len(seen) == 1
    mapper, prop = seen[0][-2], seen[0][-1]
    assert mapper is inspect(Vehicle) and prop.key == attr
    for named_on in ("Car", "Vehicle", "SportsCar", "Truck"):
        assert option(world, named_on, attr).matches(mapper, prop.key), named_on


def test_matches(world):
    m = world.models
    car_maker = option(world, "Car", "maker")
    vehicle_maker = option(world, "Vehicle", "maker")
    for opt in (car_maker, vehicle_maker):
        assert opt.matches(inspect(m.Vehicle), "maker")
        assert opt.matches(inspect(m.Car), "maker")
        assert opt.matches(inspect(m.SportsCar), "maker")
        assert not opt.matches(inspect(m.Vehicle), "parts")
        assert not opt.matches(inspect(m.Maker), "maker")
        assert not opt.matches(inspect(m.Part), "maker")


def test_matches_a_redeclared_relationship_on_its_own_class_only():
    van_maker = RelationshipCache("default", "byid", RVan.maker)
    assert RVan.maker.property is not RVehicle.maker.property
    assert van_maker.matches(inspect(RVan), "maker")
    assert not van_maker.matches(inspect(RVehicle), "maker")  # a car's or a truck's
    # the base's (and so a sibling's) option covers it, as a subclass's relationship
    for named in (RVehicle.maker, RCar.maker):
        base_maker = RelationshipCache("default", "byid", named)
        assert base_maker.matches(inspect(RVehicle), "maker")
        assert base_maker.matches(inspect(RVan), "maker")


def test_repr_and_cache_key_keep_the_name_given(world):
    m = world.models
    car_maker = option(world, "Car", "maker")
    vehicle_maker = option(world, "Vehicle", "maker")
    assert repr(car_maker) == f"RelationshipCache('default', 'byid', {m.Car.__name__}.maker)"
    assert car_maker.cache_key_parts() != vehicle_maker.cache_key_parts()
