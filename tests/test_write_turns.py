"""``tracker.db.write_turns``: SQLite writers queue on a ``flock``, held from BEGIN to COMMIT.

The turn is looked at from outside, as another process would see it: a second
descriptor of the lock file asks for it without waiting (``LOCK_NB``).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text

from tests import factories
from tests.conftest import sqlite_copy
from tests.polling import wait_until
from tracker.db import Database, write_turns
from tracker.models import Campaign


@pytest.fixture
def sqlite_file(sqlite_template: Path, tmp_path: Path) -> Iterator[Database]:
    """A migrated SQLite database in a file of the test's own."""
    database = Database(sqlite_copy(sqlite_template, tmp_path / "turns.sqlite3"))
    yield database
    database.dispose()


def _turn_taken(database: Database) -> bool:
    """Whether some descriptor other than this one holds the writers' turn."""
    fd = os.open(f"{database.engine.url.database}.inbox-lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _flock_awaited(path: Path) -> bool:
    """Whether some process or thread waits for a ``flock`` on ``path`` (Linux's /proc/locks)."""
    inode = f":{path.stat().st_ino} "
    # A waiter's line reads "<n>: -> FLOCK ..." and names the file as major:minor:inode.
    return any(
        "-> FLOCK" in line and inode in line
        for line in Path("/proc/locks").read_text().splitlines()
    )


def _write(session: object) -> None:
    session.execute(text("UPDATE campaigns SET title = title"))  # type: ignore[attr-defined]


def test_the_turn_is_held_from_each_begin_to_its_commit(sqlite_file: Database) -> None:
    with sqlite_file.session() as session, write_turns(session):
        assert not _turn_taken(sqlite_file)  # no transaction yet
        _write(session)
        assert _turn_taken(sqlite_file)
        session.commit()
        assert not _turn_taken(sqlite_file)  # given back at the COMMIT
        _write(session)  # the next transaction of the block takes it again
        assert _turn_taken(sqlite_file)
        session.commit()
        assert not _turn_taken(sqlite_file)
    assert not _turn_taken(sqlite_file)


def test_a_read_session_in_the_block_takes_no_turn(sqlite_file: Database) -> None:
    with sqlite_file.session() as session, write_turns(session):
        with sqlite_file.session(write=False) as reader:
            reader.execute(text("SELECT count(*) FROM campaigns")).scalar_one()
            assert reader.in_transaction() and not _turn_taken(sqlite_file)
        _write(session)
        assert _turn_taken(sqlite_file)
        session.commit()


def test_a_savepoint_keeps_the_turn_until_the_commit(sqlite_file: Database) -> None:
    with sqlite_file.session() as session, write_turns(session):
        with session.begin_nested():
            _write(session)
        # The savepoint's release fires after_commit too: nothing is committed yet.
        assert _turn_taken(sqlite_file)
        session.commit()
        assert not _turn_taken(sqlite_file)


def test_a_transaction_rolled_back_keeps_the_turn_to_the_end_of_the_block(
    sqlite_file: Database,
) -> None:
    with pytest.raises(RuntimeError), sqlite_file.session() as session, write_turns(session):
        _write(session)
        session.rollback()
        assert _turn_taken(sqlite_file)
        raise RuntimeError("the caller failed")
    assert not _turn_taken(sqlite_file)


def test_a_block_left_in_a_transaction_is_rolled_back_before_the_turn_is_given_back(
    sqlite_file: Database,
) -> None:
    with sqlite_file.session() as session:
        factories.campaign(session, slug="kept")
        with write_turns(session):
            session.execute(text("UPDATE campaigns SET title = 'never'"))
        assert not session.in_transaction()
        assert not _turn_taken(sqlite_file)
    with sqlite_file.session(write=False) as reader:
        assert reader.scalar(select(Campaign.title).where(Campaign.slug == "kept")) == "Fund us"


def test_a_serial_connection_does_not_carry_the_turn_past_its_block(
    sqlite_file: Database,
) -> None:
    with sqlite_file.serial_sessions() as factory:
        with factory() as session, write_turns(session):
            _write(session)
            session.commit()
        # The same connection, outside any block: its BEGIN takes no turn (and
        # does not flock the block's closed descriptor).
        with factory() as session:
            _write(session)
            assert not _turn_taken(sqlite_file)
            session.commit()


def test_a_writer_waits_for_the_turn_before_it_begins(sqlite_file: Database) -> None:
    """While another process holds the turn, a writer's BEGIN has not taken SQLite's lock."""
    fd = os.open(f"{sqlite_file.engine.url.database}.inbox-lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another process's turn (another open file)
    done: list[bool] = []

    def writer() -> None:
        with sqlite_file.session() as session, write_turns(session):
            _write(session)
            session.commit()
            done.append(True)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        # Queued: the writer is blocked on the lock file, not merely slow to start.
        lock = Path(f"{sqlite_file.engine.url.database}.inbox-lock")
        wait_until(lambda: _flock_awaited(lock), 30, "the writer to wait for the turn")
        assert thread.is_alive() and not done
        # SQLite's own write lock is free: the queued writer has not begun. A
        # connection that would wait for it at all fails at once instead.
        probe = sqlite3.connect(str(sqlite_file.engine.url.database), timeout=0)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
        finally:
            probe.close()
    finally:
        os.close(fd)  # the turn is handed to the writer
        thread.join(timeout=30)
    assert done == [True]


def test_no_turn_on_postgresql(pg_server_url: str) -> None:
    database = Database(pg_server_url)
    try:
        with database.session() as session, write_turns(session):
            assert session.scalar(text("SELECT 1")) == 1
        assert not Path(f"{database.engine.url.database}.inbox-lock").exists()
    finally:
        database.dispose()
