"""Stripe events through ``POST /webhooks/stripe`` and what they do to pledges and totals.

Each test runs on SQLite and PostgreSQL and checks the totals both through the
public API and against the ledger (``check_totals``).
"""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests import factories
from tests.stripe_helpers import (
    T0,
    charge,
    checkout_session,
    deliver_ok,
    dispute,
    event,
    invoice,
    metadata,
    new_id,
    payment_intent,
    pending_pledge,
    post,
    rebind,
    subscription,
    totals,
)
from tracker.domain.periods import PeriodKind
from tracker.models import (
    InboxStatus,
    LedgerEntry,
    Pledge,
    PledgeFrequency,
    PledgeStatus,
    StripeEvent,
    StripePayment,
)
from tracker.services import stripe_events
from tracker.services.stripe_events import CURRENCY_MISMATCH, retry_inbox


@pytest.fixture
def fund(session: Session) -> str:
    factories.campaign(session)
    return "fund"


def _status(session: Session, event_id: str) -> InboxStatus:
    session.rollback()
    session.expire_all()
    status = session.get_one(StripeEvent, event_id).status
    session.rollback()
    session.expire_all()
    return status


def _pledge(session: Session, pledge_id: int) -> Pledge:
    session.rollback()
    session.expire_all()
    pledge = session.get_one(Pledge, pledge_id)
    # Detached with its values loaded: reading it later must not open a transaction
    # (on SQLite a write transaction would lock out the app under test).
    session.expunge(pledge)
    session.rollback()
    session.expire_all()
    return pledge


def _event_id(payload: str) -> str:
    import json

    value: str = json.loads(payload)["id"]
    return value


def _paid_pi(slug: str = "fund", amount: int = 2500, **kwargs: Any) -> tuple[str, str, str]:
    """(PaymentIntent id, charge id, payment_intent.succeeded payload)."""
    intent, ch = new_id("pi"), new_id("ch")
    payload = event(
        "payment_intent.succeeded",
        payment_intent(
            meta=metadata(slug), amount=amount, intent_id=intent, charge_id=ch, **kwargs
        ),
    )
    return intent, ch, payload


# ----------------------------------------------------------------- checkout flow


def test_checkout_paid_credits_the_pledge_once(
    client: FlaskClient, session: Session, fund: str
) -> None:
    pledge = pending_pledge(session)
    intent = new_id("pi")
    payload = event(
        "checkout.session.completed",
        checkout_session(
            meta=metadata(fund, pledge.id),
            session_id=pledge.stripe_checkout_session_id,
            payment_intent=intent,
        ),
    )
    assert deliver_ok(client, payload)["status"] == "processed"
    assert deliver_ok(client, payload)["status"] == "processed"
    assert totals(client, session) == (2500, 1, 1)
    paid = _pledge(session, pledge.id)
    assert paid.status is PledgeStatus.PAID
    assert paid.stripe_payment_intent_id == intent
    assert paid.paid_at is not None


def test_two_event_types_about_one_payment_count_once(
    client: FlaskClient, session: Session, fund: str
) -> None:
    pledge = pending_pledge(session)
    intent, ch = new_id("pi"), new_id("ch")
    completed = event(
        "checkout.session.completed",
        checkout_session(meta=metadata(fund, pledge.id), payment_intent=intent),
    )
    succeeded = event(
        "payment_intent.succeeded",
        payment_intent(meta=metadata(fund, pledge.id), intent_id=intent, charge_id=ch),
    )
    deliver_ok(client, succeeded)
    deliver_ok(client, completed)
    assert totals(client, session) == (2500, 1, 1)
    session.rollback()
    session.expire_all()
    row = session.scalars(select(StripePayment)).one()
    assert (row.reference, row.payment_intent_id, row.charge_id) == (intent, intent, ch)
    assert session.scalar(select(func.count()).select_from(Pledge)) == 1


def test_async_payment_waits_then_succeeds(
    client: FlaskClient, session: Session, fund: str
) -> None:
    pledge = pending_pledge(session)
    intent = new_id("pi")
    cs = checkout_session(
        meta=metadata(fund, pledge.id), payment_intent=intent, payment_status="unpaid"
    )
    deliver_ok(client, event("checkout.session.completed", cs))
    assert totals(client, session) == (0, 0, 0)
    assert _pledge(session, pledge.id).status is PledgeStatus.PENDING
    cs["payment_status"] = "paid"
    deliver_ok(client, event("checkout.session.async_payment_succeeded", cs))
    assert totals(client, session) == (2500, 1, 1)
    assert _pledge(session, pledge.id).status is PledgeStatus.PAID


def test_async_payment_failure_fails_the_pledge(
    client: FlaskClient, session: Session, fund: str
) -> None:
    pledge = pending_pledge(session)
    cs = checkout_session(
        meta=metadata(fund, pledge.id), payment_intent=new_id("pi"), payment_status="unpaid"
    )
    deliver_ok(client, event("checkout.session.completed", cs))
    deliver_ok(client, event("checkout.session.async_payment_failed", cs))
    assert _pledge(session, pledge.id).status is PledgeStatus.FAILED
    assert totals(client, session) == (0, 0, 0)


def test_a_declined_card_inside_checkout_leaves_the_pledge_pending(
    client: FlaskClient, session: Session, fund: str
) -> None:
    # The donor's first card is declined on Stripe's page; they pay with another.
    # The decline is not final, so the thanks page keeps saying "confirming".
    pledge = pending_pledge(session)
    intent = new_id("pi")
    meta = metadata(fund, pledge.id)
    declined = payment_intent(meta=meta, intent_id=intent, status="requires_payment_method")
    assert deliver_ok(client, event("payment_intent.payment_failed", declined))["status"] == (
        "processed"
    )
    assert _pledge(session, pledge.id).status is PledgeStatus.PENDING
    completed = checkout_session(
        meta=meta, payment_intent=intent, session_id=pledge.stripe_checkout_session_id
    )
    deliver_ok(client, event("checkout.session.completed", completed))
    assert _pledge(session, pledge.id).status is PledgeStatus.PAID
    assert totals(client, session) == (2500, 1, 1)


def test_a_subscription_deleted_before_its_first_invoice_keeps_the_payment_date(
    client: FlaskClient, session: Session, fund: str
) -> None:
    pledge = pending_pledge(session, frequency=PledgeFrequency.MONTHLY, amount=1000)
    sub = new_id("sub")
    meta = metadata(fund, pledge.id)
    deliver_ok(
        client,
        event("customer.subscription.deleted", subscription(meta=meta, subscription_id=sub)),
    )
    deliver_ok(client, event("invoice.paid", invoice(meta=meta, subscription=sub)))
    after = _pledge(session, pledge.id)
    assert after.status is PledgeStatus.CANCELED  # pledges only move forward
    assert after.paid_at is not None  # but it did pay: the donor is not told otherwise
    assert totals(client, session) == (1000, 1, 1)


def test_a_failure_never_undoes_a_payment(client: FlaskClient, session: Session, fund: str) -> None:
    pledge = pending_pledge(session)
    intent = new_id("pi")
    meta = metadata(fund, pledge.id)
    deliver_ok(
        client, event("payment_intent.succeeded", payment_intent(meta=meta, intent_id=intent))
    )
    failed = payment_intent(meta=meta, intent_id=intent, status="requires_payment_method")
    deliver_ok(client, event("payment_intent.payment_failed", failed))
    assert _pledge(session, pledge.id).status is PledgeStatus.PAID
    assert totals(client, session) == (2500, 1, 1)


def test_payment_link_without_pledge_creates_one(
    client: FlaskClient, session: Session, fund: str
) -> None:
    intent, _ch, payload = _paid_pi(fund, 4200)
    deliver_ok(client, payload)
    session.rollback()
    session.expire_all()
    pledge = session.scalars(select(Pledge)).one()
    assert (pledge.amount, pledge.status, pledge.stripe_payment_intent_id) == (
        4200,
        PledgeStatus.PAID,
        intent,
    )
    assert totals(client, session) == (4200, 1, 1)


@pytest.mark.parametrize("foreign", ["\u00b2", "99999999999", "-1", "12abc", ""])
def test_tracker_pledge_metadata_that_is_no_id_of_ours_is_a_payment_link(
    client: FlaskClient, session: Session, fund: str, foreign: str
) -> None:
    # Someone else's value in our key (or a superscript digit, which str.isdigit
    # accepts): the payment is still booked, through a pledge created for it.
    intent = new_id("pi")
    meta = {"tracker_campaign": fund, "tracker_pledge": foreign}
    payload = event("payment_intent.succeeded", payment_intent(meta=meta, intent_id=intent))
    assert deliver_ok(client, payload)["status"] == "processed"
    session.rollback()
    session.expire_all()
    assert session.scalars(select(Pledge.stripe_payment_intent_id)).one() == intent
    assert totals(client, session) == (2500, 1, 1)


# ----------------------------------------------------------------- not applied


def test_unknown_types_are_stored_without_effect(
    client: FlaskClient, session: Session, fund: str
) -> None:
    payload = event("customer.created", {"id": "cus_1", "object": "customer", "metadata": {}})
    assert deliver_ok(client, payload)["status"] == "ignored"
    assert _status(session, _event_id(payload)) is InboxStatus.IGNORED
    assert totals(client, session) == (0, 0, 0)


def test_objects_without_our_metadata_are_ignored(
    client: FlaskClient, session: Session, fund: str
) -> None:
    for meta in ({}, {"order": "42"}, {"tracker_campaign": "someone-else"}):
        payload = event("payment_intent.succeeded", payment_intent(meta=meta))
        assert deliver_ok(client, payload)["status"] == "ignored"
    assert totals(client, session) == (0, 0, 0)
    assert session.scalar(select(func.count()).select_from(Pledge)) == 0


def test_livemode_mismatch_is_stored_not_applied(
    client: FlaskClient, session: Session, fund: str, caplog: pytest.LogCaptureFixture
) -> None:
    payload = event("payment_intent.succeeded", payment_intent(meta=metadata()), livemode=True)
    with caplog.at_level(logging.WARNING, logger="tracker.services.stripe_events"):
        assert deliver_ok(client, payload)["status"] == "ignored"
    assert "live-mode" in caplog.text
    assert _status(session, _event_id(payload)) is InboxStatus.IGNORED
    assert totals(client, session) == (0, 0, 0)


def test_foreign_currency_is_flagged_never_booked(
    client: FlaskClient, session: Session, fund: str
) -> None:
    _intent, ch, payload = _paid_pi(fund, 3000, currency="eur")
    assert deliver_ok(client, payload)["status"] == "processed"
    assert totals(client, session) == (0, 0, 0)
    session.rollback()
    session.expire_all()
    row = session.scalars(select(StripePayment)).one()
    assert (row.flag, row.currency, row.amount) == (CURRENCY_MISMATCH, "EUR", 3000)
    # Its refund is not booked either: there is nothing of it in the total.
    refund = event(
        "charge.refunded",
        charge(
            charge_id=ch,
            intent_id=row.payment_intent_id,
            amount=3000,
            refunded=3000,
            currency="eur",
        ),
    )
    assert deliver_ok(client, refund)["status"] == "processed"
    assert totals(client, session) == (0, 0, 0)


def test_jpy_amounts_are_whole_yen(client: FlaskClient, session: Session) -> None:
    factories.campaign(session, "yen", currency="JPY", tiers=[0, 100_000])
    _intent, ch, payload = _paid_pi("yen", 5000, currency="jpy")
    deliver_ok(client, payload)
    refund = charge(charge_id=ch, intent_id=_intent, amount=5000, refunded=1500, currency="jpy")
    deliver_ok(client, event("charge.refunded", refund))
    assert totals(client, session, "yen") == (3500, 1, 1)
    body = client.get("/api/v1/campaigns/yen").get_json()
    assert body["raised_display"] == "¥3,500"


def test_amounts_stripe_counts_in_hundredths_are_booked_in_whole_units(
    client: FlaskClient, session: Session
) -> None:
    # HUF has no minor unit (ISO 4217) but Stripe's API counts it in hundredths:
    # 500000 from Stripe is 5,000 Ft, as are its refunds.
    factories.campaign(session, "forint", currency="HUF", locale="hu_HU")
    intent, ch = new_id("pi"), new_id("ch")
    paid = payment_intent(
        meta=metadata("forint"), amount=500_000, currency="huf", intent_id=intent, charge_id=ch
    )
    deliver_ok(client, event("payment_intent.succeeded", paid))
    refund = charge(
        charge_id=ch, intent_id=intent, amount=500_000, refunded=100_000, currency="huf"
    )
    deliver_ok(client, event("charge.refunded", refund))
    assert totals(client, session, "forint") == (4000, 1, 1)
    # A fraction of a forint names no amount of ours: kept as failed, nothing booked.
    odd = payment_intent(meta=metadata("forint"), amount=500_050, currency="huf")
    response = post(client, event("payment_intent.succeeded", odd))
    assert response.status_code == 422
    assert totals(client, session, "forint") == (4000, 1, 1)


# ----------------------------------------------------------------------- refunds


def test_refund_before_payment_is_applied_after_it(
    client: FlaskClient, session: Session, fund: str
) -> None:
    intent, ch, paid = _paid_pi(fund)
    refund = event("charge.refunded", charge(charge_id=ch, intent_id=intent, refunded=1000))
    assert deliver_ok(client, refund)["status"] == "deferred"
    assert totals(client, session) == (0, 0, 0)
    deliver_ok(client, paid)
    assert _status(session, _event_id(refund)) is InboxStatus.PROCESSED
    assert totals(client, session) == (1500, 1, 1)
    # Replays of either change nothing.
    deliver_ok(client, refund)
    deliver_ok(client, paid)
    assert totals(client, session) == (1500, 1, 1)


@pytest.mark.parametrize("kind", ["refund", "dispute"])
def test_an_early_refund_or_dispute_is_applied_when_checkout_alone_books_the_payment(
    client: FlaskClient, session: Session, fund: str, kind: str
) -> None:
    # The Checkout Session knows the PaymentIntent but not the charge: the deferred
    # event waits on the PaymentIntent, so the Checkout booking applies it at once.
    intent, ch = new_id("pi"), new_id("ch")
    if kind == "refund":
        early = event("charge.refunded", charge(charge_id=ch, intent_id=intent, refunded=1000))
        expected = (1500, 1, 1)
    else:
        lost = dispute(dispute_id=new_id("dp"), charge_id=ch, intent_id=intent, status="lost")
        early = event("charge.dispute.closed", lost)
        expected = (0, 1, 1)
    assert deliver_ok(client, early)["status"] == "deferred"
    checkout = checkout_session(meta=metadata(fund), payment_intent=intent)
    deliver_ok(client, event("checkout.session.completed", checkout))
    assert _status(session, _event_id(early)) is InboxStatus.PROCESSED
    assert totals(client, session) == expected


def test_two_partial_refunds_replayed_and_shuffled(
    client: FlaskClient, session: Session, fund: str
) -> None:
    intent, ch, paid = _paid_pi(fund)
    deliver_ok(client, paid)
    first = event("charge.refunded", charge(charge_id=ch, intent_id=intent, refunded=500))
    second = event("charge.refunded", charge(charge_id=ch, intent_id=intent, refunded=1200))
    deliveries = [first, second] * 3
    random.Random(7).shuffle(deliveries)
    deliveries.insert(0, second)  # the larger one first at least once
    for payload in deliveries:
        deliver_ok(client, payload)
    assert totals(client, session) == (1300, 1, 1)
    session.rollback()
    session.expire_all()
    assert session.scalars(select(StripePayment.refunded)).one() == 1200


@pytest.mark.parametrize("order", [(500, 1200), (1200, 500)])
def test_partial_refunds_in_either_order(
    client: FlaskClient, session: Session, fund: str, order: tuple[int, int]
) -> None:
    intent, ch, paid = _paid_pi(fund)
    deliver_ok(client, paid)
    for refunded in order:
        payload = event(
            "charge.refunded", charge(charge_id=ch, intent_id=intent, refunded=refunded)
        )
        deliver_ok(client, payload)
    assert totals(client, session) == (1300, 1, 1)


# ---------------------------------------------------------------------- disputes


@pytest.mark.parametrize(("outcome", "expected"), [("won", 2500), ("lost", 0)], ids=["won", "lost"])
def test_dispute_closed_before_created(
    client: FlaskClient, session: Session, fund: str, outcome: str, expected: int
) -> None:
    intent, ch, paid = _paid_pi(fund)
    deliver_ok(client, paid)
    dp = new_id("dp")
    closed = event(
        "charge.dispute.closed",
        dispute(dispute_id=dp, charge_id=ch, intent_id=intent, status=outcome),
    )
    created = event(
        "charge.dispute.created",
        dispute(dispute_id=dp, charge_id=ch, intent_id=intent, status="needs_response"),
    )
    withdrawn = event(
        "charge.dispute.funds_withdrawn",
        dispute(dispute_id=dp, charge_id=ch, intent_id=intent, status="needs_response"),
    )
    deliver_ok(client, closed)
    assert totals(client, session)[0] == expected
    for payload in (created, withdrawn, closed, created):
        deliver_ok(client, payload)
    assert totals(client, session) == (expected, 1, 1)
    if outcome == "won":
        reinstated = event(
            "charge.dispute.funds_reinstated",
            dispute(dispute_id=dp, charge_id=ch, intent_id=intent, status="won"),
        )
        deliver_ok(client, reinstated)
        assert totals(client, session) == (expected, 1, 1)


@pytest.mark.parametrize("outcome", ["won", "lost"])
def test_dispute_in_natural_order(
    client: FlaskClient, session: Session, fund: str, outcome: str
) -> None:
    intent, ch, paid = _paid_pi(fund)
    deliver_ok(client, paid)
    dp = new_id("dp")
    shape = {"dispute_id": dp, "charge_id": ch, "intent_id": intent}
    deliver_ok(client, event("charge.dispute.created", dispute(**shape, status="needs_response")))
    assert totals(client, session)[0] == 0
    deliver_ok(client, event("charge.dispute.closed", dispute(**shape, status=outcome)))
    assert totals(client, session)[0] == (2500 if outcome == "won" else 0)


def test_dispute_before_its_payment_waits(client: FlaskClient, session: Session, fund: str) -> None:
    intent, ch, paid = _paid_pi(fund)
    dp = dispute(dispute_id=new_id("dp"), charge_id=ch, intent_id=intent, status="lost")
    payload = event("charge.dispute.closed", dp)
    assert deliver_ok(client, payload)["status"] == "deferred"
    deliver_ok(client, paid)
    assert totals(client, session) == (0, 1, 1)
    assert _status(session, _event_id(payload)) is InboxStatus.PROCESSED


# ----------------------------------------------------------------- subscriptions


def test_monthly_invoices_count_in_their_period_and_cancel_keeps_them(
    client: FlaskClient, session: Session, time_machine: time_machine.TimeMachineFixture
) -> None:
    # "This month" below is November 2026, whatever day the suite runs on.
    time_machine.move_to(datetime(2026, 11, 20, 12, tzinfo=UTC), tick=False)
    factories.campaign(session, "monthly", period=PeriodKind.MONTH)
    pledge = pending_pledge(session, "monthly", 1000, frequency=PledgeFrequency.MONTHLY)
    sub = new_id("sub")
    meta = metadata("monthly", pledge.id)
    october = int(datetime(2026, 10, 15, tzinfo=UTC).timestamp())
    november = int(datetime(2026, 11, 15, tzinfo=UTC).timestamp())
    first = event("invoice.paid", invoice(meta=meta, subscription=sub, paid_at=october))
    second = event("invoice.paid", invoice(meta=meta, subscription=sub, paid_at=november))
    for payload in (first, second, first):
        deliver_ok(client, payload)
    session.rollback()
    session.expire_all()
    periods = dict(
        session.execute(
            select(LedgerEntry.period_key, func.sum(LedgerEntry.amount)).group_by(
                LedgerEntry.period_key
            )
        ).all()
    )
    assert periods == {"2026-10": 1000, "2026-11": 1000}
    assert _pledge(session, pledge.id).stripe_subscription_id == sub
    deliver_ok(
        client, event("customer.subscription.deleted", subscription(meta=meta, subscription_id=sub))
    )
    assert _pledge(session, pledge.id).status is PledgeStatus.CANCELED
    session.rollback()
    session.expire_all()
    assert session.scalar(select(func.sum(LedgerEntry.amount))) == 2000
    session.rollback()
    session.expire_all()
    assert totals(client, session, "monthly") == (1000, 1, 1)  # November's period


def test_subscription_checkout_and_its_invoice_count_once(
    client: FlaskClient, session: Session, fund: str
) -> None:
    pledge = pending_pledge(session, frequency=PledgeFrequency.MONTHLY, amount=1000)
    sub, inv = new_id("sub"), new_id("in")
    meta = metadata(fund, pledge.id)
    completed = event(
        "checkout.session.completed",
        checkout_session(
            meta=meta, mode="subscription", subscription=sub, invoice=inv, amount=1000
        ),
    )
    paid = event("invoice.paid", invoice(meta=meta, subscription=sub, invoice_id=inv))
    deliver_ok(client, paid)
    deliver_ok(client, completed)
    assert totals(client, session) == (1000, 1, 1)
    assert _pledge(session, pledge.id).status is PledgeStatus.PAID


def test_subscription_invoice_payment_intents_are_left_to_invoice_paid(
    client: FlaskClient, session: Session, fund: str
) -> None:
    payload = event(
        "payment_intent.succeeded", payment_intent(meta=metadata(fund), invoice=new_id("in"))
    )
    assert deliver_ok(client, payload)["status"] == "ignored"
    assert totals(client, session) == (0, 0, 0)


# --------------------------------------------------------------------- failures


def test_an_exception_mid_processing_leaves_nothing_and_the_retry_books_once(
    app: Flask, client: FlaskClient, session: Session, fund: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pledge = pending_pledge(session)
    intent = new_id("pi")
    payload = event(
        "payment_intent.succeeded", payment_intent(meta=metadata(fund, pledge.id), intent_id=intent)
    )
    real = stripe_events.record_entry

    def record_then_fail(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)  # the entry and its totals are written, then it breaks
        raise RuntimeError("injected failure")

    rebind(monkeypatch, "record_entry", record_then_fail)
    response = post(client, payload)
    assert response.status_code == 500
    session.rollback()
    session.expire_all()
    row = session.get_one(StripeEvent, _event_id(payload))
    assert row.status is InboxStatus.FAILED
    assert row.last_error is not None and "injected failure" in row.last_error
    assert row.attempts == 1
    assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 0
    assert session.scalar(select(func.count()).select_from(StripePayment)) == 0
    session.rollback()
    session.expire_all()
    assert _pledge(session, pledge.id).status is PledgeStatus.PENDING
    assert totals(client, session) == (0, 0, 0)

    rebind(monkeypatch, "record_entry", real)
    database = app.extensions["tracker.db"]
    # A failed event waits before the retry job takes it again (docs/stripe.md).
    assert retry_inbox(database.session, livemode=False).seen == 0
    later = datetime.now(UTC) + timedelta(hours=1)
    report = retry_inbox(database.session, livemode=False, now=later)
    assert report.statuses == {"processed": 1}
    assert deliver_ok(client, payload)["status"] == "processed"  # Stripe's own retry
    assert totals(client, session) == (2500, 1, 1)
    assert _pledge(session, pledge.id).status is PledgeStatus.PAID


def test_events_that_stay_deferred_do_not_starve_newer_ones_in_the_retry(
    app: Flask, client: FlaskClient, session: Session, fund: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Three refunds of payments that are not ours never resolve without the Stripe
    # API; a newer payment fails once. With room for three events per run, the
    # payment must still be retried (least tried first), not wait behind them forever.
    for n in range(3):
        stranger = charge(charge_id=new_id("ch"), intent_id=new_id("pi"), refunded=100)
        old = event("charge.refunded", stranger, created=T0 + n)
        assert deliver_ok(client, old)["status"] == "deferred"
    paid = event("payment_intent.succeeded", payment_intent(meta=metadata(fund)), created=T0 + 99)
    real = stripe_events.record_entry

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("injected failure")

    rebind(monkeypatch, "record_entry", broken)
    assert post(client, paid).status_code == 500
    rebind(monkeypatch, "record_entry", real)

    factory = app.extensions["tracker.db"].session
    later = datetime.now(UTC) + timedelta(hours=1)  # past the failed payment's wait
    runs = [retry_inbox(factory, livemode=False, limit=3, now=later).statuses for _ in range(2)]
    assert runs == [{"deferred": 3}, {"processed": 1, "deferred": 2}]
    assert totals(client, session) == (2500, 1, 1)
    assert _status(session, _event_id(paid)) is InboxStatus.PROCESSED


def test_reconcile_feeds_the_listed_events_oldest_first(
    app: Flask, session: Session, fund: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stripe's events API lists newest first; a missed subscription must not be
    # deleted before its payment is fed.
    pledge = pending_pledge(session, frequency=PledgeFrequency.MONTHLY, amount=1000)
    sub = new_id("sub")
    meta = metadata(fund, pledge.id)
    paid = stripe_events.parse_event(
        event("invoice.paid", invoice(meta=meta, subscription=sub), created=T0)
    )
    deleted = stripe_events.parse_event(
        event(
            "customer.subscription.deleted",
            subscription(meta=meta, subscription_id=sub),
            created=T0 + 60,
        )
    )
    rebind(monkeypatch, "list_events", lambda _gateway, _since: iter([deleted, paid]))
    fed: list[str] = []
    deliver = stripe_events.deliver

    def noting(factory: Any, hook: Any, **kwargs: Any) -> Any:
        fed.append(hook.type)
        return deliver(factory, hook, **kwargs)

    rebind(monkeypatch, "deliver", noting)
    report = stripe_events.reconcile(
        app.extensions["tracker.db"].session,
        app.extensions["tracker.stripe"],
        since=datetime.fromtimestamp(T0 - 60, UTC),
        livemode=False,
        now=datetime.fromtimestamp(T0 + 120, UTC),
    )
    assert fed == ["invoice.paid", "customer.subscription.deleted"]
    assert report.new == 2
    after = _pledge(session, pledge.id)
    assert (after.status, after.paid_at is not None) == (PledgeStatus.CANCELED, True)


def test_retry_inbox_command(app: Flask, client: FlaskClient, session: Session, fund: str) -> None:
    intent, ch, paid = _paid_pi(fund)
    refund = event("charge.refunded", charge(charge_id=ch, intent_id=intent, refunded=2500))
    deliver_ok(client, refund)
    # The payment arrives without waking the refund (as if another process held it).
    with app.extensions["tracker.db"].session() as other:
        stripe_events.store_event(other, stripe_events.parse_event(paid))
        other.commit()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["tracker", "retry-inbox"])
    assert result.exit_code == 0, result.output
    assert "processed" in result.output
    assert totals(client, session) == (0, 1, 1)
    again = runner.invoke(args=["tracker", "retry-inbox"])
    assert again.output.strip() == "0 event(s)"
    assert totals(client, session) == (0, 1, 1)


def test_old_events_use_the_time_stripe_reports(
    client: FlaskClient, session: Session, fund: str
) -> None:
    payload = event("payment_intent.succeeded", payment_intent(meta=metadata(fund)), created=T0)
    deliver_ok(client, payload)
    session.rollback()
    session.expire_all()
    entry = session.scalars(select(LedgerEntry)).one()
    assert entry.occurred_at == datetime.fromtimestamp(T0, UTC)


def test_refund_of_a_monthly_payment_is_linked_through_its_invoice(
    app: Flask, client: FlaskClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    # API versions from 2025-03-31 on: the invoice names neither its PaymentIntent nor
    # its charge, and the PaymentIntent carries no metadata. Stripe's invoice payments
    # list links them; here its answer (and the charge lookup) are stood in for.
    factories.campaign(session)
    pledge = pending_pledge(session, frequency=PledgeFrequency.MONTHLY, amount=1000)
    sub, inv, intent, ch = new_id("sub"), new_id("in"), new_id("pi"), new_id("ch")
    deliver_ok(
        client,
        event(
            "invoice.paid",
            invoice(meta=metadata("fund", pledge.id), subscription=sub, invoice_id=inv),
        ),
    )
    refund = event(
        "charge.refunded", charge(charge_id=ch, intent_id=intent, amount=1000, refunded=400)
    )
    assert deliver_ok(client, refund)["status"] == "deferred"

    bare_intent = payment_intent(meta={}, amount=1000, intent_id=intent, charge_id=ch)
    bare_intent.pop("invoice")
    asked: list[dict[str, str]] = []

    def fetch(_gateway: object, **ids: str) -> dict[str, Any]:
        asked.append(ids)
        return bare_intent

    rebind(monkeypatch, "fetch_payment_intent", fetch)
    rebind(monkeypatch, "invoice_of_payment_intent", lambda _g, pi: inv)
    gateway = app.extensions["tracker.stripe"]
    report = retry_inbox(app.extensions["tracker.db"].session, livemode=False, gateway=gateway)
    assert asked == [{"payment_intent_id": intent}]  # what the refund waits for
    assert report.statuses == {"processed": 1}
    assert totals(client, session) == (600, 1, 1)
    session.rollback()
    session.expire_all()
    row = session.scalars(select(StripePayment)).one()
    assert (row.invoice_id, row.payment_intent_id, row.charge_id, row.refunded) == (
        inv,
        intent,
        ch,
        400,
    )


def test_invoice_payments_list_names_the_payment(
    client: FlaskClient, session: Session, fund: str
) -> None:
    intent, ch, inv = new_id("pi"), new_id("ch"), new_id("in")
    paid = invoice(meta=metadata(fund), subscription=new_id("sub"), invoice_id=inv)
    paid["payments"] = {
        "object": "list",
        "data": [
            {
                "object": "invoice_payment",
                "status": "paid",
                "payment": {"type": "payment_intent", "payment_intent": intent},
            }
        ],
    }
    deliver_ok(client, event("invoice.paid", paid))
    refund = charge(charge_id=ch, intent_id=intent, amount=1000, refunded=1000)
    assert deliver_ok(client, event("charge.refunded", refund))["status"] == "processed"
    assert totals(client, session) == (0, 1, 1)


def test_an_expired_checkout_expires_its_pledge_but_never_a_paid_one(
    client: FlaskClient, session: Session, fund: str
) -> None:
    unpaid, paid = pending_pledge(session), pending_pledge(session)
    expired = checkout_session(
        meta=metadata(fund, unpaid.id),
        session_id=unpaid.stripe_checkout_session_id,
        payment_status="unpaid",
    )
    deliver_ok(client, event("checkout.session.expired", expired))
    assert _pledge(session, unpaid.id).status is PledgeStatus.EXPIRED

    completed = checkout_session(meta=metadata(fund, paid.id), payment_intent=new_id("pi"))
    deliver_ok(client, event("checkout.session.completed", completed))
    late = {**completed, "status": "expired", "payment_status": "unpaid"}
    deliver_ok(client, event("checkout.session.expired", late))
    assert _pledge(session, paid.id).status is PledgeStatus.PAID
    assert totals(client, session) == (2500, 1, 1)


def test_a_failed_event_is_listed_with_its_error_and_counted_by_retry(
    app: Flask, client: FlaskClient, session: Session, fund: str
) -> None:
    # A paid Checkout Session without its PaymentIntent cannot be booked: it fails
    # loudly, stays in the inbox, and every retry says so (exit status 1).
    app.config["INBOX_RETRY_DELAY"] = 0  # no wait between retries here
    broken = checkout_session(meta=metadata(fund), payment_intent=None)
    response = post(client, event("checkout.session.completed", broken))
    assert response.status_code == 422
    failed = stripe_events.inbox_events(session, [InboxStatus.FAILED])
    assert len(failed) == 1 and "payment_intent" in (failed[0].last_error or "")
    result = app.test_cli_runner().invoke(args=["tracker", "retry-inbox"])
    assert result.exit_code == 1
    assert "1 failed" in result.output
    assert totals(client, session) == (0, 0, 0)


def test_a_bad_waiting_event_never_blocks_its_payment(
    client: FlaskClient, session: Session, fund: str
) -> None:
    intent, ch, paid = _paid_pi(fund, 1000)
    # More refunded than was ever paid: this refund cannot be applied.
    impossible = event("charge.refunded", charge(charge_id=ch, intent_id=intent, refunded=5000))
    good = event("charge.refunded", charge(charge_id=ch, intent_id=intent, refunded=300))
    assert deliver_ok(client, impossible)["status"] == "deferred"
    assert deliver_ok(client, good)["status"] == "deferred"
    assert deliver_ok(client, paid)["status"] == "processed"
    assert _status(session, _event_id(impossible)) is InboxStatus.FAILED
    assert _status(session, _event_id(good)) is InboxStatus.PROCESSED
    assert totals(client, session) == (700, 1, 1)
