"""Deliveries an outside fuzz found to break the endpoint or the books (issue 14).

Every test runs on SQLite and PostgreSQL: signed bodies that are not events,
amounts no Stripe account can send, disputes larger than their payment, totals
that would leave a 64-bit integer, and events that can never be applied.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests import factories
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
    post,
    totals,
    webhook_app,
)
from tracker.models import InboxStatus, Pledge, PledgeStatus, StripeEvent, StripePayment, utcnow
from tracker.services import stripe_events
from tracker.services.stripe_events import RetryPolicy, retry_inbox


@pytest.fixture
def fund(session: Session) -> str:
    factories.campaign(session)
    return "fund"


def _stored(session: Session) -> int:
    session.rollback()
    count = session.scalar(select(func.count()).select_from(StripeEvent)) or 0
    session.rollback()
    return count


def _envelope(
    obj: object, *, event_id: str = "evt_fuzz", type_: str = "payment_intent.succeeded"
) -> str:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "created": int(time.time()),
            "data": {"object": obj},
            "livemode": False,
            "type": type_,
        }
    )


# ------------------------------------------------------------ 1. deep nesting


def _paid_shape() -> dict[str, object]:
    return payment_intent(meta=metadata("fund"), intent_id="pi_deep")


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,
        _envelope({"metadata": {"deep": "x"}}).replace('"x"', "[" * 5000 + "]" * 5000),
        # Deep enough to be no Stripe event, shallow enough for json.loads.
        _envelope(_paid_shape()).replace(
            '"metadata": {', '"metadata": {"x": ' + "[" * 70 + "]" * 70 + ", "
        ),
    ],
    ids=["bare", "inside-the-object", "parseable"],
)
def test_a_signed_body_nested_too_deeply_is_400_and_not_stored(
    client: FlaskClient, session: Session, fund: str, body: str
) -> None:
    response = post(client, body)
    assert response.status_code == 400
    assert "not a Stripe event" in response.get_json()["message"]
    assert _stored(session) == 0
    assert totals(client, session) == (0, 0, 0)


# ------------------------------------------------------- 2. invalid Unicode


def _paid(**meta: str) -> dict[str, object]:
    return payment_intent(meta={**metadata("fund"), **meta}, intent_id=new_id("pi"))


@pytest.mark.parametrize(
    "body",
    [
        _envelope(_paid(), event_id="evt_\ud800"),
        _envelope(_paid(), type_="payment_intent.\udfff"),
        _envelope(_paid(note="\ud83d")),
        _envelope({**_paid(), "id": "pi_\udc00"}),
        _envelope(_paid(), event_id="evt_\x00nul"),
        _envelope(_paid(**{"\ud800": "key"})),
    ],
    ids=["id", "type", "metadata", "object-id", "nul-in-id", "surrogate-key"],
)
def test_a_signed_event_that_is_not_valid_unicode_is_400_and_not_stored(
    client: FlaskClient, session: Session, fund: str, body: str
) -> None:
    assert "\\u" in body  # the invalid text is spelled as a JSON escape
    response = post(client, body)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert "valid Unicode" in response.get_json()["message"]
    assert _stored(session) == 0
    assert totals(client, session) == (0, 0, 0)


def test_escaped_but_valid_text_is_still_accepted(
    client: FlaskClient, session: Session, fund: str
) -> None:
    # json.dumps escapes every non-ASCII character: an emoji is a valid surrogate pair.
    body = _envelope(_paid(note="caf\u00e9 \U0001f600"), event_id=new_id("evt"))
    assert "\\ud83d\\ude00" in body
    assert post(client, body).status_code == 200
    assert totals(client, session) == (2500, 1, 1)


# ---------------------------------------------- 4. amounts Stripe cannot send


@pytest.mark.parametrize("amount", [100_000_000, 10**14, 999_999_999_999_999, 10**30])
def test_a_payment_beyond_stripes_maximum_fails_and_is_never_booked(
    client: FlaskClient, session: Session, fund: str, amount: int
) -> None:
    payload = event(
        "payment_intent.succeeded",
        payment_intent(meta=metadata(fund), amount=amount, intent_id=new_id("pi")),
    )
    response = post(client, payload)
    assert response.status_code == 422
    failed = stripe_events.inbox_events(session, [InboxStatus.FAILED])
    assert len(failed) == 1
    assert "more than Stripe charges in one USD payment (99999999)" in (failed[0].last_error or "")
    session.rollback()
    assert session.scalar(select(func.count()).select_from(StripePayment)) == 0
    assert totals(client, session) == (0, 0, 0)


def test_the_largest_payment_stripe_charges_is_booked_and_a_refund_beyond_it_fails(
    client: FlaskClient, session: Session, fund: str
) -> None:
    intent, ch = new_id("pi"), new_id("ch")
    paid = payment_intent(meta=metadata(fund), amount=99_999_999, intent_id=intent, charge_id=ch)
    deliver_ok(client, event("payment_intent.succeeded", paid))
    huge = charge(charge_id=ch, intent_id=intent, amount=10**14, refunded=10**14)
    assert post(client, event("charge.refunded", huge)).status_code == 422
    assert totals(client, session) == (99_999_999, 1, 1)


# ------------------------------------------- 6. disputes larger than payments


def _paid_payment(client: FlaskClient, amount: int) -> tuple[str, str]:
    intent, ch = new_id("pi"), new_id("ch")
    paid = payment_intent(meta=metadata("fund"), amount=amount, intent_id=intent, charge_id=ch)
    deliver_ok(client, event("payment_intent.succeeded", paid))
    return intent, ch


def _dispute(
    intent: str, ch: str, amount: int, status: str, dp: str | None = None
) -> dict[str, object]:
    return dispute(
        dispute_id=dp or new_id("dp"), charge_id=ch, intent_id=intent, status=status, amount=amount
    )


def _error_of(session: Session, payload: str) -> str:
    session.rollback()
    row = session.get_one(StripeEvent, json.loads(payload)["id"])
    assert row.status is InboxStatus.FAILED
    error = row.last_error or ""
    session.rollback()
    return error


def test_a_dispute_larger_than_its_payment_fails_and_withdraws_nothing(
    client: FlaskClient, session: Session, fund: str
) -> None:
    intent, ch = _paid_payment(client, 500)
    lost = event("charge.dispute.closed", _dispute(intent, ch, 50_000, "lost"))
    assert post(client, lost).status_code == 422
    assert "exceeds the 500 that payment" in _error_of(session, lost)
    assert totals(client, session) == (500, 1, 1)


def test_a_dispute_withdraws_at_most_what_refunds_and_earlier_disputes_left(
    client: FlaskClient, session: Session, fund: str
) -> None:
    intent, ch = _paid_payment(client, 1000)
    deliver_ok(
        client,
        event("charge.refunded", charge(charge_id=ch, intent_id=intent, amount=1000, refunded=300)),
    )
    too_much = event("charge.dispute.created", _dispute(intent, ch, 800, "needs_response"))
    assert post(client, too_much).status_code == 422
    assert "exceeds the 700" in _error_of(session, too_much)
    first = event("charge.dispute.created", _dispute(intent, ch, 400, "needs_response"))
    deliver_ok(client, first)
    deliver_ok(client, first)  # a replay is not a second withdrawal, nor a failure
    second = event("charge.dispute.created", _dispute(intent, ch, 400, "needs_response"))
    assert post(client, second).status_code == 422
    assert "exceeds the 300" in _error_of(session, second)
    # What is left can still go, and then a refund finds nothing more to give back.
    deliver_ok(client, event("charge.dispute.created", _dispute(intent, ch, 300, "lost")))
    assert totals(client, session) == (0, 1, 1)
    more = event(
        "charge.refunded", charge(charge_id=ch, intent_id=intent, amount=1000, refunded=400)
    )
    assert post(client, more).status_code == 422
    assert "withdrawn by disputes" in _error_of(session, more)
    assert totals(client, session) == (0, 1, 1)


def test_a_dispute_reinstates_at_most_what_it_withdrew(
    client: FlaskClient, session: Session, fund: str
) -> None:
    intent, ch = _paid_payment(client, 1000)
    dp = new_id("dp")
    deliver_ok(
        client, event("charge.dispute.created", _dispute(intent, ch, 400, "needs_response", dp))
    )
    inflated = event("charge.dispute.funds_reinstated", _dispute(intent, ch, 900, "won", dp))
    assert post(client, inflated).status_code == 422
    assert "reinstates 900 but withdrew 400" in _error_of(session, inflated)
    assert totals(client, session) == (600, 1, 1)
    won = event("charge.dispute.closed", _dispute(intent, ch, 400, "won", dp))
    deliver_ok(client, won)
    deliver_ok(client, won)
    assert totals(client, session) == (1000, 1, 1)
    # Once reinstated, the money is held again: a full refund is possible.
    deliver_ok(
        client,
        event(
            "charge.refunded", charge(charge_id=ch, intent_id=intent, amount=1000, refunded=1000)
        ),
    )
    assert totals(client, session) == (0, 1, 1)


# ------------------------------------------------------ 7. events that fail forever


def _inbox_row(session: Session, payload: str) -> StripeEvent:
    session.rollback()
    row = session.get_one(StripeEvent, json.loads(payload)["id"])
    session.expunge(row)
    session.rollback()
    return row


def test_a_poison_event_waits_longer_each_time_then_is_dead_and_left_alone(
    app: Flask, client: FlaskClient, session: Session, fund: str
) -> None:
    # A paid Checkout Session without its PaymentIntent can never be booked.
    poison = event(
        "checkout.session.completed", checkout_session(meta=metadata(fund), payment_intent=None)
    )
    assert post(client, poison).status_code == 422
    factory = app.extensions["tracker.db"].session
    policy = RetryPolicy(max_attempts=4, first_delay=timedelta(minutes=5))
    start = utcnow()
    # Within the first wait the retry job does not take it again.
    assert retry_inbox(factory, livemode=False, policy=policy, now=start).seen == 0
    assert _inbox_row(session, poison).attempts == 1
    waits = []
    moment = start
    for attempts in (2, 3, 4):
        row = _inbox_row(session, poison)
        assert row.status is InboxStatus.FAILED and row.next_attempt_at is not None
        waits.append(row.next_attempt_at - moment)
        moment = row.next_attempt_at + timedelta(seconds=1)
        report = retry_inbox(factory, livemode=False, policy=policy, now=moment)
        assert report.seen == 1
        assert _inbox_row(session, poison).attempts == attempts
    assert report.dead == 1 and "given up" in report.describe()
    # The waits grow: 5, 10 and 20 minutes (give or take the test's own seconds).
    assert [round(w / timedelta(minutes=1)) for w in waits] == [5, 10, 20]
    dead = _inbox_row(session, poison)
    assert dead.status is InboxStatus.DEAD and "payment_intent" in (dead.last_error or "")
    # No automatic retry any more, and Stripe's redelivery is answered, not applied.
    later = moment + timedelta(days=30)
    assert retry_inbox(factory, livemode=False, policy=policy, now=later).seen == 0
    assert deliver_ok(client, poison)["status"] == "dead"
    assert _inbox_row(session, poison).attempts == 4
    # By hand it is tried again (and, failing again, given up again).
    by_hand = retry_inbox(factory, livemode=False, policy=policy, event_ids=[dead.id], now=later)
    assert by_hand.seen == 1 and by_hand.dead == 1
    assert _inbox_row(session, poison).attempts == 5
    assert totals(client, session) == (0, 0, 0)


def test_retry_inbox_lists_dead_events_and_retries_one_by_hand(
    db_url: str, session: Session
) -> None:
    factories.campaign(session)
    session.commit()
    application = webhook_app(db_url, INBOX_MAX_ATTEMPTS=2, INBOX_RETRY_DELAY=0)
    client, runner = application.test_client(), application.test_cli_runner()
    intent = new_id("pi")
    poison = event(
        "charge.refunded", charge(charge_id=new_id("ch"), intent_id=intent, refunded=5000)
    )
    paid = event(
        "payment_intent.succeeded",
        payment_intent(meta=metadata("fund"), amount=1000, intent_id=intent),
    )
    assert deliver_ok(client, poison)["status"] == "deferred"
    assert deliver_ok(client, paid)["status"] == "processed"  # the waiting refund fails
    assert _inbox_row(session, poison).status is InboxStatus.FAILED
    first = runner.invoke(args=["tracker", "retry-inbox"])
    assert first.exit_code == 1 and "given up" in first.output
    listed = runner.invoke(args=["tracker", "retry-inbox", "--dead"])
    assert listed.exit_code == 0
    event_id = json.loads(poison)["id"]
    assert event_id in listed.output and "2 attempts" in listed.output
    assert "reports 5000 refunded of a 1000 payment" in listed.output
    again = runner.invoke(args=["tracker", "retry-inbox"])
    assert again.exit_code == 0 and again.stdout.startswith("0 event(s)")
    by_hand = runner.invoke(args=["tracker", "retry-inbox", "--dead", "--event", event_id])
    assert by_hand.exit_code == 1 and by_hand.stdout.startswith("1 event(s)")
    assert _inbox_row(session, poison).attempts == 3
    assert totals(client, session) == (1000, 1, 1)
    application.extensions["tracker.db"].dispose()


def test_tracker_pledge_naming_another_pledge_than_the_sessions_books_it_for_the_session(
    client: FlaskClient, session: Session, fund: str
) -> None:
    # Pledge P was created for a Payment Link payment (no Checkout Session of its
    # own); Q's Checkout Session arrives with metadata naming P. Stripe's id wins:
    # the money is Q's, and no constraint fails the event.
    deliver_ok(
        client,
        event(
            "payment_intent.succeeded",
            payment_intent(meta=metadata(fund), amount=700, intent_id=new_id("pi")),
        ),
    )
    session.rollback()
    p_id = session.scalars(select(Pledge.id)).one()
    q = pending_pledge(session, fund, 2500)
    completed = checkout_session(
        meta=metadata(fund, p_id),
        session_id=q.stripe_checkout_session_id,
        payment_intent=new_id("pi"),
    )
    assert (
        deliver_ok(client, event("checkout.session.completed", completed))["status"] == "processed"
    )
    session.rollback()
    session.expire_all()
    q_after, p_after = session.get_one(Pledge, q.id), session.get_one(Pledge, p_id)
    assert q_after.status is PledgeStatus.PAID
    assert p_after.stripe_checkout_session_id is None
    session.rollback()
    assert totals(client, session) == (3200, 2, 2)


def test_a_subscription_held_by_another_campaigns_pledge_is_not_copied(
    client: FlaskClient, session: Session, fund: str
) -> None:
    from tests.stripe_helpers import invoice

    factories.campaign(session, slug="other")
    other = pending_pledge(session, "other", 1000)
    session.rollback()
    held = session.get_one(Pledge, other.id)
    held.stripe_subscription_id = "sub_shared"
    session.commit()
    # An invoice of that subscription, whose metadata says it is ours (fund):
    # booked for fund through a new pledge, which cannot take the subscription id.
    paid = invoice(meta=metadata(fund), subscription="sub_shared", amount=1500)
    assert deliver_ok(client, event("invoice.paid", paid))["status"] == "processed"
    assert totals(client, session) == (1500, 1, 1)
