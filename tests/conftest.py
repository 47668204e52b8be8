"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL: each test run creates its own database (``tracker_test_<random>``)
on the server named by ``TRACKER_TEST_PG_URL`` (default: the local one) and
drops it at the end. With ``CI=true`` an unreachable server fails the run;
elsewhere the PostgreSQL half is skipped with the reason shown.

The clock: a test that depends on the date says so by pinning it (the
``time_machine`` fixture, or an explicit ``now=``). ``--moved-clocks`` (what
``make test`` passes) runs every in-process test once more at each of
:data:`CLOCK_INSTANTS`, with the clock stopped there, so a test that silently
relies on the real date fails; ``TRACKER_TEST_CLOCK`` (an ISO 8601 instant)
stops the clock of every in-process test of a run at that one instant.
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
# The awkward instants of --moved-clocks.
CLOCK_INSTANTS = {
    # the last second of a month (UTC; already February in Paris)
    "end-of-month": "2027-01-31T23:59:59+00:00",
    # the last second of 29 February
    "leap-day": "2028-02-29T23:59:59+00:00",
    # a second before Europe/Paris springs forward
    "before-dst": "2027-03-28T00:59:59+00:00",
    # a second before New Year in UTC+14 (Pacific/Kiritimati)
    "new-year-utc14": "2026-12-31T09:59:59+00:00",
}
# What the moved clocks leave out: tests that start processes of their own (marked
# slow: gunicorn, localstripe keep the real clock), the browser tests (a real
# Chromium), and files that read no clock at all (texts, configuration, schema,
# packaging, docs), which would only cost time.
CLOCK_FREE = (
    "tests/browser/",
    "tests/ops/",
    "tests/cluster/",
    "tests/test_i18n.py",
    "tests/test_amount_pattern.py",
    "tests/test_fuzz_public_forms.py",
    "tests/test_docs.py",
    "tests/test_config.py",
    "tests/test_schema.py",
    "tests/test_donor_key_migration.py",
    "tests/test_import_cycles.py",
    "tests/test_bench_harness.py",
    "tests/test_bench_floor.py",
    "tests/test_bench_run_all.py",
    "tests/unit/test_ci_skips.py",
    "tests/unit/test_moved_clocks.py",
    "tests/unit/test_packaging.py",
)
# Test folders whose tests start servers or a browser of their own (besides those marked slow).
PROCESS_DIRS = ("tests/browser/", "tests/cluster/", "tests/ops/")
ROOT = Path(__file__).resolve().parent.parent


def _instant(text: str, source: str) -> datetime:
    instant = datetime.fromisoformat(text)
    if instant.tzinfo is None:
        raise pytest.UsageError(f"{source} needs an offset: 2028-02-29T23:59:59+00:00")
    return instant


def moved_clock() -> datetime | None:
    """The instant ``TRACKER_TEST_CLOCK`` names, or ``None`` for the real clock."""
    return _instant(MOVED_CLOCK, "TRACKER_TEST_CLOCK") if MOVED_CLOCK else None


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--moved-clocks``: each in-process test also runs at every awkward instant."""
    parser.addoption(
        "--moved-clocks",
        choices=("off", "also", "only"),
        default="off",
        help="also: run each in-process test once more at each instant of CLOCK_INSTANTS "
        "(on SQLite); only: just those runs",
    )


def _clock_free(definition: pytest.Item) -> bool:
    path = definition.path.resolve().relative_to(ROOT).as_posix()
    return definition.get_closest_marker("slow") is not None or path.startswith(CLOCK_FREE)


def _starts_processes(item: pytest.Item) -> bool:
    path = item.path.resolve().relative_to(ROOT).as_posix()
    return item.get_closest_marker("slow") is not None or path.startswith(PROCESS_DIRS)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Under ``--moved-clocks``, parametrize each in-process test by the clock it runs at."""
    mode = metafunc.config.getoption("moved_clocks")
    if mode == "off" or _clock_free(metafunc.definition):
        return
    instants = list(CLOCK_INSTANTS) if mode == "only" else ["now", *CLOCK_INSTANTS]
    metafunc.parametrize("_moved_clock", instants, indirect=True, scope="function")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Moved clocks run on SQLite only, and tests that start processes share one worker.

    Every clock read is Python's (``utcnow()``, ``date.today()``), and the database
    only stores and compares the instants it is given (tests/test_schema.py checks
    that no statement reads the server's clock), so the PostgreSQL half at a moved
    clock would repeat the SQLite half. Under pytest-xdist (``make test``) the
    tests that start processes or a browser, and wait on them, run one after the
    other on one worker, so that their deadlines are measured beside in-process
    tests only, never beside another server test.
    """
    only = config.getoption("moved_clocks") == "only"
    kept, dropped = [], []
    for item in items:
        spec = getattr(item, "callspec", None)
        params = spec.params if spec is not None else {}
        moved = params.get("_moved_clock", "now") != "now"
        if (moved and params.get("db_url") == "postgresql") or (only and not moved):
            dropped.append(item)
            continue
        if _starts_processes(item):
            item.add_marker(pytest.mark.xdist_group("processes"))
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


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
def _moved_clock(request: pytest.FixtureRequest) -> Iterator[datetime | None]:
    # Processes the tests start (gunicorn, localstripe) keep the real clock, so
    # the tests that use them (marked slow) keep it too.
    name = getattr(request, "param", "now")
    instant = moved_clock() if name == "now" else _instant(CLOCK_INSTANTS[name], name)
    if instant is None or request.node.get_closest_marker("slow"):
        yield None
        return
    with time_machine.travel(instant, tick=False):
        yield instant


@pytest.fixture
def stopped_clock(_moved_clock: datetime | None) -> datetime | None:
    """The instant this test's clock is stopped at (a moved clock), or ``None``."""
    return _moved_clock


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
