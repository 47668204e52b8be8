"""Backups of the database while the service runs: SQLite's online backup, ``pg_dump``.

SQLite: the online backup API (``sqlite3.Connection.backup``) copies the pages
inside one read transaction, so the copy is the database as of one instant,
whatever writers do meanwhile (in WAL mode they are not even held up). The
copy is checked with ``PRAGMA integrity_check`` before it takes its name.

PostgreSQL: ``pg_dump --format=custom``, also one snapshot; restore it into an
empty database with :data:`PG_RESTORE` (docs/operations.md). The password, if
the URL has one, goes to ``pg_dump`` in its environment, never on its command
line where other users could read it.

Either way the backup is written next to ``PATH`` under a temporary name and
renamed at the end, so ``PATH`` is a whole backup or absent, never half.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

# How to put a backup back (also printed by the command and in docs/operations.md).
SQLITE_RESTORE = (
    "stop the services, copy {path} over the database file "
    "(and delete its -wal and -shm files), start the services"
)
PG_RESTORE = (
    "createdb -T template0 NEWDB && "
    "pg_restore --no-owner --no-privileges --exit-on-error --single-transaction "
    "--dbname NEWDB {path}"
)


class BackupError(Exception):
    """A backup could not be made; ``str()`` says why in one line."""


@dataclass(frozen=True, slots=True)
class Backup:
    """A finished backup: where, of which kind of database, its size and how to restore it."""

    path: Path
    dialect: str
    size: int
    restore: str


def backup(database_url: str, path: Path, *, pg_dump: str | None = None) -> Backup:
    """Write a consistent backup of the database at ``database_url`` to ``path``.

    :param pg_dump: the ``pg_dump`` program (default: found on ``PATH``).
    :raise BackupError: ``path`` exists, its directory does not, the database is
        unreachable, ``pg_dump`` is missing or fails, or the copy is damaged.
    """
    path = path.expanduser()
    if path.exists():
        raise BackupError(f"{path} already exists; choose a new name")
    if not path.parent.is_dir():
        raise BackupError(f"{path.parent} is not a directory")
    url = make_url(database_url)
    partial = path.with_name(f".{path.name}.partial")
    try:
        if url.get_backend_name() == "sqlite":
            if not url.database or url.database == ":memory:":
                raise BackupError("an in-memory SQLite database cannot be backed up")
            _sqlite(Path(url.database), partial)
            restore = SQLITE_RESTORE.format(path=path)
        else:
            _pg_dump(database_url, partial, pg_dump)
            restore = PG_RESTORE.format(path=path)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return Backup(path, url.get_backend_name(), path.stat().st_size, restore)


def _sqlite(source: Path, target: Path) -> None:
    if not source.is_file():
        raise BackupError(f"no SQLite database at {source}")
    try:
        # Read-only: a backup must never create or change the database it copies.
        with (
            closing(sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)) as src,
            closing(sqlite3.connect(target)) as dst,
        ):
            # One step: all pages inside one read transaction, hence one instant.
            src.backup(dst)
            # A standalone file: no -wal beside it to forget when it is copied back.
            dst.execute("PRAGMA journal_mode = DELETE")
            (verdict,) = dst.execute("PRAGMA integrity_check").fetchone()
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite: {exc}") from None
    if verdict != "ok":
        raise BackupError(f"the copy failed its integrity check: {verdict}")


def _pg_dump(database_url: str, target: Path, program: str | None) -> None:
    binary = program or shutil.which("pg_dump")
    if binary is None:
        raise BackupError("pg_dump is not installed (Debian: apt-get install postgresql-client)")
    url = make_url(database_url)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    conninfo = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    command = [binary, "--format=custom", "--no-owner", "--no-privileges"]
    command += ["--file", str(target), "--dbname", conninfo]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise BackupError(f"cannot run pg_dump: {exc}") from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        raise BackupError(f"pg_dump failed: {lines[0]}")
