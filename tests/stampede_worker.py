"""One of the processes of tests/test_stampede.py: misses one key at a set moment.

    python -m tests.stampede_worker '<json settings>'

Settings: ``region`` (the region's Beaker config, its own ``lock_dir``: no
disk is shared), ``database`` (a SQLite file), ``start_at`` (a
``time.time()`` all processes wait for), ``slow`` (seconds each SELECT is
held, so that every process misses before the first one stores). The last
line of stdout is JSON: the SELECTs this process sent and the rows it got.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from beaker.cache import CacheManager
from sqlalchemy import create_engine, event
from sqlalchemy.orm import sessionmaker

from caching_query import FromCache, query_callable
from examples.model import Person


def main(settings: dict[str, Any]) -> None:
    engine = create_engine(f"sqlite:///{settings['database']}")
    selects: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def held(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)
            time.sleep(settings["slow"])

    manager = CacheManager(cache_regions={"default": settings["region"]})
    Session = sessionmaker(bind=engine, query_cls=query_callable(manager))  # noqa: N806
    time.sleep(max(0.0, settings["start_at"] - time.time()))
    with Session() as session:
        query = session.query(Person).filter(Person.id.between(20, 24)).order_by(Person.id)
        names = [p.name for p in query.options(FromCache("default", "stampede")).all()]
    print(json.dumps({"selects": len(selects), "names": names}))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
