"""Engines and sessions for SQLite and PostgreSQL, and their Flask wiring.

Writers and readers get different sessions because SQLite needs it: a
transaction that reads and then writes can fail at once with "database is
locked" when another writer got in between, whatever the busy timeout. Write
sessions therefore start with ``BEGIN IMMEDIATE`` on SQLite, which waits for
the write lock up front; read sessions start a plain deferred transaction, so
readers never queue behind each other.

On PostgreSQL both are ordinary transactions, except the read session of a
request with a safe method, which runs in autocommit mode: under READ COMMITTED
every statement takes its own snapshot anyway, so its transaction bought
nothing but two round trips (BEGIN, ROLLBACK), and psycopg forgets every
prepared statement of a connection at each ROLLBACK, so a page's statements
were parsed and planned afresh on every request. Other reads (the CLI, a CSV
export's server-side cursor, ``check_totals``' lock) keep their transaction.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial
from operator import itemgetter
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock: SQLite writers just poll
    fcntl = None  # type: ignore[assignment]

from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from tracker.services.donors import DONOR_SECRET_INFO

_WRITE_OPTION = "tracker_write"
# The turn of a queue of writers (write_turns): what a write BEGIN runs first
# while a block is open in this thread, and in the block's Session.info what
# gives the turn back at its COMMIT.
_TAKE_TURN: ContextVar[Callable[[], None] | None] = ContextVar("tracker_take_turn", default=None)
_TURN_END = "tracker.turn.end"
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
        take_turn = _TAKE_TURN.get() if immediate else None
        if take_turn is not None:
            take_turn()
        # On the driver's cursor, like Prepared: exec_driver_sql's execution machinery
        # cost more than the BEGIN itself, twice per webhook delivery.
        run_on_driver(connection, "BEGIN IMMEDIATE" if immediate else "BEGIN", ())


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
        page_engine = self.engine
        if self.engine.dialect.name == "postgresql":
            page_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._page_readers = sessionmaker(page_engine, expire_on_commit=False, info=info)
        event.listen(self._page_readers, "before_flush", _refuse_writes)
        self._write_engine = self.engine.execution_options(**{_WRITE_OPTION: True})
        self._writers = sessionmaker(self._write_engine, expire_on_commit=False, info=info)
        event.listen(self._writers, "after_commit", _end_turn)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def session(self, *, write: bool = True) -> Session:
        """A new session; ``write=False`` for work that only reads."""
        return (self._writers if write else self._readers)()

    def page_session(self) -> Session:
        """A read session for a page: no transaction on PostgreSQL, and it never writes.

        Each statement runs on its own there (autocommit), so the connection keeps
        its prepared statements; no lock and no server-side cursor (``yield_per``)
        in it, they need :meth:`session`. A flush raises ``RuntimeError``.
        """
        return self._page_readers()

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


@contextmanager
def write_turns(session: Session) -> Iterator[Session]:
    """``session``'s write transactions, queued with other processes' on SQLite.

    SQLite has one writer at a time, and a writer that finds the lock taken polls
    with growing sleeps (up to 100 ms each) until its busy timeout. Under several
    gunicorn workers receiving webhooks, most of the time was spent asleep. A
    blocking ``flock`` on a file beside the database (``<file>.inbox-lock``)
    queues these writers instead and hands the turn over the moment it is free.
    Writers outside such a block still wait on SQLite's own lock. No-op on
    PostgreSQL and for an in-memory database.

    The turn is held from each write transaction's ``BEGIN`` to its ``COMMIT``
    (or to the end of the block, for one rolled back): SQLAlchemy's set-up of
    the transaction before and its bookkeeping after run while the others write.
    Every write session that begins in the block, in this thread, takes the
    turn; the block's own session gives it back at each commit. A session still
    in a transaction at the end of the block is closed before the turn is given
    back.
    """
    bind = session.get_bind()
    path = bind.engine.url.database if bind.dialect.name == "sqlite" else None
    if fcntl is None or not path or path == ":memory:" or path.startswith("file:"):
        yield session
        return
    fd = os.open(f"{path}.inbox-lock", os.O_RDWR | os.O_CREAT, 0o600)
    # Taken by each BEGIN (_on_begin): a turn still held lets it through at once.
    token = _TAKE_TURN.set(partial(fcntl.flock, fd, fcntl.LOCK_EX))
    try:
        session.info[_TURN_END] = partial(fcntl.flock, fd, fcntl.LOCK_UN)
        yield session
    finally:
        _TAKE_TURN.reset(token)
        session.info.pop(_TURN_END, None)
        if session.in_transaction():
            session.close()
        os.close(fd)  # closing the descriptor gives back a turn still held


def _end_turn(session: Session) -> None:
    # After the COMMIT (after_commit), before SQLAlchemy's bookkeeping of it. The
    # event fires for a savepoint's release too, which commits nothing yet.
    end = session.info.get(_TURN_END)
    if end is not None and session.get_nested_transaction() is None:
        end()


def _refuse_writes(session: Session, _context: Any, _instances: Any) -> None:
    # A page session on PostgreSQL commits each statement on its own, so a write
    # there would land piecemeal: a GET that writes is a bug either way.
    raise RuntimeError("a page session does not write: use Database.session(write=True)")


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

    Safe HTTP methods get a page session (:meth:`Database.page_session`);
    anything else (and the CLI, where no request exists) gets a write session.
    """
    session: Session | None = g.get("tracker_session")
    if session is None:
        database = get_database(current_app)
        if has_request_context() and request.method in _SAFE_METHODS:
            session = database.page_session()
        else:
            session = database.session()
        g.tracker_session = session
    return session


class Prepared:
    """A Core statement compiled once per dialect and run on the DBAPI cursor directly.

    For the few statements of a hot path (a webhook delivery runs about a dozen):
    ``Session.execute`` spends 50 to 90 µs per statement in SQLAlchemy's execution
    machinery (cache lookup, execution context, result set-up, events), about ten
    times what the driver itself takes. This keeps what matters of it: the SQL is
    SQLAlchemy's own compilation of the statement, parameters go through each
    column type's bind processor (UTC instants, enums, booleans), the statement
    runs in the session's transaction on its connection after its pending ORM
    changes are flushed (autoflush), and a driver error is
    raised as SQLAlchemy's ``DBAPIError`` (values hidden, a lost connection
    invalidated) exactly as ``Session.execute`` raises it. Results are the
    driver's rows: the caller converts what it reads.

    The session's connection is looked up once per transaction (kept in
    ``Session.info`` with the transaction it belongs to, used only while that
    transaction is the current one and active), and each statement gets a binder
    built once that does only what its parameters need.
    """

    def __init__(self, statement: Any, keys: Iterable[str] | None = None) -> None:
        """``keys``: for an INSERT, the columns the parameters give (compiled once)."""
        self.statement = statement
        self.keys = list(keys) if keys is not None else None
        self._compiled: dict[str, tuple[str, Callable[[Mapping[str, Any]], Any]]] = {}

    def _compile(self, dialect: Dialect) -> tuple[str, Callable[[Mapping[str, Any]], Any]]:
        compiled = self.statement.compile(dialect=dialect, column_keys=self.keys)
        # Python-side column defaults are computed by SQLAlchemy's execution, which
        # this skips: the caller gives those values instead.
        missing = [c.key for c in (*compiled.insert_prefetch, *compiled.update_prefetch)]
        if missing:
            raise ValueError(f"give these values, their defaults would not run: {missing}")
        # Literal values of the statement (``attempts + 1``) are parameters too.
        defaults = {
            name: bind.effective_value
            for name, bind in compiled.binds.items()
            if not bind.required and bind.callable is None
        }
        processors = {
            name: processor
            for name, bind in compiled.binds.items()
            if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }
        if dialect.positional:
            return compiled.string, _positional_binder(
                list(compiled.positiontup or ()), defaults, processors
            )
        return compiled.string, _named_binder(defaults, processors)

    def execute(self, session: Session, values: Mapping[str, Any]) -> Any:
        """Run it in ``session``'s transaction with ``values``; the DBAPI cursor, executed."""
        if session.autoflush:
            session.flush()  # as Session.execute would: pending ORM changes first
        # The session's connection, taken once per transaction: Session.connection()
        # costs more than a statement's driver call here (a dozen per delivery). The
        # cache holds only while that very transaction is the session's current one
        # and active, the checks Session.connection() makes; any other (a savepoint,
        # the next transaction, one rolled back) takes the long way again.
        transaction = session.get_nested_transaction() or session.get_transaction()
        cached = session.info.get(_CONNECTION_INFO)
        if (
            cached is not None
            and transaction is not None
            and cached[0] is transaction
            and transaction.is_active
        ):
            connection: Connection = cached[1]
        else:
            connection = session.connection()
            current = session.get_nested_transaction() or session.get_transaction()
            session.info[_CONNECTION_INFO] = (current, connection)
        dialect = connection.dialect
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compiled[dialect.name] = self._compile(dialect)
        sql, bind = compiled
        return run_on_driver(connection, sql, bind(values))


def run_on_driver(connection: Connection, sql: str, params: Any) -> Any:
    """Run ``sql`` on ``connection``'s DBAPI cursor; the cursor, executed.

    A driver error is raised as SQLAlchemy's ``DBAPIError`` (values hidden), and a
    lost connection is invalidated, as ``Connection.execute`` would do.
    """
    dialect = connection.dialect
    # Connection.connection raises, as Connection.execute would, once the connection
    # was invalidated (a lost connection) until its transaction is rolled back.
    dbapi_connection = connection.connection.dbapi_connection
    assert dbapi_connection is not None  # an open Connection always has one
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(sql, params)
    except dialect.loaded_dbapi.Error as exc:
        lost = dialect.is_disconnect(exc, dbapi_connection, cursor)
        if lost:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            sql,
            params,
            exc,
            dialect.loaded_dbapi.Error,
            hide_parameters=True,
            connection_invalidated=lost,
            dialect=dialect,
        ) from exc
    return cursor


# Where Prepared keeps the connection of a session's current transaction.
_CONNECTION_INFO = "tracker.prepared.connection"


def _positional_binder(
    order: list[str], defaults: Mapping[str, Any], processors: Mapping[str, Callable[[Any], Any]]
) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """The parameters of a positional driver (sqlite3): a tuple in the statement's order.

    Built once per statement, so a call does only what that statement needs: the
    literals merged only if it has any, the values picked in C (``itemgetter``),
    and only the positions whose type has a bind processor processed.
    """
    if not order:
        return lambda _values: ()
    pick = itemgetter(*order)
    single = len(order) == 1
    processed = [(i, processors[name]) for i, name in enumerate(order) if name in processors]

    def bind(values: Mapping[str, Any]) -> tuple[Any, ...]:
        picked = pick({**defaults, **values} if defaults else values)
        if single:
            picked = (picked,)
        if not processed:
            return picked  # type: ignore[no-any-return]
        params = list(picked)
        for i, processor in processed:
            params[i] = processor(params[i])
        return tuple(params)

    return bind


def _named_binder(
    defaults: Mapping[str, Any], processors: Mapping[str, Callable[[Any], Any]]
) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """The parameters of a driver taking them by name (psycopg): a new dict, processed."""
    items = list(processors.items())

    def bind(values: Mapping[str, Any]) -> dict[str, Any]:
        merged = {**defaults, **values}
        for name, processor in items:
            if name in merged:
                merged[name] = processor(merged[name])
        return merged

    return bind
