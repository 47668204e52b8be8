"""Electing one leader among every scheduler process.

PostgreSQL: a session-level advisory lock, held on a connection of its own
(never a pooled one, which could be handed back with the lock still on it).
The lock lives exactly as long as that session:

- a leader killed with ``kill -9`` closes its socket; the server ends the
  session at once and the lock is free for the next poll of a follower;
- a leader that loses the network cannot close anything, so both ends of the
  lock's connection give up on a silent peer in about keepalive + 3 s
  (``TRACKER_SCHEDULER_LEADER_KEEPALIVE_SECONDS``): the session sets the
  server's TCP keepalives and ``tcp_user_timeout`` for itself, and the client
  has the same as libpq parameters (:func:`client_keepalives`). The server
  then ends the session and a follower takes the lock at its next poll; the
  old leader's check of its lock (before each job, between two deliveries)
  fails and it steps down.

With the defaults (keepalive 4 s, poll 2 s) a follower takes over within
about 9 s, inside the 15 s the scheduler promises (8.6 s measured by
tests/test_scheduler_network.py with the link of the leader's network
namespace taken down).

SQLite: an exclusive ``flock`` on a file beside the database, released by the
kernel when the holding process dies, however it dies (one machine only,
like SQLite itself).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
from pathlib import Path
from typing import IO, Protocol

import psycopg
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url

log = logging.getLogger("tracker.scheduler")

# "trks": any constant works if every scheduler process uses the same one.
# Below 2**31, so pg_locks shows it as classid 0, objid LOCK_KEY.
LOCK_KEY = 0x7472_6B73


def process_label() -> str:
    """How this process names itself to the others: host and process id."""
    return f"tracker-scheduler {socket.gethostname()} pid {os.getpid()}"


class Leadership(Protocol):
    """A lock that at most one process holds."""

    def try_acquire(self) -> bool:
        """Take the lock if it is free; never waits. True if this process holds it now."""
        ...

    def still_held(self) -> bool:
        """Check that the lock is still ours (the connection or file is alive)."""
        ...

    def release(self) -> None:
        """Give the lock up (at shutdown)."""
        ...


def client_keepalives(idle: int) -> dict[str, int]:
    """libpq parameters that break a connection whose server is gone in about ``idle`` + 3 s.

    Keepalive probes find a dead peer while the connection is idle;
    ``tcp_user_timeout`` (Linux) ends it while data of ours goes unacknowledged,
    which keepalives do not cover. Without them a cut-off process waits for
    TCP's own retransmission limit, about 15 minutes.
    """
    return {
        "keepalives": 1,
        "keepalives_idle": idle,
        "keepalives_interval": 1,
        "keepalives_count": 3,
        "tcp_user_timeout": (idle + 3) * 1000,
    }


def server_keepalives(idle: int) -> dict[str, int]:
    """The same limits on the server's side of a session (settable per session)."""
    return {
        "tcp_keepalives_idle": idle,
        "tcp_keepalives_interval": 1,
        "tcp_keepalives_count": 3,
        "tcp_user_timeout": (idle + 3) * 1000,
    }


def _conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresLeadership:
    """The advisory lock on a dedicated connection."""

    def __init__(self, url: str, keepalive: float, label: str | None = None) -> None:
        self._conninfo = _conninfo(url)
        self._keepalive = max(int(keepalive), 1)
        self._label = label or process_label()
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self.held = False
        self._unreachable = False

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        idle = self._keepalive
        conn = psycopg.connect(
            make_conninfo(
                self._conninfo,
                application_name=self._label[:63],
                connect_timeout=max(idle, 2),
                **client_keepalives(idle),
            ),
            autocommit=True,
        )
        # The server probes us too, and ends the session (freeing the lock) when we
        # are gone without a word: keepalives while the session is idle, and
        # tcp_user_timeout while an answer of its own goes unacknowledged.
        for name, value in server_keepalives(idle).items():
            conn.execute(f"SET {name} = {value}")
        conn.execute(f"SET statement_timeout = {(idle + 3) * 1000}")
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None
        self.held = False

    def try_acquire(self) -> bool:
        """See :class:`Leadership`."""
        if self.held:
            return self.still_held()
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
        except psycopg.Error as exc:
            log.warning("leader lock: database unreachable: %s", str(exc).strip().splitlines()[0])
            self._unreachable = True
            self._drop()
            return False
        if self._unreachable:
            log.info("leader lock: database reachable again")
            self._unreachable = False
        self.held = bool(row and row[0])
        return self.held

    def still_held(self) -> bool:
        """See :class:`Leadership`."""
        if self._conn is None:
            return False
        try:
            row = self._conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND pid = pg_backend_pid() AND classid = 0 AND objid = %s AND objsubid = 1",
                (LOCK_KEY,),
            ).fetchone()
        except psycopg.Error as exc:
            log.warning("leader lock lost: %s", str(exc).strip().splitlines()[0])
            self._unreachable = True
            self._drop()
            return False
        if not (row and row[0]):
            self.held = False
        return self.held

    def release(self) -> None:
        """See :class:`Leadership`."""
        if self._conn is not None and self.held:
            # Closing the session frees it anyway if this fails.
            with contextlib.suppress(psycopg.Error):
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        self._drop()


def postgres_holder(url: str) -> str | None:
    """The label of the process holding the lock (its ``application_name``), if any."""
    with psycopg.connect(_conninfo(url), autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT a.application_name, a.client_addr, a.backend_start FROM pg_locks l"
            " JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0"
            " AND l.objid = %s AND l.objsubid = 1"
            # pg_locks lists every database's locks; the same key in another
            # database is another installation's leader, not ours.
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (LOCK_KEY,),
        ).fetchone()
    if row is None:
        return None
    name, address, since = row
    where = f" from {address}" if address else ""
    return f"{name}{where} (connected since {since:%Y-%m-%d %H:%M:%S %Z})"


def lock_path(url: str) -> Path:
    """The lock file of a SQLite database: beside it, ``<database>.scheduler.lock``."""
    database = make_url(url).database
    if not database or database == ":memory:":
        raise ValueError("the scheduler needs a SQLite file, not an in-memory database")
    return Path(database).with_name(Path(database).name + ".scheduler.lock")


class FileLeadership:
    """An exclusive ``flock`` on the lock file, holding this process's label."""

    def __init__(self, path: Path, label: str | None = None) -> None:
        self._path = path
        self._label = label or process_label()
        self._file: IO[str] | None = None
        self.held = False

    def try_acquire(self) -> bool:
        """See :class:`Leadership`."""
        if self.held:
            return self.still_held()
        handle = open(self._path, "a+")  # noqa: SIM115 -- kept open while the lock is held
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(self._label + "\n")
        handle.flush()
        self._file = handle
        self.held = True
        return True

    def still_held(self) -> bool:
        """See :class:`Leadership`: the file we lock must still be the one at the path."""
        if self._file is None:
            return False
        try:
            same = os.stat(self._path).st_ino == os.fstat(self._file.fileno()).st_ino
        except OSError:
            same = False
        if not same:
            log.warning("leader lock file %s was removed or replaced", self._path)
            self.release()
        return self.held

    def release(self) -> None:
        """See :class:`Leadership`."""
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
        self._file = None
        self.held = False


def file_holder(path: Path) -> str | None:
    """The label in the lock file if a live process holds it, else None."""
    if not path.exists():
        return None
    with open(path) as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "a process that wrote no label"
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return None


def leadership_for(url: str, keepalive: float) -> PostgresLeadership | FileLeadership:
    """The leader lock that suits the database at ``url``."""
    if make_url(url).get_backend_name() == "postgresql":
        return PostgresLeadership(url, keepalive)
    return FileLeadership(lock_path(url))


def holder_for(url: str) -> str | None:
    """Who leads the schedulers of the database at ``url`` (None: nobody)."""
    if make_url(url).get_backend_name() == "postgresql":
        return postgres_holder(url)
    return file_holder(lock_path(url))
