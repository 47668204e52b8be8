"""The scheduler's maintenance jobs and its leader lock, in-process, on both databases."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests import factories
from tests.conftest import make_app
from tracker.config import ConfigError
from tracker.db import Database
from tracker.models import OutboxMessage, PeriodTotal, Pledge, PledgeSource, PledgeStatus
from tracker.notify.chat import ChatPolicy
from tracker.scheduler import jobs
from tracker.scheduler.leader import holder_for, leadership_for
from tracker.services.notifications import NotificationChanges, set_notifications


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    application = make_app(db_url)
    yield application
    application.extensions["tracker.db"].dispose()


def test_card_pledges_expire_after_a_day_offline_ones_wait(app: Flask, session: Session) -> None:
    fund = factories.campaign(session, "fund")
    created = datetime(2026, 11, 20, 12, tzinfo=UTC)
    for source in (PledgeSource.STRIPE, PledgeSource.OFFLINE):
        session.add(
            Pledge(
                campaign_id=fund.id,
                amount=1000,
                currency="USD",
                donor_email="d@example.org",
                source=source,
                created_at=created,
            )
        )
    session.commit()
    stop = threading.Event()
    assert (
        jobs.expire_pledges(app, stop, now=created + timedelta(hours=24)) == "0 pledge(s) expired"
    )
    assert (
        jobs.expire_pledges(app, stop, now=created + timedelta(hours=26)) == "1 pledge(s) expired"
    )
    session.expire_all()
    statuses = {p.source: p.status for p in session.scalars(select(Pledge))}
    assert statuses == {
        PledgeSource.STRIPE: PledgeStatus.EXPIRED,
        PledgeSource.OFFLINE: PledgeStatus.PENDING,
    }


def test_drift_is_reported_to_the_owners(app: Flask, session: Session) -> None:
    fund = factories.campaign(session, "fund")
    factories.pay(session, "fund", "p1", 5000)
    set_notifications(session, "fund", NotificationChanges(emails="o@example.org"), ChatPolicy())
    session.commit()
    stop = threading.Event()
    assert jobs.check_totals(app, stop) == "totals match the ledger"
    total = session.get(PeriodTotal, (fund.id, "all"))
    assert total is not None
    total.raised = 9999
    session.commit()
    assert "raised 9999 (ledger says 5000)" in jobs.check_totals(app, stop)
    assert jobs.check_totals(app, stop).startswith("1 drifted")
    session.expire_all()
    [row] = session.scalars(select(OutboxMessage)).all()
    assert row.kind == "drift" and row.recipient == "o@example.org"
    assert "raised 9999 (ledger says 5000)" in row.body_text


def test_retry_inbox_job_applies_a_stored_event(app: Flask, session: Session) -> None:
    from tests.stripe_helpers import event, metadata, payment_intent, pending_pledge
    from tracker.models import InboxStatus, StripeEvent

    factories.campaign(session, "fund")
    pledge = pending_pledge(session, amount=2811)
    payload = event(
        "payment_intent.succeeded", payment_intent(meta=metadata("fund", pledge.id), amount=2811)
    )
    import json

    data = json.loads(payload)
    # As a crash between storing and applying would leave it.
    session.add(
        StripeEvent(
            id=data["id"],
            type=data["type"],
            livemode=False,
            api_created_at=datetime.fromtimestamp(data["created"], UTC),
            payload=payload,
            status=InboxStatus.RECEIVED,
        )
    )
    session.commit()
    assert jobs.retry_inbox(app, threading.Event()) == "1 event(s), 1 processed"
    assert jobs.retry_inbox(app, threading.Event()) == "0 event(s)"
    session.expire_all()
    assert session.get(PeriodTotal, (pledge.campaign_id, "all")).raised == 2811  # type: ignore[union-attr]


def test_reconcile_only_with_a_stripe_key(app: Flask, db_url: str) -> None:
    assert "reconcile" not in {j.id for j in jobs.fixed_jobs(app)}
    keyed = make_app(db_url, STRIPE_SECRET_KEY="sk_test_" + "k" * 24)
    try:
        assert "reconcile" in {j.id for j in jobs.fixed_jobs(keyed)}
    finally:
        keyed.extensions["tracker.db"].dispose()


def test_one_leader_at_a_time(database: Database) -> None:
    first = leadership_for(database.url, 1)
    second = leadership_for(database.url, 1)
    try:
        assert holder_for(database.url) is None
        assert first.try_acquire()
        assert not second.try_acquire()
        assert first.still_held()
        holder = holder_for(database.url)
        assert holder is not None and holder.startswith("tracker-scheduler ")
        first.release()
        assert second.try_acquire()
        assert not first.try_acquire()
    finally:
        first.release()
        second.release()
    assert holder_for(database.url) is None


def test_a_leader_of_another_database_is_not_ours(database: Database) -> None:
    # Advisory locks are per database, but pg_locks lists them all: another
    # installation (or test run) on the same server must not show as our leader.
    if database.dialect != "postgresql":
        assert holder_for(database.url) is None  # a lock file of its own beside the database
        return
    import secrets

    import psycopg
    from sqlalchemy.engine import make_url

    from tests.conftest import _admin_conninfo
    from tracker.scheduler.leader import LOCK_KEY

    other = f"tracker_test_other_{secrets.token_hex(4)}"
    with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{other}"')
    try:
        url = make_url(database.url).set(drivername="postgresql", database=other)
        with psycopg.connect(url.render_as_string(hide_password=False)) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
            assert holder_for(database.url) is None
    finally:
        with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{other}" WITH (FORCE)')


def test_settings_are_checked(db_url: str) -> None:
    with pytest.raises(ConfigError, match="TRACKER_SCHEDULER_MILESTONE_SECONDS"):
        make_app(db_url, SCHEDULER_MILESTONE_SECONDS="soon")
    with pytest.raises(ConfigError, match="TRACKER_OUTBOX_LEASE_SECONDS: must be at least"):
        make_app(db_url, OUTBOX_LEASE_SECONDS="5")
    with pytest.raises(ConfigError, match="TRACKER_NOTIFY_ALLOW_PRIVATE"):
        make_app(db_url, NOTIFY_ALLOW_PRIVATE="maybe")


def test_summary_jobs_follow_the_campaign_settings(app: Flask, session: Session) -> None:
    from tracker.scheduler.process import SchedulerProcess

    factories.campaign(session, "fund", timezone="Europe/Paris")
    process = SchedulerProcess(app)
    process.refresh()
    assert [j.id for j in process.scheduler.get_jobs()] == []
    set_notifications(
        session, "fund", NotificationChanges("o@example.org", None, "weekly", 9), ChatPolicy()
    )
    session.commit()
    process.refresh()
    [job] = process.scheduler.get_jobs()
    assert job.id == "summary:fund" and str(job.trigger) == "weekly at 09:00 Europe/Paris"
    set_notifications(session, "fund", NotificationChanges(summary="off"), ChatPolicy())
    session.commit()
    process.refresh()
    assert process.scheduler.get_jobs() == []


def test_a_failing_job_is_logged_and_the_scheduler_goes_on(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from tracker.scheduler.process import SchedulerProcess

    def broken(_app: Flask, _stop: threading.Event) -> str:
        raise RuntimeError("SMTP exploded")

    process = SchedulerProcess(app)
    spec = jobs.JobSpec("broken", None, broken, "always fails")
    process._run(spec)  # a follower does nothing
    assert "broken" not in caplog.text
    process.leader_tick()  # takes the real lock: a job checks it before it runs
    assert process.is_leader
    try:
        with caplog.at_level(logging.INFO, logger="tracker.scheduler"):
            process._run(spec)
    finally:
        process.leadership.release()
    assert "job broken started" in caplog.text
    assert "job broken failed after" in caplog.text and "SMTP exploded" in caplog.text


def _break_lock(process: object, db_url: str) -> None:
    """Take the lock away from ``process`` the way a lost network does, from outside."""
    from tracker.scheduler.leader import FileLeadership, lock_path

    if isinstance(process.leadership, FileLeadership):  # type: ignore[attr-defined]
        lock_path(db_url).unlink()  # the file it locks is no longer the one at the path
        return
    database = Database(db_url)
    try:
        with database.engine.begin() as conn:
            from sqlalchemy import text

            # The server ends the lock's session, as its keepalives do for a silent client.
            ended = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = :label AND datname = current_database()"
                ),
                {"label": process.label[:63]},  # type: ignore[attr-defined]
            ).all()
        assert ended == [(True,)]
    finally:
        database.dispose()


def test_a_leader_that_lost_its_lock_runs_no_job_and_steps_down(
    app: Flask, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from tracker.scheduler.process import SchedulerProcess

    ran: list[str] = []

    def job(_app: Flask, _stop: threading.Event) -> str:
        ran.append("ran")
        return "done"

    process = SchedulerProcess(app)
    spec = jobs.JobSpec("probe", None, job, "records that it ran")
    process.leader_tick()
    assert process.is_leader
    try:
        process._run(spec)
        assert ran == ["ran"]
        # Delivery's stop check proves the lock too, not only the last poll.
        assert not process.job_stop.is_set()
        _break_lock(process, db_url)
        with caplog.at_level(logging.INFO):
            process._run(spec)  # no leader_tick in between: the job itself checks
        assert ran == ["ran"], "a job ran in a process that no longer held the lock"
        assert not process.is_leader
        assert process.job_stop.is_set()
        assert "is no longer the leader" in caplog.text
    finally:
        process.leadership.release()
