"""``tracker backup PATH`` and the restore drill, on SQLite and PostgreSQL.

The drill: money arrives through the real paths (signed webhooks, including a
refund that waits for its payment and a lost dispute; offline payments booked
with the CLI), the database is backed up with the command, restored as
docs/operations.md says into a fresh database, and the restored service must
agree to the byte: check-totals clean, every public response identical, every
table holding the same rows.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from tests import factories
from tests.conftest import PG_ADMIN_URL, drop_pg_database, make_app, missing_service, sqlite_copy
from tests.stripe_helpers import (
    charge,
    checkout_session,
    deliver_ok,
    dispute,
    event,
    metadata,
    new_id,
    payment_intent,
    pending_pledge,
    read_session,
    webhook_app,
)
from tracker.db import Database
from tracker.models import Base, LedgerEntry
from tracker.ops.backup import PG_RESTORE, BackupError, backup
from tracker.services.ledger import check_totals

PUBLIC = [
    "/api/v1/campaigns/fund",
    "/api/v1/campaigns/fund/periods",
    "/api/v1/campaigns/monthly",
    "/api/v1/campaigns/monthly/periods",
    "/api/v1/campaigns/nope",
    "/embed/fund",
    "/embed/monthly?cta=Help",
    "/campaigns/fund/progress.svg",
    "/campaigns/monthly/progress.svg",
]

# The webhook tests' read-mode session: the drill delivers webhooks as they do.
session = pytest.fixture(read_session, name="session")


def _populate(app: Flask, session: Session) -> None:
    """Money through the real paths: the webhook endpoint and the CLI."""
    runner = app.test_cli_runner()
    client = app.test_client()
    for argv in (
        ["create-campaign", "fund", "--title", "Fund", "--currency", "USD", "--tiers", "0,50,100"],
        [
            *("create-campaign", "monthly", "--title", "Monthly", "--currency", "EUR"),
            *("--tiers", "0,500", "--period", "month", "--timezone", "Europe/Paris"),
        ],
    ):
        result = runner.invoke(args=["tracker", *argv])
        assert result.exit_code == 0, result.output
    # Checkout: a pledge paid through its session.
    pledge = pending_pledge(session, "fund", 2500)
    intent = new_id("pi")
    deliver_ok(
        client,
        event(
            "checkout.session.completed",
            checkout_session(
                meta=metadata("fund", pledge.id),
                payment_intent=intent,
                session_id=pledge.stripe_checkout_session_id,
            ),
        ),
    )
    # A refund that arrives before its payment waits, then both count.
    intent2, ch2 = new_id("pi"), new_id("ch")
    refund = event("charge.refunded", charge(charge_id=ch2, intent_id=intent2, refunded=700))
    assert deliver_ok(client, refund)["status"] == "deferred"
    paid2 = payment_intent(meta=metadata("fund"), intent_id=intent2, charge_id=ch2, amount=4000)
    deliver_ok(client, event("payment_intent.succeeded", paid2))
    # A lost dispute on a third payment, in the monthly campaign.
    intent3, ch3 = new_id("pi"), new_id("ch")
    paid3 = payment_intent(
        meta=metadata("monthly"), intent_id=intent3, charge_id=ch3, amount=1500, currency="eur"
    )
    deliver_ok(client, event("payment_intent.succeeded", paid3))
    lost = dispute(
        dispute_id=new_id("dp"),
        charge_id=ch3,
        intent_id=intent3,
        status="lost",
        amount=1500,
        currency="eur",
    )
    deliver_ok(client, event("charge.dispute.closed", lost))
    # Offline money booked by an admin, with a re-run that books nothing.
    for _ in range(2):
        result = runner.invoke(
            args=[
                *("tracker", "add-offline-payment", "fund", "150.50", "--note", "bank transfer"),
                *("--donor", "Grace Hopper", "--reference", "bank-0001"),
            ]
        )
        assert result.exit_code == 0, result.output
    result = runner.invoke(
        args=["tracker", "add-offline-payment", "monthly", "20", "--note", "cash at the fair"]
    )
    assert result.exit_code == 0, result.output


def _public(app: Flask) -> dict[str, tuple[int, bytes]]:
    client = app.test_client()
    answers = {}
    for path in PUBLIC:
        response = client.get(path)
        answers[path] = (response.status_code, response.get_data())
    return answers


def _rows(database_url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table of ours, in primary-key order."""
    database = Database(database_url)
    try:
        with database.engine.connect() as conn:
            return {
                table.name: [
                    tuple(row)
                    for row in conn.execute(select(table).order_by(*table.primary_key.columns))
                ]
                for table in Base.metadata.sorted_tables
            }
    finally:
        database.dispose()


@contextmanager
def _fresh_pg(name: str) -> Iterator[dict[str, str]]:
    """libpq's environment for the admin server; ``name`` is dropped at the end."""
    url = make_url(PG_ADMIN_URL)
    env = {
        **os.environ,
        "PGHOST": url.host or "127.0.0.1",
        "PGPORT": str(url.port or 5432),
        "PGUSER": url.username or "postgres",
    }
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    try:
        yield env
    finally:
        drop_pg_database(name)


@contextmanager
def _restored(db_url: str, dump: Path, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh database restored from ``dump`` as docs/operations.md says."""
    if make_url(db_url).get_backend_name() == "sqlite":
        tmp_path.mkdir(exist_ok=True)
        yield sqlite_copy(dump, tmp_path / "restored.sqlite3")
        return
    for program in ("createdb", "pg_restore"):
        if shutil.which(program) is None:
            missing_service(program, "not installed (Debian: postgresql-client)")
    name = f"{make_url(db_url).database}_restored"
    with _fresh_pg(name) as env:
        command = PG_RESTORE.replace("NEWDB", shlex.quote(name)).format(path=shlex.quote(str(dump)))
        done = subprocess.run(
            ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        yield make_url(db_url).set(database=name).render_as_string(hide_password=False)


@pytest.mark.slow
def test_restore_drill(db_url: str, session: Session, tmp_path: Path) -> None:
    app = webhook_app(db_url)
    try:
        _populate(app, session)
        before = _public(app)
        dump = tmp_path / "tracker.backup"
        result = app.test_cli_runner().invoke(args=["tracker", "backup", str(dump)])
        assert result.exit_code == 0, result.output
        assert "restore: " in result.output
    finally:
        app.extensions["tracker.db"].dispose()
    assert before["/api/v1/campaigns/fund"][0] == 200
    assert b'"raised":20850' in before["/api/v1/campaigns/fund"][1]  # 25 + 40 - 7 + 150.50 $
    with _restored(db_url, dump, tmp_path) as restored_url:
        restored = make_app(restored_url)
        try:
            check = restored.test_cli_runner().invoke(args=["tracker", "check-totals"])
            assert check.exit_code == 0, check.output
            assert "totals match the ledger" in check.output
            assert _public(restored) == before
        finally:
            restored.extensions["tracker.db"].dispose()
        assert _rows(restored_url) == _rows(db_url)


def _count(database_url: str) -> int:
    database = Database(database_url)
    try:
        with database.session(write=False) as reader:
            assert check_totals(reader) == []
            return int(reader.scalar(select(func.count()).select_from(LedgerEntry)) or 0)
    finally:
        database.dispose()


@pytest.mark.slow
def test_a_backup_taken_while_payments_are_booked_is_consistent(
    db_url: str, database: Database, tmp_path: Path
) -> None:
    with database.session() as writer:
        factories.campaign(writer)
    stop = threading.Event()
    booked: list[int] = []
    failures: list[BaseException] = []

    def book() -> None:
        try:
            with database.session() as writer:
                while not stop.is_set():
                    factories.pay(writer, "fund", f"bank-{len(booked):06d}", 100 + len(booked))
                    booked.append(1)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    thread = threading.Thread(target=book, daemon=True)
    thread.start()
    counts = []
    try:
        for n in range(2):
            while len(booked) < 20 * (n + 1) and thread.is_alive():
                stop.wait(0.01)
            dump = tmp_path / f"during-{n}.backup"
            backup(db_url, dump)
            with _restored(db_url, dump, tmp_path / f"r{n}") as url:
                counts.append(_count(url))  # check_totals clean on the copy
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not failures, failures
    # Each copy holds what was committed before it began, and the writer went on.
    assert counts == sorted(counts) and counts[0] >= 20
    assert counts[-1] <= len(booked)


def test_backup_refuses_an_existing_path_and_leaves_it(db_url: str, tmp_path: Path) -> None:
    existing = tmp_path / "old.backup"
    existing.write_text("yesterday's backup")
    with pytest.raises(BackupError, match="already exists"):
        backup(db_url, existing)
    assert existing.read_text() == "yesterday's backup"
    with pytest.raises(BackupError, match="is not a directory"):
        backup(db_url, tmp_path / "missing" / "x.backup")
    assert not list(tmp_path.glob(".*.partial"))


def test_backup_command_refusal_is_one_line(app: Flask, tmp_path: Path) -> None:
    existing = tmp_path / "x.backup"
    existing.touch()
    result = app.test_cli_runner().invoke(args=["tracker", "backup", str(existing)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: {existing} already exists; choose a new name"
    ]


def test_a_failing_pg_dump_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "x.backup"
    with pytest.raises(BackupError, match="pg_dump failed"):
        backup("postgresql+psycopg://postgres@127.0.0.1:1/nothing", target)
    assert list(tmp_path.iterdir()) == []
