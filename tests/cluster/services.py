"""The cluster's processes: its own PostgreSQL and Redis, gunicorn per host, nginx.

Each one is started for the test into a temporary directory, listens on the
test network only (see :mod:`tests.cluster.network`), and is stopped when its
``with`` block ends. Waiting for readiness, stopping process groups and nginx
itself come from ``bench/`` (:mod:`bench.harness`, :mod:`bench._embed_harness`).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
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


# The app servers' session leader: it starts every gunicorn of a run in its own
# session, so they all share one scheduler autogroup. Linux (autogroup is on by
# default) shares the CPU fairly between sessions when it is contended: if each
# gunicorn had a session of its own (setsid), two hosts would get twice the CPU of
# one host on a loaded machine, and the throughput ratio would measure the kernel,
# not nginx (before this, two hosts were up to 2.7x faster under load and 0.69x
# on an idle machine). Children are reaped by the kernel (SIGCHLD ignored): the
# test watches them by pid.
_SPAWNER = """
import json, signal, subprocess, sys
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
children = []
for line in sys.stdin:
    job = json.loads(line)
    try:
        with open(job["log"], "ab") as log:
            child = subprocess.Popen(
                job["argv"], cwd=job["cwd"], env=job["env"], stdout=log,
                stderr=subprocess.STDOUT, process_group=0,
            )
    except OSError as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        continue
    children.append(child)
    print(json.dumps({"pid": child.pid}), flush=True)
"""


@dataclass(slots=True)
class Spawned:
    """A process started by the :class:`Spawner` (not our child): watched by pid."""

    pid: int
    returncode: int | None = None

    def poll(self) -> int | None:
        """None while it runs; then 0 (its exit status is its parent's to know)."""
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                self.returncode = 0
        return self.returncode

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM its process group, then SIGKILL if it lingers."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.poll() is not None:
                return
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)
            deadline = time.monotonic() + timeout
            while self.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)


class Spawner:
    """One session for every app server of a run (see ``_SPAWNER`` for why)."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-c", _SPAWNER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self._lock = threading.Lock()

    def spawn(self, argv: list[str], env: dict[str, str], log: Path) -> Spawned:
        """Start ``argv`` (its own process group, in the spawner's session).

        :raise ServiceError: when it cannot be started.
        """
        job = {"argv": argv, "env": env, "cwd": str(ROOT), "log": str(log)}
        with self._lock:
            assert self._process.stdin is not None and self._process.stdout is not None
            self._process.stdin.write(json.dumps(job) + "\n")
            self._process.stdin.flush()
            answer = self._process.stdout.readline()
        if not answer:
            raise ServiceError(f"the app servers' spawner exited ({self._process.poll()})")
        reply = json.loads(answer)
        if "error" in reply:
            raise ServiceError(f"cannot start {argv[0]}: {reply['error']}")
        return Spawned(int(reply["pid"]))

    def close(self) -> None:
        """End the spawner (what it started is stopped by its own ``with`` blocks)."""
        with contextlib.suppress(OSError):
            if self._process.stdin is not None:
                self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        if self._process.stdout is not None:
            self._process.stdout.close()


@contextlib.contextmanager
def spawner() -> Iterator[Spawner]:
    """A :class:`Spawner` until the block ends."""
    made = Spawner()
    try:
        yield made
    finally:
        made.close()


@dataclass(slots=True)
class AppServer:
    """gunicorn on one host: its master process and where it listens."""

    host: Host
    process: Spawned
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
def gunicorn(
    host: Host,
    env: dict[str, str],
    *,
    workers: int,
    logdir: Path,
    spawner: Spawner,
    start_timeout: float = 60.0,
) -> Iterator[AppServer]:
    """``gunicorn wsgi:app`` with ``workers`` sync workers inside ``host``'s namespace.

    :param env: the complete process environment (see :func:`bench.harness.app_environment`).
    :param spawner: starts it, in the session all the run's app servers share.
    :raise ServiceError: when it exits or does not answer ``/livez`` in time.
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
    process = spawner.spawn(command, env, log)
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if process.poll() is not None:
                raise ServiceError(f"gunicorn on host {host.name} exited:\n{_tail(log)}")
            with contextlib.suppress(OSError), urllib.request.urlopen(ready, timeout=1) as answer:
                if answer.status == 200:
                    break
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"gunicorn on host {host.name} did not answer {ready} "
                    f"within {start_timeout:.0f} s:\n{_tail(log)}"
                )
            time.sleep(0.1)
        yield AppServer(host, process, port, log)
    finally:
        process.stop()


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
