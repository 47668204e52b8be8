"""Subscriptions: a monthly pledge's invoices, booked like any payment, and the
end of its promise when the subscription is deleted."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from tracker.gateway.webhooks import WebhookEvent
from tracker.models import InboxStatus, PledgeFrequency, PledgeStatus
from tracker.services.stripe_events.common import (
    EventError,
    Result,
    _id,
    _instant,
    _metadata,
    _money,
)
from tracker.services.stripe_events.payments import _book_payment, _Payment
from tracker.services.stripe_events.targets import _move_pledge, _target


def _subscription_metadata(obj: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The subscription's metadata and id as an invoice reports them (any API version)."""
    subscription_id = _id(obj.get("subscription"))
    candidates: list[Any] = [obj.get("subscription_details")]
    parent = obj.get("parent")
    if isinstance(parent, dict) and isinstance(parent.get("subscription_details"), dict):
        details = parent["subscription_details"]
        candidates.append(details)
        subscription_id = subscription_id or _id(details.get("subscription"))
    lines = obj.get("lines")
    if isinstance(lines, dict) and isinstance(lines.get("data"), list) and lines["data"]:
        candidates.append(lines["data"][0])
    for candidate in candidates:
        if isinstance(candidate, dict) and _metadata(candidate).get("tracker_campaign"):
            return _metadata(candidate), subscription_id
    return _metadata(obj), subscription_id


def _invoice_payment_ids(obj: dict[str, Any]) -> tuple[str | None, str | None]:
    """The PaymentIntent and charge that paid an invoice, where the payload names them.

    Older API versions put them on the invoice; newer ones only in its ``payments``
    list when it is included. Refunds and disputes of monthly payments name them.
    """
    intent, charge = _id(obj.get("payment_intent")), _id(obj.get("charge"))
    payments = obj.get("payments")
    if intent is None and isinstance(payments, dict) and isinstance(payments.get("data"), list):
        for item in payments["data"]:
            payment = item.get("payment") if isinstance(item, dict) else None
            if isinstance(payment, dict) and item.get("status") in (None, "paid"):
                intent = _id(payment.get("payment_intent"))
                charge = charge or _id(payment.get("charge"))
                if intent or charge:
                    break
    return intent, charge


def _invoice_paid(session: Session, event: WebhookEvent, obj: dict[str, Any]) -> Result:
    invoice_id = _id(obj.get("id"))
    if invoice_id is None:
        raise EventError("an invoice without an id")
    meta, subscription_id = _subscription_metadata(obj)
    target = _target(session, meta, subscription_id=subscription_id)
    if isinstance(target, Result):
        return target
    intent_id, charge_id = _invoice_payment_ids(obj)
    transitions = obj.get("status_transitions")
    paid_at = _instant(
        transitions.get("paid_at") if isinstance(transitions, dict) else None, event.created
    )
    email = obj.get("customer_email")
    amount, currency = _money(obj, "amount_paid")
    payment = _Payment(
        reference=invoice_id,
        amount=amount,
        currency=currency,
        paid_at=paid_at,
        payment_intent_id=intent_id,
        charge_id=charge_id,
        invoice_id=invoice_id,
        email=email if isinstance(email, str) else None,
        frequency=PledgeFrequency.MONTHLY,
        pledge_ids={
            "stripe_subscription_id": subscription_id,
            "stripe_customer_id": _id(obj.get("customer")),
        },
    )
    return _book_payment(session, target, payment)


def _subscription_deleted(session: Session, obj: dict[str, Any]) -> Result:
    target = _target(session, _metadata(obj), subscription_id=_id(obj.get("id")))
    if isinstance(target, Result):
        return target
    if target.pledge is None:
        return Result(InboxStatus.PROCESSED, "no pledge for this subscription")
    # Past payments stay on the ledger: only the promise of future ones ends.
    moved = _move_pledge(session, target.pledge, PledgeStatus.CANCELED)
    return Result(InboxStatus.PROCESSED, None if moved else "pledge already settled")
