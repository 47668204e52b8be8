"""Deliveries an outside fuzz found to break the endpoint or the books (issue 14).

Every test runs on SQLite and PostgreSQL: signed bodies that are not events,
amounts no Stripe account can send, disputes larger than their payment, totals
that would leave a 64-bit integer, and events that can never be applied.
"""

from __future__ import annotations

import json
import time

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests import factories
from tests.stripe_helpers import (
    charge,
    deliver_ok,
    dispute,
    event,
    metadata,
    new_id,
    payment_intent,
    post,
    totals,
)
from tracker.models import InboxStatus, StripeEvent, StripePayment
from tracker.services import stripe_events


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


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,
        _envelope({"metadata": {"deep": "x"}}).replace('"x"', "[" * 5000 + "]" * 5000),
    ],
    ids=["bare", "inside-the-object"],
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
    assert response.status_code == 500
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
    assert post(client, event("charge.refunded", huge)).status_code == 500
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
    assert post(client, lost).status_code == 500
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
    assert post(client, too_much).status_code == 500
    assert "exceeds the 700" in _error_of(session, too_much)
    first = event("charge.dispute.created", _dispute(intent, ch, 400, "needs_response"))
    deliver_ok(client, first)
    deliver_ok(client, first)  # a replay is not a second withdrawal, nor a failure
    second = event("charge.dispute.created", _dispute(intent, ch, 400, "needs_response"))
    assert post(client, second).status_code == 500
    assert "exceeds the 300" in _error_of(session, second)
    # What is left can still go, and then a refund finds nothing more to give back.
    deliver_ok(client, event("charge.dispute.created", _dispute(intent, ch, 300, "lost")))
    assert totals(client, session) == (0, 1, 1)
    more = event(
        "charge.refunded", charge(charge_id=ch, intent_id=intent, amount=1000, refunded=400)
    )
    assert post(client, more).status_code == 500
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
    assert post(client, inflated).status_code == 500
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
