"""Automatic invalidation across processes, on real servers.

Two separate Python processes (tests/invalidation_worker.py) share one
database and one memcached, Redis or file cache: A reads, B writes. For
every case of tests/write_cases.py (ORM flushes, bulk statements, Core DML
on a Connection, textual and driver SQL, DDL, many-to-many, inheritance,
post_update, loads stored with entries, invalidate_tables()):

1. A runs the query twice: SQL, then a hit;
2. B commits the write;
3. A's next run sends SQL and returns the committed rows, and the run
   after that is a hit again.

A rolled-back write, a rolled-back savepoint and a write to an unrelated
table leave A's entry a hit; a deleted version key makes it a miss. The
database is a SQLite file for every backend, and PostgreSQL with Redis.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from beaker.cache import Cache
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from caching_query import store
from caching_query.invalidation import versions
from examples import blog
from examples.regions import shared_region
from tests.test_cross_process import flush, worker_environment
from tests.write_cases import CASES

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parent.parent


class Worker:
    """A worker process and the JSON lines it answers."""

    def __init__(self, env: dict[str, str], seed: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.invalidation_worker"],
            env={**env, "PYTHONHASHSEED": str(seed)},
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def ask(self, **command: str) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=30)
            raise AssertionError(f"worker died on {command}:\n{self.process.stderr.read()}")  # type: ignore[union-attr]
        return json.loads(line)  # type: ignore[no-any-return]

    def read(self, case: str) -> tuple[Any, int]:
        answer = self.ask(read=case)
        return answer["rows"], answer["sql"]

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()


class Setting:
    """A database and a cache shared by the two workers, reset between cases."""

    def __init__(
        self, kind: str, url: str, cache_dir: Path, database: str, reset: Callable[[], None]
    ) -> None:
        self.kind, self.url, self.cache_dir, self.database = kind, url, cache_dir, database
        self._reset_database = reset
        self.engine: Engine = create_engine(database, poolclass=NullPool)

    def region(self) -> dict[str, Any]:
        return shared_region(self.kind, self.url, self.cache_dir)

    def reset(self) -> None:
        self._reset_database()
        if self.kind == "file":
            # the namespace files; Beaker made their directories once, at start
            for entry in self.cache_dir.glob("data/**/*.cache"):
                entry.unlink()
        else:
            flush(self.kind, self.url)

    def expected(self, case: str) -> Any:
        """What a plain session, no cache, reads now (as JSON carries it)."""
        with Session(self.engine) as session:
            rows = CASE_QUERIES[case](session)
        return json.loads(json.dumps(rows, default=list))


CASE_QUERIES = {case.name: case.query for case in CASES}
# the settings: (cache backend, database)
SETTINGS = [
    ("memcached", "sqlite"),
    ("redis", "sqlite"),
    ("file", "sqlite"),
    ("redis", "postgresql"),
]


@pytest.fixture(scope="module", params=SETTINGS, ids=["-".join(s) for s in SETTINGS])
def setting(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setting]:
    kind, database = request.param
    tmp = tmp_path_factory.mktemp(f"xproc-{kind}-{database}")
    url = ""
    if kind != "file":
        server = request.getfixturevalue(f"{kind}_server")
        if not server.alive():
            server.start()
        url = server.url
    if database == "sqlite":
        seed_path, path = tmp / "seed.db", tmp / "blog.db"
        seed_engine = create_engine(f"sqlite:///{seed_path}", poolclass=NullPool)
        blog.Base.metadata.create_all(seed_engine)
        with Session(seed_engine) as session:
            blog.seed(session)
        seed_engine.dispose()
        database_url = f"sqlite:///{path}"

        def reset() -> None:
            shutil.copy(seed_path, path)
    else:
        database_url = request.getfixturevalue("postgres_server").url
        engine = create_engine(database_url, poolclass=NullPool)

        def reset() -> None:
            blog.Base.metadata.drop_all(engine)
            blog.Base.metadata.create_all(engine)
            with Session(engine) as session:
                blog.seed(session)

    yield Setting(kind, url, tmp / "cache", database_url, reset)


@pytest.fixture(scope="module")
def workers(setting: Setting) -> Iterator[tuple[Worker, Worker]]:
    env = worker_environment(setting.kind, setting.url, setting.cache_dir, setting.database)
    reader, writer = Worker(env, 1), Worker(env, 2)
    yield reader, writer
    reader.close()
    writer.close()


@pytest.fixture
def fresh(setting: Setting) -> Setting:
    setting.reset()
    return setting


@pytest.mark.parametrize("case", [c.name for c in CASES])
def test_write_in_one_process_invalidates_another(case, fresh, workers):
    reader, writer = workers
    before, sql = reader.read(case)
    assert sql >= 1
    assert reader.read(case) == (before, 0)

    writer.ask(write=case)

    expected = fresh.expected(case)
    after, sql = reader.read(case)
    assert after == expected
    assert sql >= 1, "served the entry cached before the other process's commit"
    assert reader.read(case) == (expected, 0)


@pytest.mark.parametrize("write", ["rollback", "savepoint rollback", "unrelated"])
def test_writes_that_change_nothing_keep_the_hit(write, fresh, workers):
    reader, writer = workers
    rows, _ = reader.read("orm flush update")
    assert reader.read("orm flush update") == (rows, 0)
    writer.ask(write=write)
    assert reader.read("orm flush update") == (rows, 0)


def test_deleted_version_key_is_a_miss(fresh, workers):
    reader, _ = workers
    rows, _ = reader.read("orm flush update")
    assert reader.read("orm flush update") == (rows, 0)
    versions_cache = Cache(versions.VERSIONS_NAMESPACE, **fresh.region())
    store.remove(versions_cache, versions.version_key("user_account").decode())
    assert reader.read("orm flush update")[1] == 1
    assert reader.read("orm flush update") == (rows, 0)
