"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL: each test run creates its own database (``tracker_test_<random>``)
on the server named by ``TRACKER_TEST_PG_URL`` (default: the local one) and
drops it at the end. With ``CI=true`` an unreachable server fails the run;
elsewhere the PostgreSQL half is skipped with the reason shown.

The clock: a test that depends on the date says so by pinning it (the
``time_machine`` fixture, or an explicit ``now=``). ``TRACKER_TEST_CLOCK``
(an ISO 8601 instant) stops the clock of every in-process test at that
instant; ``make test-clock`` runs the suite so at awkward instants, and a test
that silently relies on the real date fails there.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from tracker import create_app, migrate
from tracker.db import Database
from tracker.domain.donors import derive_secret
from tracker.models import Base

PG_ADMIN_URL = os.environ.get("TRACKER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SECRET = "test-secret-key-" + "x" * 32
# The donor key secret the test app derives from SECRET, for databases opened by hand.
DONOR_KEY_SECRET = derive_secret(SECRET)
MOVED_CLOCK = os.environ.get("TRACKER_TEST_CLOCK", "")


def moved_clock() -> datetime | None:
    """The instant ``TRACKER_TEST_CLOCK`` names, or ``None`` for the real clock."""
    if not MOVED_CLOCK:
        return None
    instant = datetime.fromisoformat(MOVED_CLOCK)
    if instant.tzinfo is None:
        raise pytest.UsageError("TRACKER_TEST_CLOCK needs an offset: 2028-02-29T23:59:59+00:00")
    return instant


def missing_service(what: str, reason: str) -> None:
    """Fail in CI, skip elsewhere: a missing service must never pass silently in CI."""
    message = f"{what} unavailable: {reason}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true requires it)", pytrace=False)
    pytest.skip(message)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under ``CI=true`` a skipped test fails, whoever skipped it.

    :func:`missing_service` already fails in CI; this also catches a skip
    marker, ``importorskip`` or a plain ``pytest.skip`` added later, so a
    missing service can never turn into a green run.
    """
    report: pytest.TestReport = yield
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which runs every test: {reason}"
    return report


@pytest.fixture(autouse=True)
def _moved_clock(request: pytest.FixtureRequest) -> Iterator[None]:
    # Processes the tests start (gunicorn, localstripe) keep the real clock, so
    # the tests that use them (marked slow) keep it too.
    instant = moved_clock()
    if instant is None or request.node.get_closest_marker("slow"):
        yield
        return
    with time_machine.travel(instant, tick=False):
        yield


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's own TRACKER_* settings must not leak into tests.
    for name in list(os.environ):
        if name.startswith("TRACKER_") and name != "TRACKER_TEST_PG_URL":
            monkeypatch.delenv(name)


def _admin_conninfo() -> str:
    url = make_url(PG_ADMIN_URL)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def drop_pg_database(name: str) -> None:
    """Drop the database ``name`` of the test server, whoever is still connected to it."""
    with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_pg_database(prefix: str) -> Iterator[str]:
    """The URL of a new, empty database ``<prefix>_<random>`` on the test server, dropped after.

    An unreachable server fails in CI and skips elsewhere (:func:`missing_service`).
    """
    name = f"{prefix}_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(_admin_conninfo(), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        missing_service("PostgreSQL", str(exc).strip().splitlines()[0])
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(PG_ADMIN_URL).set(drivername="postgresql+psycopg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        drop_pg_database(name)


def sqlite_copy(source: Path, target: Path) -> str:
    """The URL of ``target``, made a copy of the SQLite file ``source``."""
    shutil.copyfile(source, target)
    return f"sqlite:///{target}"


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test run, dropped afterwards."""
    with fresh_pg_database("tracker_test") as rendered:
        database = Database(rendered)
        migrate.upgrade(database.engine)
        database.dispose()
        yield rendered


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies (faster than migrating per test)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.sqlite3"
    database = Database(f"sqlite:///{path}")
    migrate.upgrade(database.engine)
    with database.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    database.dispose()
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty, migrated database of each kind, private to the test."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        yield sqlite_copy(template, tmp_path / "tracker.sqlite3")
        return
    url: str = request.getfixturevalue("pg_server_url")
    yield url
    _empty_postgresql(url)


def _empty_postgresql(url: str) -> None:
    # DELETE is far quicker than TRUNCATE on tables this small (TRUNCATE swaps
    # files and syncs). Replica mode switches off the triggers that keep the
    # ledger append-only: this is the test's own throw-away database.
    engine = Database(url).engine
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    engine.dispose()


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    """A :class:`Database` on the test's database, hashing donor keys as the test app does."""
    database = Database(db_url, donor_key_secret=DONOR_KEY_SECRET)
    yield database
    database.dispose()


@pytest.fixture
def session(database: Database) -> Iterator[Session]:
    """A write session; tests commit when they need to."""
    with database.session() as session:
        yield session


def make_app(db_url: str, **overrides: Any) -> Flask:
    """An app on ``db_url`` with test settings; ``overrides`` win."""
    config = {
        "TESTING": True,
        "DATABASE_URL": db_url,
        "SECRET_KEY": SECRET,
        "API_CACHE_SECONDS": 0,
        **overrides,
    }
    return create_app(config)


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    """The application on the test's database."""
    application = make_app(db_url)
    yield application
    application.extensions["tracker.db"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of :func:`app`."""
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    """A CLI runner of :func:`app`."""
    return app.test_cli_runner()


@pytest.fixture(scope="session")
def localstripe_url() -> Iterator[str]:
    """A localstripe server (the Stripe stand-in) on a loopback port for the whole run."""
    from contextlib import ExitStack

    from tests.servers import localstripe

    with ExitStack() as stack:
        try:
            url = stack.enter_context(localstripe())
        except (ImportError, RuntimeError) as exc:
            missing_service("localstripe", str(exc))
        yield url
