"""Refunds and disputes: money taken back from a booked payment, never more than
it still holds, each movement booked once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tracker.domain.ledger import EntryKind, EntrySource
from tracker.domain.stripe_rules import dispute_effects, refund_increment
from tracker.gateway.webhooks import WebhookEvent
from tracker.models import Campaign, InboxStatus, LedgerEntry, StripePayment
from tracker.services.ledger import record_entry
from tracker.services.stripe_events.common import EventError, Result, _id, _money
from tracker.services.stripe_events.payments import _find_payment, _id_taken


def _awaited(obj: dict[str, Any], charge_id: str) -> str:
    """The id a deferred refund or dispute waits for: its PaymentIntent when it names
    one, as every event that books a card payment knows it (a Checkout Session does
    not know the charge); else the charge."""
    return _id(obj.get("payment_intent")) or charge_id


def _charge_refunded(session: Session, event: WebhookEvent, obj: dict[str, Any]) -> Result:
    charge_id = _id(obj.get("id"))
    if charge_id is None:
        raise EventError("a charge without an id")
    payment = _find_payment(
        session,
        charge_id=charge_id,
        payment_intent_id=_id(obj.get("payment_intent")),
        invoice_id=_id(obj.get("invoice")),
        lock=True,
    )
    if payment is None:
        return Result(
            InboxStatus.DEFERRED, "the refunded payment is not booked yet", _awaited(obj, charge_id)
        )
    if payment.flag:
        return Result(InboxStatus.PROCESSED, f"refund of a flagged payment ({payment.flag})")
    if payment.charge_id is None and not _id_taken(session, "charge_id", charge_id):
        payment.charge_id = charge_id
    reported, currency = _money(obj, "amount_refunded")
    if reported + payment.disputed > payment.amount:
        # Refunds and disputes together never take more than was paid.
        held = f" ({payment.disputed} withdrawn by disputes)" if payment.disputed else ""
        raise EventError(
            f"charge {charge_id} reports {reported} refunded of a {payment.amount} payment{held}"
        )
    increment = refund_increment(payment.refunded, reported)
    if increment == 0:
        session.flush()
        return Result(InboxStatus.PROCESSED, "no refund beyond what is booked")
    if currency != payment.currency:
        raise EventError(f"refund in {currency} of a {payment.currency} payment")
    payment.refunded = reported
    session.flush()
    _book_against(
        session,
        payment,
        f"{charge_id}:refunded:{reported}",
        EntryKind.REFUND,
        increment,
        event.created,
    )
    return Result(InboxStatus.PROCESSED)


def _book_against(
    session: Session,
    payment: StripePayment,
    reference: str,
    kind: EntryKind,
    amount: int,
    occurred_at: datetime,
) -> None:
    """Book a movement (refund, dispute) on the campaign, donor and pledge of ``payment``."""
    record_entry(
        session,
        session.get_one(Campaign, payment.campaign_id),
        source=EntrySource.STRIPE,
        reference=reference,
        kind=kind,
        amount=amount,
        currency=payment.currency,
        occurred_at=occurred_at,
        donor_key=payment.donor_key,
        pledge_id=payment.pledge_id,
    )


def _dispute(session: Session, event: WebhookEvent, obj: dict[str, Any]) -> Result:
    dispute_id = _id(obj.get("id"))
    charge_id = _id(obj.get("charge"))
    if dispute_id is None or charge_id is None:
        raise EventError("a dispute without its id or charge")
    payment = _find_payment(
        session, charge_id=charge_id, payment_intent_id=_id(obj.get("payment_intent")), lock=True
    )
    if payment is None:
        return Result(
            InboxStatus.DEFERRED, "the disputed payment is not booked yet", _awaited(obj, charge_id)
        )
    if payment.flag:
        return Result(InboxStatus.PROCESSED, f"dispute of a flagged payment ({payment.flag})")
    status = obj.get("status")
    effects = dispute_effects(status if isinstance(status, str) else "", event.type)
    if not (effects.withdrawn or effects.reinstated):
        return Result(InboxStatus.PROCESSED, f"dispute {status}: no money moved")
    amount, currency = _money(obj, "amount")
    if amount == 0:
        return Result(InboxStatus.PROCESSED, "a dispute of nothing")
    if currency != payment.currency:
        raise EventError(f"dispute in {currency} of a {payment.currency} payment")
    withdrawal = f"{dispute_id}:withdrawn"
    withdrawn = _booked_amount(session, withdrawal)
    if effects.withdrawn and withdrawn is None:
        # At most what the payment still holds: no account can lose more than it got.
        holds = payment.amount - payment.refunded - payment.disputed
        if amount > holds:
            raise EventError(
                f"dispute {dispute_id} of {amount} exceeds the {holds} that payment"
                f" {payment.reference} still holds (paid {payment.amount}, refunded"
                f" {payment.refunded}, disputed {payment.disputed})"
            )
        _book_against(session, payment, withdrawal, EntryKind.DISPUTE_LOST, amount, event.created)
        payment.disputed += amount
        withdrawn = amount
    reinstatement = f"{dispute_id}:reinstated"
    if effects.reinstated and _booked_amount(session, reinstatement) is None:
        # At most what this dispute withdrew (its withdrawal is booked by now).
        taken = withdrawn or 0
        if amount > taken:
            raise EventError(f"dispute {dispute_id} reinstates {amount} but withdrew {taken}")
        _book_against(session, payment, reinstatement, EntryKind.DISPUTE_WON, amount, event.created)
        payment.disputed -= amount
    session.flush()
    return Result(InboxStatus.PROCESSED)


def _booked_amount(session: Session, reference: str) -> int | None:
    """The magnitude of the Stripe ledger entry ``reference``, or None if it is not booked."""
    value = session.scalar(
        select(LedgerEntry.amount).where(
            LedgerEntry.source == EntrySource.STRIPE, LedgerEntry.reference == reference
        )
    )
    return None if value is None else abs(value)
