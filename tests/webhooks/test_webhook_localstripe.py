"""Against localstripe, the Stripe stand-in: real PaymentIntents, refunds, events and webhooks.

localstripe keeps one store for the whole run, so each test empties it first.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import stripe
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests import factories
from tests.servers import gunicorn
from tests.stripe_helpers import (
    SECRET,
    charge,
    deliver_ok,
    event,
    new_id,
    totals,
    webhook_app,
)
from tracker.models import InboxStatus, LedgerEntry, StripeEvent
from tracker.services.ledger import check_totals

KEY = "sk_test_" + "k" * 24
pytestmark = pytest.mark.slow


def _localstripe(url: str, method: str, path: str, data: dict[str, Any] | None = None) -> None:
    body = urllib.parse.urlencode(data or {}).encode() if data is not None else None
    request = urllib.request.Request(f"{url}{path}", data=body, method=method)
    urllib.request.urlopen(request, timeout=10).close()


@pytest.fixture
def stripe_api(localstripe_url: str) -> stripe.StripeClient:
    """A StripeClient on an emptied localstripe (what a donor's bank would do, from outside)."""
    _localstripe(localstripe_url, "DELETE", "/_config/data")
    return stripe.StripeClient(
        KEY,
        base_addresses={"api": localstripe_url},
        max_network_retries=0,
    )


@pytest.fixture
def app(db_url: str, localstripe_url: str) -> Iterator[Flask]:
    application = webhook_app(db_url, STRIPE_API_BASE=localstripe_url)
    yield application
    application.extensions["tracker.db"].dispose()


def _paid_intent(
    api: stripe.StripeClient, slug: str, amount: int, currency: str = "usd"
) -> stripe.PaymentIntent:
    card = api.v1.payment_methods.create(
        {
            "type": "card",
            "card": {
                "number": "4242424242424242",
                "exp_month": 12,
                "exp_year": 2030,
                "cvc": "123",
            },
        }
    )
    intent = api.v1.payment_intents.create(
        {
            "amount": amount,
            "currency": currency,
            "payment_method": card.id,
            "metadata": {"tracker_campaign": slug},
            "confirm": True,
        }
    )
    assert intent.status == "succeeded"
    return intent


def _charge_id(intent: stripe.PaymentIntent) -> str:
    latest = intent.latest_charge
    assert latest is not None
    return latest if isinstance(latest, str) else latest.id


def test_reconcile_recovers_a_payment_whose_webhook_never_arrived(
    app: Flask, client: FlaskClient, session: Session, stripe_api: stripe.StripeClient
) -> None:
    factories.campaign(session)
    _paid_intent(stripe_api, "fund", 3100)
    assert totals(client, session) == (0, 0, 0)
    runner = app.test_cli_runner()

    first = runner.invoke(args=["tracker", "reconcile"])
    assert first.exit_code == 0, first.output
    assert "1 new" in first.output and "1 processed" in first.output
    assert totals(client, session) == (3100, 1, 1)

    second = runner.invoke(args=["tracker", "reconcile"])
    assert second.exit_code == 0, second.output
    assert "new" not in second.output
    assert totals(client, session) == (3100, 1, 1)
    assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 1

    later = runner.invoke(args=["tracker", "reconcile", "--since", "2099-01-01"])
    assert later.exit_code == 0 and later.output.startswith("0 event(s)")


def test_reconcile_rejects_a_bad_date(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["tracker", "reconcile", "--since", "yesterday"])
    assert result.exit_code == 2
    assert "not an ISO date" in result.output


def test_a_refund_overtaking_its_payment_is_resolved_through_the_api(
    app: Flask, client: FlaskClient, session: Session, stripe_api: stripe.StripeClient
) -> None:
    factories.campaign(session)
    intent = _paid_intent(stripe_api, "fund", 3000)
    charge_id = _charge_id(intent)
    stripe_api.v1.refunds.create({"charge": charge_id, "amount": 1000})
    charge = stripe_api.v1.charges.retrieve(charge_id)
    assert charge.amount_refunded == 1000
    refund = event("charge.refunded", charge.to_dict(for_json=True))
    assert deliver_ok(client, refund)["status"] == "deferred"
    assert totals(client, session) == (0, 0, 0)

    runner = app.test_cli_runner()
    result = runner.invoke(args=["tracker", "retry-inbox"])
    assert result.exit_code == 0, result.output
    assert totals(client, session) == (2000, 1, 1)
    session.rollback()
    session.expire_all()
    assert session.get_one(StripeEvent, json.loads(refund)["id"]).status is InboxStatus.PROCESSED

    again = runner.invoke(args=["tracker", "retry-inbox"])
    assert again.output.strip() == "0 event(s)"
    # The payment's own webhook, arriving at last, changes nothing.
    late = event(
        "payment_intent.succeeded",
        stripe_api.v1.payment_intents.retrieve(intent.id).to_dict(for_json=True),
    )
    deliver_ok(client, late)
    assert totals(client, session) == (2000, 1, 1)


def test_a_refund_of_someone_elses_payment_is_ignored_after_asking_stripe(
    app: Flask, client: FlaskClient, session: Session, stripe_api: stripe.StripeClient
) -> None:
    factories.campaign(session)
    intent = _paid_intent(stripe_api, "", 1500)  # empty metadata value: not ours
    charge = stripe_api.v1.charges.retrieve(_charge_id(intent))
    refund = event("charge.refunded", {**charge.to_dict(for_json=True), "amount_refunded": 1500})
    assert deliver_ok(client, refund)["status"] == "deferred"
    result = app.test_cli_runner().invoke(args=["tracker", "retry-inbox"])
    assert result.exit_code == 0, result.output
    assert "1 ignored" in result.output
    assert totals(client, session) == (0, 0, 0)


def test_a_refund_of_another_campaigns_payment_is_ignored_after_asking_stripe_once(
    app: Flask, client: FlaskClient, session: Session, stripe_api: stripe.StripeClient
) -> None:
    # Our metadata key, but a campaign that is not here (another install on the same
    # Stripe account, or a deleted campaign): resolved as ignored, not asked forever.
    factories.campaign(session)
    intent = _paid_intent(stripe_api, "elsewhere", 1500)
    charge = stripe_api.v1.charges.retrieve(_charge_id(intent))
    refund = event("charge.refunded", {**charge.to_dict(for_json=True), "amount_refunded": 1500})
    assert deliver_ok(client, refund)["status"] == "deferred"
    runner = app.test_cli_runner()
    result = runner.invoke(args=["tracker", "retry-inbox"])
    assert result.exit_code == 0, result.output
    assert "1 ignored" in result.output
    assert runner.invoke(args=["tracker", "retry-inbox"]).output.strip() == "0 event(s)"
    session.rollback()
    session.expire_all()
    assert session.get_one(StripeEvent, json.loads(refund)["id"]).status is InboxStatus.IGNORED
    assert totals(client, session) == (0, 0, 0)


def test_a_refund_of_a_payment_stripe_does_not_know_is_ignored_after_asking_once(
    app: Flask, client: FlaskClient, session: Session, stripe_api: stripe.StripeClient
) -> None:
    factories.campaign(session)
    unknown = charge(charge_id=new_id("ch"), intent_id=None, amount=1500, refunded=1500)
    refund = event("charge.refunded", unknown)
    assert deliver_ok(client, refund)["status"] == "deferred"
    runner = app.test_cli_runner()
    result = runner.invoke(args=["tracker", "retry-inbox"])
    assert result.exit_code == 0, result.output
    assert "1 ignored" in result.output
    assert runner.invoke(args=["tracker", "retry-inbox"]).output.strip() == "0 event(s)"
    assert totals(client, session) == (0, 0, 0)


def test_localstripe_webhooks_reach_gunicorn(
    db_url: str,
    localstripe_url: str,
    app: Flask,
    client: FlaskClient,
    session: Session,
    stripe_api: stripe.StripeClient,
) -> None:
    # A campaign of its own: localstripe may still deliver earlier tests' events
    # (for "fund") to this server; they find no campaign here and are ignored.
    factories.campaign(session, slug="gunicorn")
    env = {
        "TRACKER_DATABASE_URL": db_url,
        "TRACKER_SECRET_KEY": "s" * 40,
        "TRACKER_STRIPE_SECRET_KEY": KEY,
        "TRACKER_STRIPE_API_BASE": localstripe_url,
        "TRACKER_STRIPE_WEBHOOK_SECRET": SECRET,
    }
    with gunicorn(env, workers=2) as base:
        _localstripe(
            localstripe_url,
            "POST",
            "/_config/webhooks/tracker",
            {"url": f"{base}/webhooks/stripe", "secret": SECRET},
        )
        try:
            intent = _paid_intent(stripe_api, "gunicorn", 4400)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and totals(client, session, "gunicorn")[0] != 4400:
                time.sleep(0.2)
        finally:
            # Deliveries of later tests go nowhere.
            _localstripe(
                localstripe_url,
                "POST",
                "/_config/webhooks/tracker",
                {"url": "http://127.0.0.1:9/", "secret": SECRET},
            )
    assert totals(client, session, "gunicorn") == (4400, 1, 1)
    session.rollback()
    session.expire_all()
    # Earlier tests' late events may be stored too, and localstripe sometimes
    # announces a payment again as an object without metadata: those are stored
    # and ignored ("not ours"); the money is counted once (totals above).
    stored = session.scalars(
        select(StripeEvent).where(StripeEvent.type == "payment_intent.succeeded")
    ).all()
    statuses = {row.status for row in stored if intent.id in row.payload}
    assert InboxStatus.PROCESSED in statuses
    assert statuses <= {InboxStatus.PROCESSED, InboxStatus.IGNORED}
    # Reconciliation finds the same event already applied.
    result = app.test_cli_runner().invoke(args=["tracker", "reconcile"])
    assert result.exit_code == 0 and "new" not in result.output
    assert totals(client, session, "gunicorn") == (4400, 1, 1)
    assert check_totals(session) == []
