"""Concurrent deliveries through gunicorn with several workers, and a database outage."""

from __future__ import annotations

import http.client
import json
import random
import secrets
import shutil
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from tests import factories
from tests.conftest import DONOR_KEY_SECRET, PG_ADMIN_URL, _empty_postgresql
from tests.servers import gunicorn
from tests.stripe_helpers import (
    NOWHERE,
    SECRET,
    charge,
    checkout_session,
    deliver_ok,
    event,
    invoice,
    metadata,
    new_id,
    payment_intent,
    pending_pledge,
    post,
    rebind,
    sign,
    totals,
    webhook_app,
)
from tracker import migrate
from tracker.db import Database
from tracker.models import InboxStatus, LedgerEntry, PledgeFrequency, StripeEvent
from tracker.services import stripe_events

pytestmark = pytest.mark.slow


def _env(db_url: str) -> dict[str, str]:
    return {
        "TRACKER_DATABASE_URL": db_url,
        "TRACKER_SECRET_KEY": "s" * 40,
        "TRACKER_STRIPE_SECRET_KEY": "sk_test_" + "k" * 24,
        "TRACKER_STRIPE_API_BASE": NOWHERE,
        "TRACKER_STRIPE_WEBHOOK_SECRET": SECRET,
    }


def _send_all(base: str, payloads: list[str]) -> list[int]:
    """POST every payload at once (one thread each, released together); the statuses."""
    target = urllib.parse.urlsplit(base)
    statuses: list[int] = [0] * len(payloads)
    start = threading.Barrier(len(payloads))

    def send(index: int, payload: str) -> None:
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
        start.wait()
        connection.request(
            "POST",
            "/webhooks/stripe",
            body=payload.encode(),
            headers={"Stripe-Signature": sign(payload), "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        response.read()
        statuses[index] = response.status
        connection.close()

    threads = [
        threading.Thread(target=send, args=(i, payload)) for i, payload in enumerate(payloads)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return statuses


def test_one_event_delivered_twenty_times_at_once_counts_once(
    db_url: str, client: FlaskClient, session: Session
) -> None:
    factories.campaign(session)
    pledge = pending_pledge(session)
    payload = event(
        "payment_intent.succeeded", payment_intent(meta=metadata("fund", pledge.id), amount=2811)
    )
    with gunicorn(_env(db_url), workers=4) as base:
        statuses = _send_all(base, [payload] * 20)
    assert statuses == [200] * 20
    assert totals(client, session) == (2811, 1, 1)
    assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 1


def test_many_payments_and_their_duplicates_at_once(
    db_url: str, client: FlaskClient, session: Session
) -> None:
    factories.campaign(session)
    payloads: list[str] = []
    for n in range(10):
        pledge = pending_pledge(session, amount=100 + n)
        intent = new_id("pi")
        meta = metadata("fund", pledge.id)
        completed = event(
            "checkout.session.completed",
            checkout_session(meta=meta, amount=100 + n, payment_intent=intent),
        )
        succeeded = event(
            "payment_intent.succeeded",
            payment_intent(meta=meta, amount=100 + n, intent_id=intent),
        )
        payloads += [completed, succeeded, completed, succeeded]
    random.Random(3).shuffle(payloads)
    with gunicorn(_env(db_url), workers=4) as base:
        statuses = _send_all(base, payloads)
    assert statuses == [200] * len(payloads)
    assert totals(client, session) == (sum(100 + n for n in range(10)), 10, 1)


# ---------------------------------------------------------------- database outage


def _pg_database(name: str) -> psycopg.Connection:
    admin_url = make_url(PG_ADMIN_URL).set(drivername="postgresql")
    return psycopg.connect(admin_url.render_as_string(hide_password=False), autocommit=True)


@pytest.fixture
def outage_db(db_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(kind, URL) of a database of its own that the test may take away and bring back."""
    if db_url.startswith("sqlite"):
        path = tmp_path / "outage.sqlite3"
        shutil.copyfile(make_url(db_url).database or "", path)
        yield "sqlite", f"sqlite:///{path}"
        return
    name = f"tracker_outage_{secrets.token_hex(4)}"
    with _pg_database(name) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(db_url).set(database=name).render_as_string(hide_password=False)
    database = Database(url)
    migrate.upgrade(database.engine)
    database.dispose()
    try:
        yield "postgresql", url
    finally:
        with _pg_database(name) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _take_away(kind: str, url: str, app: Flask) -> None:
    if kind == "postgresql":
        name = make_url(url).database
        with _pg_database(str(name)) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
    else:
        # The file moves away: a new connection finds an empty database without tables.
        path = Path(make_url(url).database or "")
        app.extensions["tracker.db"].dispose()
        path.rename(path.with_suffix(".away"))


def _bring_back(kind: str, url: str, app: Flask) -> None:
    if kind == "postgresql":
        name = make_url(url).database
        with _pg_database(str(name)) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    else:
        path = Path(make_url(url).database or "")
        app.extensions["tracker.db"].dispose()
        for stray in path.parent.glob(path.name + "*"):
            stray.unlink()
        path.with_suffix(".away").rename(path)


def test_database_unavailable_during_delivery_then_the_retry_credits_once(
    outage_db: tuple[str, str],
) -> None:
    kind, url = outage_db
    app = webhook_app(url)
    client = app.test_client()
    database: Database = app.extensions["tracker.db"]
    with database.session() as setup:
        factories.campaign(setup)
    first = event("payment_intent.succeeded", payment_intent(meta=metadata(), amount=1000))
    deliver_ok(client, first)

    second = event("payment_intent.succeeded", payment_intent(meta=metadata(), amount=500))
    _take_away(kind, url, app)
    try:
        response = post(client, second)
        assert response.status_code == 503
        assert response.get_json()["error"] == "database_unavailable"
    finally:
        _bring_back(kind, url, app)

    # Stripe delivers again: credited once, and only once.
    assert deliver_ok(client, second)["duplicate"] is False
    assert deliver_ok(client, second)["duplicate"] is True
    reader = Database(url)
    with reader.session(write=False) as session:
        assert totals(client, session) == (1500, 2, 2)
        statuses = session.scalars(select(StripeEvent.status)).all()
        assert sorted(statuses) == [InboxStatus.PROCESSED, InboxStatus.PROCESSED]
        assert json.loads(second)["id"] in session.scalars(select(StripeEvent.id)).all()
    reader.dispose()
    database.dispose()


def test_refunds_racing_their_payments_settle_after_a_retry(
    db_url: str, app: Flask, client: FlaskClient, session: Session
) -> None:
    # A refund deferred in one transaction while another books its payment may miss
    # that booking's wake-up; the retry job then applies it. Never lost, never twice.
    factories.campaign(session)
    payloads: list[str] = []
    for n in range(8):
        intent, ch = new_id("pi"), new_id("ch")
        paid = event(
            "payment_intent.succeeded",
            payment_intent(meta=metadata("fund"), amount=1000, intent_id=intent, charge_id=ch),
        )
        partial = event(
            "charge.refunded",
            charge(charge_id=ch, intent_id=intent, amount=1000, refunded=100 * (n + 1)),
        )
        payloads += [paid, partial, partial]
    random.Random(5).shuffle(payloads)
    with gunicorn(_env(db_url), workers=4) as base:
        statuses = _send_all(base, payloads)
    assert statuses == [200] * len(payloads)
    stripe_events.retry_inbox(app.extensions["tracker.db"].session, livemode=False)
    refunded = sum(100 * (n + 1) for n in range(8))
    assert totals(client, session) == (8000 - refunded, 8, 8)
    session.rollback()
    session.expire_all()
    left = session.scalars(
        select(StripeEvent.status).where(StripeEvent.status != InboxStatus.PROCESSED)
    ).all()
    assert left == []


# ------------------------------------------------------ interleaved transactions


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    """The PostgreSQL test database alone: these races need two concurrent writers."""
    yield pg_server_url
    _empty_postgresql(pg_server_url)


@pytest.fixture
def opened() -> Iterator[list[Database]]:
    """Databases a test opens, disposed of even when it fails (before pg_url empties)."""
    databases: list[Database] = []
    yield databases
    for database in databases:
        database.dispose()


def test_a_woken_refund_reads_the_refunded_amount_under_its_lock(
    pg_url: str, opened: list[Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    # R1 (2,000 refunded) waits for the charge; the Checkout event books the payment
    # knowing only its PaymentIntent, so R1 sleeps on; R2 (1,000) is booked through
    # the PaymentIntent. Then payment_intent.succeeded reads the payment row and,
    # while it runs, another worker commits R3 (2,500). Its wake-up applies R1,
    # which must see 2,500 already refunded (nothing to book), not the 1,000 the
    # session read before taking the lock.
    app = webhook_app(pg_url)
    client = app.test_client()
    database: Database = app.extensions["tracker.db"]
    opened.append(database)
    with database.session() as setup:
        factories.campaign(setup)
    intent, ch = new_id("pi"), new_id("ch")
    # R1's charge names no PaymentIntent (a charge made without one), so it waits
    # on the charge, which the Checkout event does not know.
    r1, r2, r3 = (
        event("charge.refunded", charge(charge_id=ch, intent_id=named, refunded=amount))
        for named, amount in ((None, 2000), (intent, 1000), (intent, 2500))
    )
    assert deliver_ok(client, r1)["status"] == "deferred"
    checkout = checkout_session(meta=metadata(), payment_intent=intent)
    assert deliver_ok(client, event("checkout.session.completed", checkout))["status"] == (
        "processed"
    )
    assert deliver_ok(client, r2)["status"] == "processed"

    other = Database(pg_url, donor_key_secret=DONOR_KEY_SECRET)
    opened.append(other)
    wake = stripe_events._wake
    interleaved: list[str] = []

    def wake_after_another_worker(session: Session, ids: list[str]) -> None:
        if not interleaved:
            delivered = stripe_events.deliver(
                other.session, stripe_events.parse_event(r3), livemode=False
            )
            interleaved.append(delivered.status.value)
        wake(session, ids)

    rebind(monkeypatch, "_wake", wake_after_another_worker)
    paid = payment_intent(meta=metadata(), intent_id=intent, charge_id=ch)
    deliver_ok(client, event("payment_intent.succeeded", paid))
    assert interleaved == ["processed"]
    with database.session(write=False) as session:
        assert totals(client, session) == (0, 1, 1)
        refunds = session.scalars(select(LedgerEntry.amount).where(LedgerEntry.amount < 0)).all()
        assert sorted(refunds) == [-1500, -1000]


def test_a_new_monthly_donors_checkout_and_first_invoice_at_once_do_not_deadlock(
    pg_url: str, opened: list[Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stripe sends checkout.session.completed and invoice.paid of a new subscription
    # at the same moment. The Checkout event updates its pledge, then claims the
    # invoice's payment; invoice.paid must not claim first and then wait for the
    # pledge (PostgreSQL would detect a deadlock and fail one of them).
    database = Database(pg_url, donor_key_secret=DONOR_KEY_SECRET)
    opened.append(database)
    with database.session() as setup:
        factories.campaign(setup)
        pledge = pending_pledge(setup, frequency=PledgeFrequency.MONTHLY, amount=1000)
        pledge_id, session_id = pledge.id, pledge.stripe_checkout_session_id
    sub, inv = new_id("sub"), new_id("in")
    meta = metadata("fund", pledge_id)
    completed = checkout_session(
        meta=meta,
        mode="subscription",
        subscription=sub,
        invoice=inv,
        amount=1000,
        session_id=session_id,
    )
    completed["customer"] = "cus_test"
    checkout = stripe_events.parse_event(event("checkout.session.completed", completed))
    paid = stripe_events.parse_event(
        event("invoice.paid", invoice(meta=meta, subscription=sub, invoice_id=inv))
    )

    # Hold the Checkout event between its pledge update and its claim until the
    # invoice has claimed (or, once fixed, could not get that far: 2 s).
    pledge_updated, invoice_claimed = threading.Event(), threading.Event()
    book, pledge_paid = stripe_events._book_payment, stripe_events._pledge_paid

    def held_book(session: Session, target: Any, payment: Any) -> Any:
        if threading.current_thread().name == "checkout":
            pledge_updated.set()
            invoice_claimed.wait(2)
        return book(session, target, payment)

    def noting_paid(session: Session, pledge: Any, payment: Any) -> None:
        if threading.current_thread().name == "invoice":
            invoice_claimed.set()
        pledge_paid(session, pledge, payment)

    rebind(monkeypatch, "_book_payment", held_book)
    rebind(monkeypatch, "_pledge_paid", noting_paid)
    outcomes: dict[str, str] = {}

    def deliver(name: str, hook: stripe_events.WebhookEvent) -> None:
        if name == "invoice":
            pledge_updated.wait(10)
        try:
            outcomes[name] = stripe_events.deliver(database.session, hook, livemode=False).status
        except Exception as exc:  # the failure this test is about, reported below
            outcomes[name] = f"{type(exc).__name__}: {exc}"[:300]

    threads = [
        threading.Thread(target=deliver, args=(name, hook), name=name)
        for name, hook in (("checkout", checkout), ("invoice", paid))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcomes == {"checkout": "processed", "invoice": "processed"}
    with database.session(write=False) as session:
        entries = session.scalars(select(LedgerEntry.amount)).all()
        assert entries == [1000]
