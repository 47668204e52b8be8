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
