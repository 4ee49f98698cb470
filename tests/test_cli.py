"""``python -m caching_query``, run as a real subprocess against real servers.

The test process caches queries with the library, through a manager of
the same regions as the configuration handed to the command line (a
Beaker ``.ini`` file, or a ``module:attribute``); the command line then
probes, clears, invalidates or inspects them from its own process, and the
test process counts the SQL its next queries send.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import beaker.cache
import bmemcached
import pytest
import redis
from beaker.cache import Cache, CacheManager
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

import caching_query
from caching_query import FromCache, health, query_callable
from caching_query.internals import _beaker_clients
from caching_query.invalidation import publish
from caching_query.operations import probes
from examples.model import Person
from tests.conftest import SQLCounter
from tests.servers import HOST, Server, _answers, _serve, find_binary, free_port

ROOT = Path(__file__).resolve().parent.parent
server = pytest.mark.server


def cli(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m caching_query ARGS`` and return what it did."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "caching_query", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd or ROOT,
        env=env,
    )


def regions_for(tmp: Path, memcached_url: str | None, redis_url: str | None) -> dict[str, Any]:
    """Region configurations: memory, file, and memcached / Redis when given."""
    regions: dict[str, Any] = {
        "mem": {"type": "memory"},
        "fs": {"type": "file", "data_dir": str(tmp / "data"), "lock_dir": str(tmp / "lock")},
    }
    if memcached_url:
        regions["mc"] = {
            "type": "ext:memcached",
            "url": memcached_url,
            "memcache_module": "bmemcached",
            "lock_dir": str(tmp / "lock"),
        }
    if redis_url:
        regions["rd"] = {"type": "ext:redis", "url": redis_url}
    return regions


def write_ini(path: Path, regions: dict[str, Any], section: str = "app:main") -> Path:
    """A Pyramid-style file: a section without cache settings first, lock_dir a default."""
    lines = ["[server:main]", "port = 6543", "", f"[{section}]", "use = egg:someapp"]
    lines += [f"cache.regions = {', '.join(regions)}", f"cache.lock_dir = {path.parent / 'lock'}"]
    for name, config in regions.items():
        lines += [f"cache.{name}.{key} = {value}" for key, value in config.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Setup:
    ini: Path
    regions: dict[str, Any]
    manager: CacheManager
    factory: sessionmaker[Session]


@pytest.fixture
def setup(request: pytest.FixtureRequest, tmp_path: Path, engine: Engine) -> Iterator[Setup]:
    """The shared servers running, a .ini of four regions, and the same regions in this process."""
    urls = []
    for name in ("memcached_server", "redis_server"):
        running = request.getfixturevalue(name)
        if not running.alive():
            running.start()
        urls.append(running.url)
    saved = dict(beaker.cache.cache_regions)
    health.reset()
    regions = regions_for(tmp_path, *urls)
    manager = CacheManager(cache_regions={name: dict(c) for name, c in regions.items()})
    factory = sessionmaker(bind=engine, query_cls=query_callable(manager))
    yield Setup(write_ini(tmp_path / "production.ini", regions), regions, manager, factory)
    publish.forget()
    health.reset()
    beaker.cache.cache_regions.clear()
    beaker.cache.cache_regions.update(saved)


def name_of(factory: sessionmaker[Session], region: str, namespace: str, ident: int) -> str:
    with factory() as session:
        query = session.query(Person).filter(Person.id == ident)
        return query.options(FromCache(region, namespace)).one().name


def fresh_namespace() -> str:
    return f"cli-{uuid.uuid4().hex[:12]}"


# -- check -------------------------------------------------------------------


@server
def test_check_every_region_of_an_ini_file(setup: Setup) -> None:
    done = cli("check", setup.ini)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[:3] for line in lines] == [
        ["mem", "memory", "ok"],
        ["fs", "file", "ok"],
        ["mc", "ext:memcached", "ok"],
        ["rd", "ext:redis", "ok"],
    ]
    assert all(" ms" in line for line in lines)

    done = cli("check", setup.ini, "--json", "--region", "rd", "--region", "fs")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True
    assert [(r["region"], r["type"], r["ok"]) for r in report["regions"]] == [
        ("rd", "ext:redis", True),
        ("fs", "file", True),
    ]


@server
def test_check_leaves_no_probe_behind(setup: Setup) -> None:
    client = redis.Redis.from_url(setup.regions["rd"]["url"])
    try:
        assert cli("check", setup.ini, "--region", "rd").returncode == 0
        assert client.keys(f"beaker_cache:{probes.CHECK_NAMESPACE}:*") == []
    finally:
        client.close()


MODULE = """
from beaker.cache import CacheManager

REGIONS = {regions!r}
manager = CacheManager(cache_regions=REGIONS)


def make_manager():
    return CacheManager(cache_regions=REGIONS)


not_a_manager = {{"regions": "a dict"}}
"""


@server
@pytest.mark.parametrize("attribute", ["manager", "make_manager"])
def test_check_a_module_attribute(setup: Setup, tmp_path: Path, attribute: str) -> None:
    (tmp_path / "cq_cli_settings.py").write_text(MODULE.format(regions=setup.regions))
    done = cli("check", f"cq_cli_settings:{attribute}", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [(r["region"], r["ok"]) for r in report["regions"]] == [
        ("mem", True),
        ("fs", True),
        ("mc", True),
        ("rd", True),
    ]


def _fresh_server(kind: str) -> Iterator[Server]:
    """A server of this test's own, on a free port: the session's stays up."""
    port, workdir = free_port(), Path(tempfile.mkdtemp(prefix=f"cq-cli-{kind}-"))
    if kind == "memcached":
        argv = [find_binary("memcached", "memcached"), "-l", HOST, "-p", str(port), "-m", "16"]
        argv += ["-U", "0"] + (["-u", "nobody"] if os.geteuid() == 0 else [])
        probe = partial(_answers, port, b"version\r\n", b"VERSION ")
        url = f"{HOST}:{port}"
    else:
        binary = find_binary("redis-server", "redis-server")
        argv = [binary, "--save", "", "--appendonly", "no", "--port", str(port)]
        argv += ["--bind", HOST, "--dir", str(workdir)]
        probe = partial(_answers, port, b"PING\r\n", b"+PONG")
        url = f"redis://{HOST}:{port}/0"
    fresh = Server(kind, argv, port, workdir, url, probe)
    yield from _serve(fresh, fresh.start)


@pytest.fixture
def own_memcached() -> Iterator[Server]:
    yield from _fresh_server("memcached")


@pytest.fixture
def own_redis() -> Iterator[Server]:
    yield from _fresh_server("redis")


@server
def test_stopped_servers_fail_every_command(
    own_memcached: Server, own_redis: Server, tmp_path: Path
) -> None:
    ini = write_ini(tmp_path / "app.ini", regions_for(tmp_path, own_memcached.url, own_redis.url))
    assert cli("check", ini).returncode == 0
    own_memcached.stop()
    own_redis.stop()

    done = cli("check", ini)
    assert done.returncode == 1
    lines = {line.split()[0]: line for line in done.stdout.splitlines()}
    assert lines["mem"].split()[2] == lines["fs"].split()[2] == "ok"
    assert lines["mc"].split()[1:3] == ["ext:memcached", "FAILED:"]  # bmemcached: a miss
    assert lines["rd"].split()[1:4] == ["ext:redis", "FAILED:", "ConnectionError:"]
    report = json.loads(cli("check", ini, "--json").stdout)
    assert report["ok"] is False
    assert {r["region"]: r["ok"] for r in report["regions"]} == {
        "mem": True,
        "fs": True,
        "mc": False,
        "rd": False,
    }

    for region in ("mc", "rd"):
        done = cli("clear", ini, region, "people")
        assert done.returncode == 1
        assert f"FAILED to clear namespace 'people' of region '{region}'" in done.stderr

    # told what it could, then reported the rest: no retry left running, no hang
    done = cli("invalidate", ini, "person")
    assert done.returncode == 1
    assert "FAILED to announce writes to person" in done.stderr
    assert "region mc" in done.stderr and "region rd" in done.stderr

    done = cli("stats", ini, "--json")
    assert done.returncode == 1
    found = {b["regions"][0]: b for b in json.loads(done.stdout)["backends"]}
    assert (found["mc"]["ok"], found["rd"]["ok"], found["fs"]["ok"]) == (False, False, True)


# -- clear -------------------------------------------------------------------


@server
@pytest.mark.parametrize("region", ["mc", "rd", "fs"])
def test_clear_makes_one_namespace_miss(setup: Setup, sql: SQLCounter, region: str) -> None:
    cleared, kept = fresh_namespace(), fresh_namespace()
    with sql.expect(2):
        assert name_of(setup.factory, region, cleared, 1) == "person 01"
        assert name_of(setup.factory, region, kept, 2) == "person 02"
    with sql.expect(0):
        assert name_of(setup.factory, region, cleared, 1) == "person 01"

    done = cli("clear", setup.ini, region, cleared)
    assert done.returncode == 0, done.stderr
    assert f"cleared namespace {cleared!r} of region {region!r}" in done.stdout

    with sql.expect(1):
        assert name_of(setup.factory, region, cleared, 1) == "person 01"
    with sql.expect(0):
        assert name_of(setup.factory, region, cleared, 1) == "person 01"
        assert name_of(setup.factory, region, kept, 2) == "person 02"


@server
def test_clear_on_memcached_flushes_nothing_else(setup: Setup, sql: SQLCounter) -> None:
    client = bmemcached.Client([setup.regions["mc"]["url"]])
    try:
        client.set("someone_elses_key", "precious")
        assert cli("clear", setup.ini, "mc", fresh_namespace()).returncode == 0
        assert client.get("someone_elses_key") == "precious"
    finally:
        client.disconnect_all()


@server
def test_clear_refuses_a_memory_region(setup: Setup) -> None:
    done = cli("clear", setup.ini, "mem", "people")
    assert done.returncode == 2
    assert "'mem' is a memory region" in done.stderr


# -- invalidate --------------------------------------------------------------


@server
@pytest.mark.parametrize("region", ["mc", "rd"])
def test_invalidate_makes_auto_invalidated_entries_miss(
    setup: Setup, engine: Engine, sql: SQLCounter, region: str
) -> None:
    reader = sessionmaker(bind=engine)
    caching_query.auto_invalidate(reader, setup.manager)
    namespace = fresh_namespace()

    def run() -> str:
        with reader() as session:
            query = select(Person.name).where(Person.id == 5)
            return session.scalars(query.options(FromCache(region, namespace))).one()

    with sql.expect(1):
        assert run() == "person 05"
    with sql.expect(0):
        assert run() == "person 05"

    done = cli("invalidate", setup.ini, "country")
    assert done.returncode == 0, done.stderr
    with sql.expect(0):  # another table: still a hit
        assert run() == "person 05"

    done = cli("invalidate", setup.ini, "person")
    assert done.returncode == 0, done.stderr
    assert f"invalidated person on {setup.manager.regions[region]['type']}" in done.stdout
    assert "'mem' (memory) not invalidated" in done.stderr
    with sql.expect(1):
        assert run() == "person 05"
    with sql.expect(0):
        assert run() == "person 05"

    done = cli("invalidate", setup.ini, "--all")
    assert done.returncode == 0, done.stderr
    assert "invalidated every table" in done.stdout
    with sql.expect(1):
        assert run() == "person 05"
    with sql.expect(0):
        assert run() == "person 05"


# -- stats -------------------------------------------------------------------


@server
def test_stats_of_memcached_and_redis(setup: Setup, sql: SQLCounter) -> None:
    namespace = fresh_namespace()
    with sql.expect(3):
        for region in ("mc", "rd", "fs"):
            assert name_of(setup.factory, region, namespace, 7) == "person 07"

    def figures() -> tuple[dict[str, Any], dict[str, Any]]:
        done = cli("stats", setup.ini, "--json")
        assert done.returncode == 0, done.stderr
        found = {b["regions"][0]: b for b in json.loads(done.stdout)["backends"]}
        assert found["mem"]["note"].startswith("no server statistics")
        assert found["fs"]["files"]["count"] >= 1 and found["fs"]["files"]["bytes"] > 0
        return (
            found["mc"]["servers"][setup.regions["mc"]["url"]],
            found["rd"]["servers"][setup.regions["rd"]["url"]],
        )

    memcached, redis_ = figures()
    assert memcached["curr_items"] >= 1 and memcached["limit_maxbytes"] > 0
    assert redis_["db0.keys"] >= 1 and redis_["used_memory"] > 0
    with sql.expect(0):  # a hit on each server
        assert name_of(setup.factory, "mc", namespace, 7) == "person 07"
        assert name_of(setup.factory, "rd", namespace, 7) == "person 07"
    memcached_after, redis_after = figures()
    assert memcached_after["get_hits"] > memcached["get_hits"]
    assert redis_after["keyspace_hits"] > redis_["keyspace_hits"]

    done = cli("stats", setup.ini, "--region", "mc", "--region", "rd")
    assert done.returncode == 0, done.stderr
    for name in ("get_hits", "evictions", "hit_ratio", "keyspace_hits", "used_memory"):
        assert name in done.stdout
    assert "mem:" not in done.stdout


# -- bad usage ---------------------------------------------------------------


@pytest.fixture
def local_ini(tmp_path: Path) -> Path:
    """A configuration of server-less regions, and a second section of its own."""
    ini = write_ini(tmp_path / "local.ini", regions_for(tmp_path, None, None))
    with open(ini, "a") as stream:
        stream.write("\n[app:other]\ncache.regions = solo\ncache.solo.type = memory\n")
    return ini


def test_section_is_chosen(local_ini: Path) -> None:
    report = json.loads(cli("check", local_ini, "--json").stdout)
    assert [r["region"] for r in report["regions"]] == ["mem", "fs"]
    done = cli("check", local_ini, "--json", "--section", "app:other")
    assert [r["region"] for r in json.loads(done.stdout)["regions"]] == ["solo"]
    done = cli("check", local_ini, "--section", "app:nope")
    assert done.returncode == 2 and "no section [app:nope]" in done.stderr


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "production.ini"
    for command in (["check"], ["stats"], ["clear", missing, "r", "ns"]):
        done = cli(*command, missing) if len(command) == 1 else cli(command[0], *command[1:])
        assert done.returncode == 2
        assert str(missing) in done.stderr and "does not exist" in done.stderr


def test_unknown_region(local_ini: Path) -> None:
    for args in (["check", local_ini, "--region", "nope"], ["clear", local_ini, "nope", "ns"]):
        done = cli(*args)
        assert done.returncode == 2
        assert "unknown cache region 'nope'; configured regions: 'mem', 'fs'" in done.stderr


def test_file_without_cache_settings(tmp_path: Path) -> None:
    ini = tmp_path / "plain.ini"
    ini.write_text("[app:main]\nuse = egg:someapp\n")
    done = cli("check", ini)
    assert done.returncode == 2 and "no cache. settings" in done.stderr
    ini.write_text("[app:main]\ncache.type = memory\n")
    done = cli("check", ini)
    assert done.returncode == 2 and "configures no cache region" in done.stderr


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("cq_no_such_module:manager", "cannot import module 'cq_no_such_module'"),
        ("cq_cli_settings:missing", "has no attribute 'missing'"),
        ("cq_cli_settings:not_a_manager", "not a beaker CacheManager"),
        ("cq_cli_broken:manager", "importing module 'cq_cli_broken' failed"),
        ("no_colon_here", "neither a configuration file"),
    ],
)
def test_bad_module_attribute(tmp_path: Path, spec: str, message: str) -> None:
    (tmp_path / "cq_cli_settings.py").write_text(MODULE.format(regions={"m": {"type": "memory"}}))
    (tmp_path / "cq_cli_broken.py").write_text("import cq_not_installed_anywhere\n")
    done = cli("check", spec, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr


def test_argument_errors(local_ini: Path) -> None:
    for args in (["invalidate", local_ini], ["invalidate", local_ini, "t", "--all"], ["check"]):
        done = cli(*args)
        assert done.returncode == 2 and "usage:" in done.stderr
    done = cli("--help")
    assert done.returncode == 0
    assert "exit status" in done.stdout and "bad usage or bad configuration" in done.stdout


def test_region_that_cannot_be_opened(tmp_path: Path) -> None:
    ini = write_ini(tmp_path / "bad.ini", {"bad": {"type": "ext:no_such_backend"}})
    done = cli("check", ini)
    assert done.returncode == 1
    assert "bad  ext:no_such_backend  FAILED: TypeError: Unknown cache implementation" in (
        done.stdout
    )
    done = cli("invalidate", ini, "person")
    assert done.returncode == 2 and "cannot open region 'bad'" in done.stderr


def test_invalidate_with_only_memory_regions(tmp_path: Path) -> None:
    ini = write_ini(tmp_path / "mem.ini", {"a": {"type": "memory"}})
    done = cli("invalidate", ini, "person")
    assert done.returncode == 2 and "no region shared between processes" in done.stderr


# -- accessors of Beaker attributes, and settings the command line adds ------


@server
def test_beaker_client_accessors(memcached_server: Server, redis_server: Server, tmp_path) -> None:
    """Canary: Beaker still keeps its clients where internals._beaker_clients reads them."""
    for running in (memcached_server, redis_server):
        if not running.alive():
            running.start()
    memcached = Cache(
        "canary",
        type="ext:memcached",
        url=memcached_server.url,
        memcache_module="bmemcached",
        lock_dir=str(tmp_path),
    )
    client = _beaker_clients.memcached_client(memcached.namespace)
    assert isinstance(client, bmemcached.Client)
    assert "get_hits" in client.stats()[memcached_server.url]
    before = {server.socket_timeout for server in client.servers}
    try:
        assert _beaker_clients.set_memcached_timeout(client, 1.5)
        assert {server.socket_timeout for server in client.servers} == {1.5}
    finally:  # Beaker shares this client with the other tests of the session
        (timeout,) = before
        _beaker_clients.set_memcached_timeout(client, timeout)
    assert _beaker_clients.redis_client(memcached.namespace) is None

    on_redis = Cache("canary", type="ext:redis", url=redis_server.url)
    client = _beaker_clients.redis_client(on_redis.namespace)
    assert isinstance(client, redis.Redis)
    assert "keyspace_hits" in client.info()
    assert _beaker_clients.memcached_client(on_redis.namespace) is None

    memory = Cache("canary", type="memory")
    assert _beaker_clients.memcached_client(memory.namespace) is None
    assert _beaker_clients.redis_client(memory.namespace) is None
    assert not _beaker_clients.set_memcached_timeout(object(), 1.0)


def test_timeouts_and_displayed_locations() -> None:
    saved = dict(beaker.cache.cache_regions)
    try:
        manager = CacheManager(
            cache_regions={
                "set": {"type": "ext:redis", "url": "redis://h:1/0?socket_timeout=9"},
                "unset": {"type": "ext:redis", "url": "redis://:secret@h:1/2"},
            }
        )
        probes.set_timeouts(manager, 0.5)
    finally:
        beaker.cache.cache_regions.clear()
        beaker.cache.cache_regions.update(saved)
    assert manager.regions["set"]["url"] == (
        "redis://h:1/0?socket_timeout=9&socket_connect_timeout=0.5"
    )
    assert manager.regions["unset"]["url"] == (
        "redis://:secret@h:1/2?socket_timeout=0.5&socket_connect_timeout=0.5"
    )
    assert probes.where(manager.regions["unset"]) == "redis://:***@h:1/2"
    assert probes.where({"type": "ext:memcached", "url": "a:1;b:2"}) == "a:1;b:2"
