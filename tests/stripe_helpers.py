"""Stripe-shaped test data: signed webhook deliveries and the objects inside them.

Shapes follow Stripe's API reference (Event, Checkout Session, PaymentIntent,
Charge, Dispute, Invoice, Subscription), trimmed to the fields a handler may
read plus a few it should not care about.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import stripe
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import make_app
from tracker.db import Database
from tracker.models import Campaign, Pledge, PledgeFrequency, PledgeSource, PledgeStatus
from tracker.services.ledger import check_totals

SECRET = "whsec_test_" + "a" * 32
OLD_SECRET = "whsec_test_" + "b" * 32
OTHER_SECRET = "whsec_test_" + "c" * 32
# Nothing listens there: a test that reaches Stripe by mistake fails at once.
NOWHERE = "http://127.0.0.1:9"
T0 = 1_795_000_000  # 2026-11-18T09:46:40Z


def read_session(database: Database) -> Iterator[Session]:
    """Body of the ``session`` fixture of the webhook tests: a read-mode session.

    On SQLite a transaction it leaves open never blocks the app's writers (WAL),
    unlike the default write session. Reads start with a rollback, so they see
    what the app committed since.
    """
    with database.session(write=False) as reader:
        yield reader


def new_id(prefix: str) -> str:
    """A Stripe-looking id: ``prefix`` and 24 random characters."""
    return f"{prefix}_{secrets.token_hex(12)}"


def webhook_app(db_url: str, **overrides: Any) -> Flask:
    """An app accepting webhooks signed with :data:`SECRET`, with a test-mode key."""
    config: dict[str, Any] = {
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "STRIPE_SECRET_KEY": "sk_test_" + "k" * 24,
        "STRIPE_API_BASE": NOWHERE,
    }
    config.update(overrides)
    return make_app(db_url, **config)


def event(
    type_: str,
    obj: dict[str, Any],
    *,
    event_id: str | None = None,
    created: int | None = None,
    livemode: bool = False,
) -> str:
    """The JSON text of a Stripe event carrying ``obj`` as ``data.object``."""
    return json.dumps(
        {
            "id": event_id or new_id("evt"),
            "object": "event",
            "api_version": "2025-10-29.clover",
            "created": created if created is not None else int(time.time()),
            "data": {"object": obj},
            "livemode": livemode,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": type_,
        }
    )


def sign(payload: str, secret: str = SECRET, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe would send for ``payload``."""
    return str(stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp))


def post(
    client: FlaskClient,
    payload: str | bytes,
    *,
    secret: str = SECRET,
    timestamp: int | None = None,
    header: str | None = None,
) -> Any:
    """POST a signed delivery to the webhook endpoint; returns the test response."""
    text = payload.decode() if isinstance(payload, bytes) else payload
    headers = {"Stripe-Signature": header if header is not None else sign(text, secret, timestamp)}
    return client.post(
        "/webhooks/stripe", data=payload, headers=headers, content_type="application/json"
    )


def deliver_ok(client: FlaskClient, payload: str) -> dict[str, Any]:
    """POST and assert a 2xx; returns the JSON answer."""
    response = post(client, payload)
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def metadata(slug: str = "fund", pledge: int | None = None) -> dict[str, str]:
    """The metadata the donate page puts on everything it creates."""
    meta = {"tracker_campaign": slug}
    if pledge is not None:
        meta["tracker_pledge"] = str(pledge)
    return meta


def checkout_session(
    *,
    meta: dict[str, str],
    amount: int = 2500,
    currency: str = "usd",
    payment_intent: str | None = None,
    session_id: str | None = None,
    payment_status: str = "paid",
    mode: str = "payment",
    subscription: str | None = None,
    invoice: str | None = None,
    email: str = "donor@example.org",
) -> dict[str, Any]:
    """A ``checkout.session`` object."""
    return {
        "id": session_id or new_id("cs_test"),
        "object": "checkout.session",
        "amount_subtotal": amount,
        "amount_total": amount,
        "currency": currency,
        "customer": None,
        "customer_details": {"email": email, "name": "Ada Donor"},
        "invoice": invoice,
        "livemode": False,
        "metadata": meta,
        "mode": mode,
        "payment_intent": payment_intent if mode == "payment" else None,
        "payment_status": payment_status,
        "status": "complete",
        "subscription": subscription,
    }


def payment_intent(
    *,
    meta: dict[str, str],
    amount: int = 2500,
    currency: str = "usd",
    intent_id: str | None = None,
    charge_id: str | None = None,
    status: str = "succeeded",
    invoice: str | None = None,
) -> dict[str, Any]:
    """A ``payment_intent`` object."""
    return {
        "id": intent_id or new_id("pi"),
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount if status == "succeeded" else 0,
        "currency": currency,
        "customer": None,
        "invoice": invoice,
        "latest_charge": charge_id,
        "livemode": False,
        "metadata": meta,
        "receipt_email": None,
        "status": status,
    }


def charge(
    *,
    charge_id: str,
    intent_id: str | None,
    amount: int = 2500,
    refunded: int = 0,
    currency: str = "usd",
) -> dict[str, Any]:
    """A ``charge`` object with a cumulative ``amount_refunded``."""
    return {
        "id": charge_id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": refunded,
        "currency": currency,
        "invoice": None,
        "livemode": False,
        "metadata": {},
        "paid": True,
        "payment_intent": intent_id,
        "refunded": refunded >= amount,
        "status": "succeeded",
    }


def dispute(
    *,
    dispute_id: str,
    charge_id: str,
    intent_id: str | None,
    status: str,
    amount: int = 2500,
    currency: str = "usd",
) -> dict[str, Any]:
    """A ``dispute`` object."""
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": amount,
        "charge": charge_id,
        "currency": currency,
        "livemode": False,
        "metadata": {},
        "payment_intent": intent_id,
        "reason": "fraudulent",
        "status": status,
    }


def invoice(
    *,
    meta: dict[str, str],
    subscription: str,
    amount: int = 1000,
    currency: str = "usd",
    invoice_id: str | None = None,
    paid_at: int | None = None,
) -> dict[str, Any]:
    """A paid subscription ``invoice`` (2025 API shape: metadata under ``parent``)."""
    return {
        "id": invoice_id or new_id("in"),
        "object": "invoice",
        "amount_due": amount,
        "amount_paid": amount,
        "billing_reason": "subscription_cycle",
        "currency": currency,
        "customer": "cus_test",
        "customer_email": "monthly@example.org",
        "livemode": False,
        "metadata": {},
        "parent": {
            "type": "subscription_details",
            "subscription_details": {"metadata": meta, "subscription": subscription},
        },
        "status": "paid",
        "status_transitions": {"paid_at": paid_at},
    }


def subscription(*, meta: dict[str, str], subscription_id: str) -> dict[str, Any]:
    """A canceled ``subscription`` object."""
    return {
        "id": subscription_id,
        "object": "subscription",
        "customer": "cus_test",
        "livemode": False,
        "metadata": meta,
        "status": "canceled",
    }


def pending_pledge(
    session: Session,
    slug: str = "fund",
    amount: int = 2500,
    *,
    frequency: PledgeFrequency = PledgeFrequency.ONE_TIME,
    checkout_session_id: str | None = None,
) -> Pledge:
    """A pending Stripe pledge as the donate page leaves it, committed."""
    campaign = session.scalars(select(Campaign).where(Campaign.slug == slug)).one()
    pledge = Pledge(
        campaign_id=campaign.id,
        amount=amount,
        currency=campaign.currency,
        frequency=frequency,
        donor_email="donor@example.org",
        anonymous=False,
        source=PledgeSource.STRIPE,
        status=PledgeStatus.PENDING,
        stripe_checkout_session_id=checkout_session_id or new_id("cs_test"),
    )
    session.add(pledge)
    session.commit()
    return pledge


def totals(client: FlaskClient, session: Session, slug: str = "fund") -> tuple[int, int, int]:
    """(raised, payments, donors) from the public API, after checking the ledger agrees."""
    session.rollback()
    session.expire_all()
    assert check_totals(session) == []
    session.rollback()
    session.expire_all()
    body = client.get(f"/api/v1/campaigns/{slug}").get_json()
    return body["raised"], body["payments"], body["donors"]


def rebind(monkeypatch: pytest.MonkeyPatch, name: str, value: Any) -> None:
    """Replace ``name`` for this test wherever the ``stripe_events`` package uses it.

    The package is split into modules that each import what they use, so a name
    (``record_entry``, ``_wake``) is rebound in every module that holds the same
    object, and on the package itself.
    """
    from tracker.services import stripe_events

    original = getattr(stripe_events, name)
    modules = [stripe_events] + [
        importlib.import_module(f"{stripe_events.__name__}.{info.name}")
        for info in pkgutil.iter_modules(stripe_events.__path__)
    ]
    for module in modules:
        if module.__dict__.get(name) is original:
            monkeypatch.setattr(module, name, value)
