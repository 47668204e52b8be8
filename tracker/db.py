"""Engines and sessions for SQLite and PostgreSQL, and their Flask wiring.

Writers and readers get different sessions because SQLite needs it: a
transaction that reads and then writes can fail at once with "database is
locked" when another writer got in between, whatever the busy timeout. Write
sessions therefore start with ``BEGIN IMMEDIATE`` on SQLite, which waits for
the write lock up front; read sessions start a plain deferred transaction, so
readers never queue behind each other. On PostgreSQL both are ordinary
transactions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import Session, sessionmaker

from tracker.services.donors import DONOR_SECRET_INFO

_WRITE_OPTION = "tracker_write"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine with the pragmas and transaction handling each database needs."""
    parsed = make_url(url)
    # Errors quote the statement, never its values: they are logged, and values
    # carry event payloads and donor details (tracker/ops/logs.py).
    kwargs.setdefault("hide_parameters", True)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA busy_timeout = 30000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """One engine and its two session factories (read and write).

    ``donor_key_secret`` travels with every session (in ``Session.info``), so the
    services that hash donor e-mails need no extra parameter and no global; a
    session without it refuses to hash rather than store an address in clear.
    """

    def __init__(
        self, url: str, *, donor_key_secret: bytes | None = None, **engine_kwargs: Any
    ) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        info = {DONOR_SECRET_INFO: donor_key_secret} if donor_key_secret else {}
        self._readers = sessionmaker(self.engine, expire_on_commit=False, info=info)
        self._write_engine = self.engine.execution_options(**{_WRITE_OPTION: True})
        self._writers = sessionmaker(self._write_engine, expire_on_commit=False, info=info)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def session(self, *, write: bool = True) -> Session:
        """A new session; ``write=False`` for work that only reads."""
        return (self._writers if write else self._readers)()

    @contextmanager
    def serial_sessions(self) -> Iterator[Callable[[], Session]]:
        """A factory of write sessions that run one after another on one connection.

        For work made of several short transactions in a row (a webhook stores an
        event and commits, then applies it and commits): the connection is taken
        from the pool, and pinged, once instead of once per transaction. Each
        session still commits or rolls back its own transaction. Not for sessions
        open at the same time.
        """
        with self._write_engine.connect() as connection:
            yield lambda: self._writers(bind=connection)

    def dispose(self) -> None:
        """Close every pooled connection (after a fork, or at shutdown)."""
        self.engine.dispose()


def init_app(app: Flask, database: Database) -> None:
    """Attach ``database`` to ``app``: one session per request, closed at teardown."""
    app.extensions["tracker.db"] = database

    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        session: Session | None = g.pop("tracker_session", None)
        if session is not None:
            session.close()


def get_database(app: Flask) -> Database:
    """The :class:`Database` attached to ``app``."""
    database: Database = app.extensions["tracker.db"]
    return database


def get_session() -> Session:
    """The current request's session, opened on first use.

    Safe HTTP methods get a read session; anything else (and the CLI, where no
    request exists) gets a write session.
    """
    session: Session | None = g.get("tracker_session")
    if session is None:
        write = not (has_request_context() and request.method in _SAFE_METHODS)
        session = get_database(current_app).session(write=write)
        g.tracker_session = session
    return session
