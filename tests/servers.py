"""Session fixtures that run real memcached, redis and PostgreSQL servers.

Each server listens on 127.0.0.1 on a free port, keeps its files in a fresh
temporary directory and is killed with everything it forked at teardown, whatever
the tests did.  A missing binary skips the tests needing it, except on CI
(``CI=true``), where it fails them: there the servers must be installed.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from functools import partial
from pathlib import Path

import psycopg2
import pytest

HOST = "127.0.0.1"
DEADLINE = 30.0  # seconds a server gets to answer after starting
_running: set[Server] = set()  # killed at exit, should a finalizer never run


def free_port() -> int:
    """A port nothing listens on right now (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def find_binary(name: str, package: str) -> str:
    """The binary's path; skip if absent, but fail on CI where it must be there."""
    if found := shutil.which(name):
        return found
    message = f"{name} not installed: apt-get install {package}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def runuser() -> str:
    """``runuser``, found where Debian puts it even when ``/usr/sbin`` is not on PATH."""
    for candidate in (shutil.which("runuser"), "/usr/sbin/runuser", "/sbin/runuser"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("runuser not found (util-linux): needed to run PostgreSQL as postgres")


def _answers(port: int, request: bytes, expected: bytes) -> bool:
    """Whether a line-protocol server replies to ``request`` as expected."""
    with socket.create_connection((HOST, port), timeout=1) as sock:
        sock.sendall(request)
        return sock.recv(64).startswith(expected)


class Server:
    """A server process we start, stop, kill and restart on the same port."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        port: int,
        workdir: Path,
        url: str,
        probe: Callable[[], bool],
    ) -> None:
        self.name, self.argv, self.port, self.workdir, self.url = name, argv, port, workdir, url
        self.log = workdir / f"{name}.log"
        self._probe = probe
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"<{self.name} {self.url}>"

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def start(self) -> None:
        """Launch (again) and block until the server answers."""
        with open(self.log, "ab") as log:  # its own session: killpg reaches all it forks
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )
        _running.add(self)
        self.wait_ready()

    def wait_ready(self) -> None:
        """Poll the probe until it succeeds; kill and raise with the log otherwise."""
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            if not self.alive():
                self.kill()
                raise RuntimeError(f"{self.name} exited early; log:\n{self.log_tail()}")
            with suppress(OSError):
                if self._probe():
                    return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(
            f"{self.name} not answering on {self.url} after {DEADLINE}s; log:\n{self.log_tail()}"
        )

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal the process group and reap it; SIGKILL if still there after 10 s."""
        proc, self._proc = self._proc, None
        _running.discard(self)
        if proc is None:
            return
        for each in (sig, signal.SIGKILL):
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, each)
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
                return

    def kill(self) -> None:
        """Die abruptly, as in a crash."""
        self.stop(signal.SIGKILL)


class PostgresServer(Server):
    """A throwaway cluster.  pg_ctl daemonizes the postmaster, so it is no child of
    ours: stop through pg_ctl, kill through postmaster.pid."""

    def __init__(self, bindir: str, port: int, workdir: Path) -> None:
        self.bindir, self.data, self.user = bindir, workdir / "data", "cq"
        url = f"postgresql+psycopg2://{self.user}@{HOST}:{port}/cq_test"
        super().__init__("postgres", [], port, workdir, url, self._connects)

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        """Run a PostgreSQL tool, as the ``postgres`` user if we are root (it refuses root)."""
        argv = [os.path.join(self.bindir, tool), *args]
        if os.geteuid() == 0:
            argv = [runuser(), "-u", "postgres", "--", *argv]
        done = subprocess.run(argv, cwd=self.workdir, capture_output=True, timeout=timeout)
        if done.returncode:
            output = (done.stdout + done.stderr).decode(errors="replace")
            raise RuntimeError(f"{tool} failed:\n{output}\nlog:\n{self.log_tail()}")

    def _connects(self, dbname: str = "postgres") -> bool:
        try:
            psycopg2.connect(
                host=HOST, port=self.port, user=self.user, dbname=dbname, connect_timeout=2
            ).close()
        except psycopg2.OperationalError:
            return False
        return True

    def initdb(self) -> None:
        """Create the cluster (trust auth: it only listens on 127.0.0.1) and cq_test."""
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            self.user,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        self.start()
        self._run("createdb", "-h", HOST, "-p", str(self.port), "-U", self.user, "cq_test")

    def start(self) -> None:
        options = (
            f"-c port={self.port} -c listen_addresses={HOST} "
            f"-c unix_socket_directories={self.workdir} -c fsync=off"
        )
        _running.add(self)
        try:
            self._run(
                "pg_ctl",
                "start",
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-o",
                options,
                "-w",
                "-t",
                str(int(DEADLINE)),
                timeout=DEADLINE + 10,
            )
        except (RuntimeError, subprocess.TimeoutExpired):
            self.kill()
            raise
        self.wait_ready()

    def alive(self) -> bool:
        pid = self._postmaster_pid()
        return pid is not None and _pid_alive(pid)

    def _postmaster_pid(self) -> int | None:
        with suppress(OSError, IndexError, ValueError):
            return int((self.data / "postmaster.pid").read_text().split()[0])
        return None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """``pg_ctl stop -m fast``; SIGKILL for a crash, or if pg_ctl fails."""
        _running.discard(self)
        if sig != signal.SIGKILL and self.alive():
            with suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w")
                return
        pid = self._postmaster_pid()
        if pid is None or not _pid_alive(pid):
            return
        # Postgres puts every child in a session of its own, out of killpg's reach:
        # freeze the postmaster so it forks no more, then kill it and each child.
        os.kill(pid, signal.SIGSTOP)
        pids = [pid, *_children(pid)]
        for each in pids:
            with suppress(ProcessLookupError):
                os.kill(each, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(map(_pid_alive, pids)) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not any(map(_pid_alive, pids)):  # its zombie may outlive it, blocking a restart
            for lock in (self.data / "postmaster.pid", self.workdir / f".s.PGSQL.{self.port}.lock"):
                lock.unlink(missing_ok=True)


def _stat(pid: int | str) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state, ppid, ...); [] if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def _children(pid: int) -> list[int]:
    return [int(p.name) for p in Path("/proc").glob("[0-9]*") if _stat(p.name)[1:2] == [str(pid)]]


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs; an orphaned zombie, waiting for init to reap it, is dead."""
    return _stat(pid)[:1] not in ([], ["Z"])


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_running):
        server.kill()


def _serve(server: Server, start: Callable[[], None]) -> Iterator[Server]:
    """Start and yield the server; always stop it and remove its directory."""
    try:
        start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


def memcached_process(binary: str, name: str = "memcached", *options: str) -> Server:
    """A memcached (not started yet) on a free port, in a directory of its own."""
    port, workdir = free_port(), Path(tempfile.mkdtemp(prefix=f"cq-{name}-"))
    argv = [binary, "-l", HOST, "-p", str(port), "-U", "0", "-m", "64", *options]
    if os.geteuid() == 0:
        argv += ["-u", "nobody"]  # memcached refuses to run as root
    probe = partial(_answers, port, b"version\r\n", b"VERSION ")
    return Server(name, argv, port, workdir, f"{HOST}:{port}", probe)


def redis_process(binary: str, name: str = "redis") -> Server:
    """A Redis that keeps nothing on disk (not started yet), on a free port."""
    port, workdir = free_port(), Path(tempfile.mkdtemp(prefix=f"cq-{name}-"))
    argv = [binary, "--save", "", "--appendonly", "no", "--port", str(port)]
    argv += ["--bind", HOST, "--dir", str(workdir)]
    probe = partial(_answers, port, b"PING\r\n", b"+PONG")
    return Server(name, argv, port, workdir, f"redis://{HOST}:{port}/0", probe)


@pytest.fixture(scope="session")
def memcached_server() -> Iterator[Server]:
    server = memcached_process(find_binary("memcached", "memcached"))
    yield from _serve(server, server.start)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Server]:
    server = redis_process(find_binary("redis-server", "redis-server"))
    yield from _serve(server, server.start)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    # Debian keeps the server tools off PATH, in one directory per major version.
    debian = sorted(
        glob.glob("/usr/lib/postgresql/[0-9]*/bin/pg_ctl"),
        key=lambda path: int(Path(path).parts[-3]),
    )
    pg_ctl = debian[-1] if debian else find_binary("pg_ctl", "postgresql")
    workdir = Path(tempfile.mkdtemp(prefix="cq-postgres-"))
    if os.geteuid() == 0:  # initdb runs as postgres: hand it the directory
        user = pwd.getpwnam("postgres")
        os.chown(workdir, user.pw_uid, user.pw_gid)
    server = PostgresServer(os.path.dirname(pg_ctl), free_port(), workdir)
    yield from _serve(server, server.initdb)
