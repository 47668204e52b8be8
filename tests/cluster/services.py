"""The cluster's processes: its own PostgreSQL and Redis, gunicorn per host, nginx.

Each one is started for the test into a temporary directory, listens on the
test network only (see :mod:`tests.cluster.network`), and is stopped when its
``with`` block ends. Waiting for readiness, stopping process groups and nginx
itself come from ``bench/`` (:mod:`bench.harness`, :mod:`bench._embed_harness`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench import harness
from tests.cluster.network import Host

ROOT = harness.ROOT


class ServiceError(RuntimeError):
    """A service did not start; ``str()`` says which and why (with its log's tail)."""


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_tcp(address: str, port: int, timeout: float = 20.0) -> None:
    """Wait until something accepts TCP connections at ``address:port``.

    :raise ServiceError: after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=1):
            return
        time.sleep(0.05)
    raise ServiceError(f"nothing listens on {address}:{port} after {timeout:.0f} s")


# --------------------------------------------------------------------------- PostgreSQL


def postgres_bindir() -> Path:
    """Debian's PostgreSQL server binaries (the newest installed major version).

    :raise ServiceError: naming the package when none is installed.
    """
    found = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise ServiceError("initdb not found (Debian: apt-get install postgresql)")


@dataclass(slots=True)
class Postgres:
    """A PostgreSQL server of the test's own: its data directory and address."""

    bindir: Path
    data: Path
    address: str
    port: int
    log: Path
    user: str | None  # the OS user it runs as when we are root

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the test's database on it."""
        return f"postgresql+psycopg://postgres@{self.address}:{self.port}/tracker"

    @property
    def conninfo(self) -> str:
        """A libpq connection string for the same database."""
        return f"host={self.address} port={self.port} user=postgres dbname=tracker"

    def run(self, program: str, *args: str, timeout: float = 60) -> str:
        """Run one of the server's programs (as its OS user); returns its output.

        :raise ServiceError: when it fails.
        """
        command = [str(self.bindir / program), *args]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, cwd="/"
        )
        if done.returncode != 0:
            raise ServiceError(
                f"{program} failed ({done.returncode}): {done.stderr.strip()}\n{_tail(self.log)}"
            )
        return done.stdout

    def restart(self) -> None:
        """``pg_ctl -m fast restart``: every session is cut, then the server comes back."""
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-m", "fast", "-w", "restart")


@contextlib.contextmanager
def postgres(address: str, allow: str) -> Iterator[Postgres]:
    """initdb + pg_ctl into a temporary directory, listening on ``address`` only.

    Connections from the ``allow`` network are trusted (the test's own hosts).
    The machine's own PostgreSQL and its configuration are never touched. As
    root the server runs as the ``postgres`` user (initdb refuses root).

    :raise ServiceError: when it does not start.
    """
    bindir = postgres_bindir()
    tmp = Path(tempfile.mkdtemp(prefix="tracker-cluster-pg-"))
    user: str | None = None
    if os.geteuid() == 0:
        user = "postgres"
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            raise ServiceError("running as root needs the postgres OS user") from None
        os.chown(tmp, entry.pw_uid, entry.pw_gid)
    tmp.chmod(0o755)
    port = harness.free_port()
    server = Postgres(bindir, tmp / "data", address, port, tmp / "postgres.log", user)
    started = False
    try:
        server.run(
            "initdb",
            "-D",
            str(server.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )
        with open(server.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"listen_addresses = '{address}'\nport = {port}\n"
                f"unix_socket_directories = '{tmp}'\nmax_connections = 200\n"
                # Keep the test's log quiet but its restarts visible.
                "log_min_messages = warning\n"
            )
        with open(server.data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {allow} trust\n")
        server.run("pg_ctl", "-D", str(server.data), "-l", str(server.log), "-w", "start")
        started = True
        server.run("createdb", "-h", address, "-p", str(port), "-U", "postgres", "tracker")
        yield server
    finally:
        if started:
            with contextlib.suppress(ServiceError, subprocess.TimeoutExpired):
                server.run("pg_ctl", "-D", str(server.data), "-m", "immediate", "stop")
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- Redis


@contextlib.contextmanager
def redis(address: str) -> Iterator[str]:
    """redis-server of the test's own on ``address`` (no persistence); yields its URL.

    :raise ServiceError: when redis-server is missing or does not start.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceError("redis-server is not installed (Debian: apt-get install redis-server)")
    port = harness.free_port()
    tmp = Path(tempfile.mkdtemp(prefix="tracker-cluster-redis-"))
    log = tmp / "redis.log"
    with open(log, "ab") as handle:
        process = subprocess.Popen(
            [
                binary,
                "--bind",
                address,
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(tmp),
                "--protected-mode",
                "no",
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        try:
            wait_tcp(address, port)
        except ServiceError as exc:
            raise ServiceError(f"redis-server: {exc}\n{_tail(log)}") from None
        yield f"redis://{address}:{port}/0"
    finally:
        harness._stop(process)
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- gunicorn


@dataclass(slots=True)
class AppServer:
    """gunicorn on one host: its master process and where it listens."""

    host: Host
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def address(self) -> str:
        """``address:port`` as nginx's upstream names it."""
        return f"{self.host.address}:{self.port}"

    def workers(self) -> list[int]:
        """The worker processes' ids (children of the master)."""
        return harness._children(self.process.pid)

    def kill_worker(self) -> int:
        """SIGKILL one worker (the master forks a new one); returns its pid.

        :raise ServiceError: when the master has no worker right now.
        """
        workers = self.workers()
        if not workers:
            raise ServiceError(f"gunicorn on host {self.host.name} has no worker to kill")
        os.kill(workers[0], signal.SIGKILL)
        return workers[0]


@contextlib.contextmanager
def gunicorn(host: Host, env: dict[str, str], *, workers: int, logdir: Path) -> Iterator[AppServer]:
    """``gunicorn wsgi:app`` with ``workers`` sync workers inside ``host``'s namespace.

    :param env: the complete process environment (see :func:`bench.harness.app_environment`).
    :raise bench.harness.BenchError: when it exits or does not answer ``/livez``.
    """
    port = harness.free_port()
    log = logdir / f"gunicorn-{host.name}-{port}.log"
    command = host.command(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"{host.address}:{port}",
            "--workers",
            str(workers),
            "--chdir",
            str(ROOT),
            "--error-logfile",
            str(log),
            "--log-level",
            "warning",
            "wsgi:app",
        ]
    )
    ready = f"http://{host.address}:{port}/livez"
    with harness.serving(command, ready, log, env=env, name=f"gunicorn on host {host.name}") as p:
        yield AppServer(host, p, port, log)


def flask_command(host: Host, env: dict[str, str], *args: str, timeout: float = 120) -> str:
    """Run ``flask --app wsgi tracker ARGS`` on ``host``; returns its output (stdout + stderr).

    :raise ServiceError: when it exits non-zero.
    """
    command = host.command([sys.executable, "-m", "flask", "--app", "wsgi", "tracker", *args])
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        raise ServiceError(f"tracker {' '.join(args)} exited {done.returncode}: {output}")
    return output
