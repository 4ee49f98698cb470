"""One process of tests/test_invalidation_cross_process.py: reads or writes the blog on command.

    python -m tests.invalidation_worker

Reads one JSON command a line on stdin and answers one JSON line on stdout:

* ``{"read": case}``: runs the case's cached query in a fresh session;
  answers ``{"rows": ..., "sql": statements sent}``;
* ``{"write": case}``: makes the case's write (in its own session or
  connection, committed); answers ``{"sql": ...}``;
* ``{"write": "rollback"}`` / ``{"write": "savepoint rollback"}``: a write
  to ``user_account`` that is rolled back, wholly or to a savepoint;
* ``{"write": "unrelated"}``: a committed write to ``tag`` only.

The cache and the database come from the environment (``CACHE_BACKEND``,
``CACHE_URL``, ``CACHE_DIR``, ``DATABASE_URL``), the region set up as the
examples set it up (``examples.environment.shared_region``).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from beaker.cache import CacheManager
from sqlalchemy import create_engine, event, update
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import NullPool

import caching_query
from examples.blog import Tag, User
from tests.write_cases import CASES_BY_NAME


def _rollback(Session: Any, engine: Any) -> None:  # noqa: N803
    with Session() as session:
        session.execute(update(User).where(User.name == "bob").values(name="rolled back"))
        session.rollback()


def _savepoint_rollback(Session: Any, engine: Any) -> None:  # noqa: N803
    with Session() as session:
        session.add(Tag(name="kept"))
        session.flush()
        with session.begin_nested() as savepoint:
            session.execute(update(User).where(User.name == "bob").values(name="dropped"))
            savepoint.rollback()
        session.commit()


def _unrelated(Session: Any, engine: Any) -> None:  # noqa: N803
    with Session() as session:
        session.add(Tag(name="unrelated"))
        session.commit()


EXTRA_WRITES = {
    "rollback": _rollback,
    "savepoint rollback": _savepoint_rollback,
    "unrelated": _unrelated,
}


def main() -> None:
    from examples.regions import shared_region

    region = shared_region(os.environ["CACHE_BACKEND"], os.environ.get("CACHE_URL"))
    manager = CacheManager(cache_regions={"default": region})
    # NullPool: the test replaces the database between cases
    engine = create_engine(os.environ["DATABASE_URL"], poolclass=NullPool)
    Session = sessionmaker(bind=engine)  # noqa: N806
    caching_query.auto_invalidate(Session, manager)
    sent = [0]
    event.listen(engine, "before_cursor_execute", lambda *args: sent.__setitem__(0, sent[0] + 1))
    for line in sys.stdin:
        command = json.loads(line)
        sent[0] = 0
        answer: dict[str, Any] = {}
        if "read" in command:
            with Session() as session:
                answer["rows"] = CASES_BY_NAME[command["read"]].query(session)
        else:
            name = command["write"]
            write = EXTRA_WRITES.get(name) or CASES_BY_NAME[name].write
            write(Session, engine)
        answer["sql"] = sent[0]
        print(json.dumps(answer, default=list), flush=True)


if __name__ == "__main__":
    main()
