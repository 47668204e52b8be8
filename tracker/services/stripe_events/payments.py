"""Booking a payment once, whichever event reports it first: Checkout Sessions
and PaymentIntents here, invoices through :mod:`.subscriptions`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from tracker.db import Prepared
from tracker.domain.ledger import EntryKind, EntrySource
from tracker.gateway.webhooks import WebhookEvent
from tracker.models import (
    InboxStatus,
    Pledge,
    PledgeFrequency,
    PledgeSource,
    PledgeStatus,
    StripePayment,
    utcnow,
)
from tracker.services.donors import email_key
from tracker.services.ledger import _insert_for, record_entry
from tracker.services.stripe_events.common import (
    _PAYMENTS,
    _PLEDGES,
    CURRENCY_MISMATCH,
    EventError,
    Result,
    _id,
    _metadata,
    _money,
    log,
)
from tracker.services.stripe_events.targets import (
    _UNIQUE_PLEDGE_IDS,
    _held_by_another,
    _move_pledge,
    _set_if_empty,
    _Target,
    _target,
)

if TYPE_CHECKING:
    from tracker.services.stripe_events.targets import CampaignRef

# A pledge about to be paid, locked (see _book_payment). FOR NO KEY UPDATE on
# PostgreSQL (key_share): it still waits for a Checkout event that updated the
# pledge's Stripe ids (unique columns: a key update), and lets through the foreign
# keys of other events' rows to the pledge (a refund's ledger entry).
_LOCK_PLEDGE = Prepared(
    select(_PLEDGES.c.id)
    .where(_PLEDGES.c.id == bindparam("pledge_id"))
    .with_for_update(key_share=True)
)
# When a pledge that can no longer move (canceled) was first paid.
_PAID_AT = (
    _PLEDGES.update()
    .where(_PLEDGES.c.id == bindparam("pledge_id"), _PLEDGES.c.paid_at.is_(None))
    .values(paid_at=bindparam("paid_at"))
)
# A new claim learns the pledge created for it.
_CLAIM_PLEDGE = Prepared(
    _PAYMENTS.update()
    .where(_PAYMENTS.c.id == bindparam("payment_id"))
    .values(pledge_id=bindparam("pledge_id"), donor_key=bindparam("donor_key"))
)
# Every column of a new claim and of a Payment Link's pledge is given (no
# Python-side default runs on the driver's cursor: see tracker.db.Prepared).
_CLAIM_COLUMNS = (
    "reference",
    "campaign_id",
    "pledge_id",
    "payment_intent_id",
    "charge_id",
    "invoice_id",
    "amount",
    "currency",
    "donor_key",
    "refunded",
    "disputed",
    "flag",
    "paid_at",
    "created_at",
)
_PLEDGE_COLUMNS = (
    "campaign_id",
    "amount",
    "currency",
    "frequency",
    "donor_name",
    "donor_email",
    "message",
    "anonymous",
    "source",
    "status",
    "paid_at",
    "stripe_checkout_session_id",
    "stripe_payment_intent_id",
    "stripe_subscription_id",
    "stripe_customer_id",
    "created_at",
    "updated_at",
)


@dataclass(slots=True)
class _Payment:
    """A payment as reported by any of the events that report payments."""

    reference: str
    amount: int
    currency: str
    paid_at: datetime
    payment_intent_id: str | None = None
    charge_id: str | None = None
    invoice_id: str | None = None
    email: str | None = None
    name: str | None = None
    frequency: PledgeFrequency = PledgeFrequency.ONE_TIME
    pledge_ids: dict[str, str | None] = field(default_factory=dict)


def _donor_key(
    session: Session, pledge_email: str | None, pledge_id: int, payment: _Payment
) -> str:
    """Who gave, for counting donors: the pledge's email, else the payment's, else the pledge.

    An address is kept only as its keyed hash (docs/privacy.md).
    """
    address = pledge_email or payment.email
    if address and address.strip():
        return email_key(session, address)
    return f"pledge:{pledge_id}"


@cache
def _claim_statement(dialect: str) -> Prepared:
    # Built once per dialect; the values come as parameters.
    return Prepared(
        _insert_for(dialect, _PAYMENTS).on_conflict_do_nothing().returning(_PAYMENTS.c.id),
        _CLAIM_COLUMNS,
    )


@cache
def _pledge_statement(dialect: str) -> Prepared:
    return Prepared(_insert_for(dialect, _PLEDGES).returning(_PLEDGES.c.id), _PLEDGE_COLUMNS)


def _book_payment(session: Session, target: _Target, payment: _Payment) -> Result:
    """Book a payment once, whichever event reports it first.

    The ``stripe_payments`` row is claimed first with ``ON CONFLICT DO NOTHING``:
    on PostgreSQL a concurrent claim of the same reference waits for this
    transaction and then finds the row, so only one transaction books the
    money or creates a pledge for a payment made outside our donate page.
    """
    if payment.amount <= 0:
        return Result(InboxStatus.PROCESSED, "nothing was paid")
    campaign = target.campaign
    pledge = target.pledge
    # Never summed into a total of another currency: kept for an admin to decide.
    flag = CURRENCY_MISMATCH if payment.currency != campaign.currency else None
    # Without a pledge yet, the donor key may need the id of the one created below.
    donor_key = _donor_key(session, pledge.donor_email, pledge.id, payment) if pledge else ""
    if pledge is not None:
        # Lock order: the pledge before the claim. A Checkout event updates its pledge
        # first; without this, the invoice.paid or payment_intent.succeeded of the same
        # payment would claim first and then wait for the pledge (the claim's foreign
        # key), and the two would deadlock on PostgreSQL.
        _LOCK_PLEDGE.execute(session, {"pledge_id": pledge.id}).fetchone()
    # Core INSERT … RETURNING id: everything else about a new row is known here, so
    # the hot path needs no ORM object for it. With a pledge, the row is complete.
    claim = (
        _claim_statement(session.get_bind().dialect.name)
        .execute(
            session,
            {
                "reference": payment.reference,
                "campaign_id": campaign.id,
                "pledge_id": pledge.id if pledge else None,
                "payment_intent_id": payment.payment_intent_id,
                "charge_id": payment.charge_id,
                "invoice_id": payment.invoice_id,
                "amount": payment.amount,
                "currency": payment.currency,
                "donor_key": donor_key,
                "refunded": 0,
                "disputed": 0,
                "flag": flag,
                "paid_at": payment.paid_at,
                "created_at": utcnow(),
            },
        )
        .fetchone()
    )
    if claim is None:
        return _known_payment(session, target, payment)

    if pledge is None:
        pledge_id, email = _pledge_from_payment(session, campaign, payment)
        donor_key = _donor_key(session, email, pledge_id, payment)
        _CLAIM_PLEDGE.execute(
            session, {"payment_id": claim[0], "pledge_id": pledge_id, "donor_key": donor_key}
        )
    else:
        pledge_id = pledge.id
        _pledge_paid(session, pledge, payment)
    if flag is not None:
        log.warning(
            "Stripe payment %s is in %s but campaign %s counts %s: flagged, not booked",
            payment.reference,
            payment.currency,
            campaign.slug,
            campaign.currency,
        )
        return Result(
            InboxStatus.PROCESSED,
            f"flagged: paid in {payment.currency}",
            wake=_payment_ids(payment),
        )
    record_entry(
        session,
        campaign,
        source=EntrySource.STRIPE,
        reference=payment.reference,
        kind=EntryKind.PAYMENT,
        amount=payment.amount,
        currency=payment.currency,
        occurred_at=payment.paid_at,
        donor_key=donor_key,
        pledge_id=pledge_id,
    )
    return Result(InboxStatus.PROCESSED, wake=_payment_ids(payment))


def _known_payment(session: Session, target: _Target, payment: _Payment) -> Result:
    """Another event booked this payment: only learn the ids it did not know."""
    row = _find_payment(
        session,
        reference=payment.reference,
        payment_intent_id=payment.payment_intent_id,
        charge_id=payment.charge_id,
        invoice_id=payment.invoice_id,
    )
    if row is None:  # pragma: no cover - the claim or a conflicting row exists
        raise EventError(f"payment {payment.reference} could not be recorded")
    pledge = target.pledge or (session.get(Pledge, row.pledge_id) if row.pledge_id else None)
    for name in ("payment_intent_id", "charge_id", "invoice_id"):
        value = getattr(payment, name)
        if value and getattr(row, name) is None and not _id_taken(session, name, value):
            setattr(row, name, value)
    session.flush()
    if pledge is not None:
        _pledge_paid(session, pledge, payment)
    return Result(
        InboxStatus.PROCESSED,
        f"payment {row.reference} was already recorded",
        wake=_payment_ids(row),
    )


def _pledge_from_payment(
    session: Session, campaign: CampaignRef, payment: _Payment
) -> tuple[int, str | None]:
    """A pledge for money given through another Stripe surface (a Payment Link, the API).

    A Core INSERT: nothing later in the transaction needs it as an object.

    :return: the new pledge's id and donor email.
    """
    email = payment.email[:320] if payment.email else None
    values: dict[str, Any] = {
        "campaign_id": campaign.id,
        "amount": payment.amount,
        "currency": payment.currency,
        "frequency": payment.frequency,
        "donor_name": payment.name[:200] if payment.name else None,
        "donor_email": email,
        "message": None,
        "anonymous": False,
        "source": PledgeSource.STRIPE,
        # Created for money that arrived: paid from the start.
        "status": PledgeStatus.PAID,
        "paid_at": payment.paid_at,
        "stripe_checkout_session_id": None,
        "stripe_payment_intent_id": None,
        "stripe_subscription_id": None,
        "stripe_customer_id": None,
        "created_at": utcnow(),
        "updated_at": utcnow(),
    }
    values.update(
        (k, v)
        for k, v in payment.pledge_ids.items()
        # A Checkout Session or subscription of another pledge (one of another
        # campaign): this payment's pledge does without it rather than fail.
        if v and not (k in _UNIQUE_PLEDGE_IDS and _held_by_another(session, k, v, None))
    )
    if payment.frequency is PledgeFrequency.ONE_TIME and payment.payment_intent_id:
        values["stripe_payment_intent_id"] = payment.payment_intent_id
    pledge_id: int = (
        _pledge_statement(session.get_bind().dialect.name).execute(session, values).fetchone()[0]
    )
    return pledge_id, email


def _pledge_paid(session: Session, pledge: Pledge, payment: _Payment) -> None:
    intent = payment.payment_intent_id
    # A monthly pledge sees a new PaymentIntent every month: only one-time ones keep it.
    if (
        payment.frequency is PledgeFrequency.ONE_TIME
        and intent
        and pledge.stripe_payment_intent_id is None
        and session.scalar(select(Pledge.id).where(Pledge.stripe_payment_intent_id == intent))
        is None
    ):
        pledge.stripe_payment_intent_id = intent
    _set_if_empty(pledge, **payment.pledge_ids)
    paid_at = pledge.paid_at or payment.paid_at
    if not _move_pledge(session, pledge, PledgeStatus.PAID, paid_at=paid_at):
        # Canceled already (a subscription's deletion overtook its first invoice):
        # it stays canceled, but it did pay.
        session.execute(_PAID_AT, {"pledge_id": pledge.id, "paid_at": paid_at})


def _find_payment(
    session: Session,
    *,
    reference: str | None = None,
    payment_intent_id: str | None = None,
    charge_id: str | None = None,
    invoice_id: str | None = None,
    lock: bool = False,
) -> StripePayment | None:
    conditions = [
        column == value
        for column, value in (
            (StripePayment.reference, reference),
            (StripePayment.payment_intent_id, payment_intent_id),
            (StripePayment.charge_id, charge_id),
            (StripePayment.invoice_id, invoice_id),
        )
        if value
    ]
    if not conditions:
        return None
    query = select(StripePayment).where(or_(*conditions)).order_by(StripePayment.id).limit(1)
    if lock:
        # The lock's read must win over a copy this session loaded earlier without
        # it: another transaction may have committed a newer ``refunded`` since.
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.scalars(query).first()


def _id_taken(session: Session, column: str, value: str) -> bool:
    """Whether another payment row already holds this Stripe id (the column is unique)."""
    taken = session.scalar(
        select(StripePayment.id).where(getattr(StripePayment, column) == value).limit(1)
    )
    return taken is not None


def _payment_ids(payment: StripePayment | _Payment) -> tuple[str, ...]:
    """The Stripe ids a deferred event may be waiting for to find this payment."""
    ids = (payment.reference, payment.payment_intent_id, payment.charge_id, payment.invoice_id)
    return tuple(i for i in ids if i)


# ------------------------------------------------------------------------ checkout


def _checkout_paid(session: Session, event: WebhookEvent, obj: dict[str, Any]) -> Result:
    session_id = _id(obj.get("id"))
    intent_id = _id(obj.get("payment_intent"))
    subscription_id = _id(obj.get("subscription"))
    target = _target(
        session,
        _metadata(obj),
        checkout_session_id=session_id,
        payment_intent_id=intent_id,
        subscription_id=subscription_id,
    )
    if isinstance(target, Result):
        return target
    details = obj.get("customer_details")
    customer: dict[str, Any] = details if isinstance(details, dict) else {}
    ids = {
        "stripe_checkout_session_id": session_id,
        "stripe_subscription_id": subscription_id,
        "stripe_customer_id": _id(obj.get("customer")),
    }
    if target.pledge is not None:
        _set_if_empty(target.pledge, **ids)
        session.flush()
    status = obj.get("payment_status")
    if event.type == "checkout.session.completed" and status != "paid":
        # Bank debits and vouchers: the money comes later, or never.
        return Result(InboxStatus.PROCESSED, f"payment_status {status}: waiting for the payment")
    subscription = obj.get("mode") == "subscription"
    reference = _id(obj.get("invoice")) if subscription else intent_id
    if reference is None:
        if subscription:
            return Result(InboxStatus.PROCESSED, "subscription started: invoice.paid books it")
        raise EventError("a paid Checkout Session without a payment_intent")
    amount, currency = _money(obj, "amount_total")
    payment = _Payment(
        reference=reference,
        amount=amount,
        currency=currency,
        paid_at=event.created,
        payment_intent_id=None if subscription else intent_id,
        invoice_id=reference if subscription else None,
        email=customer.get("email") if isinstance(customer.get("email"), str) else None,
        name=customer.get("name") if isinstance(customer.get("name"), str) else None,
        frequency=PledgeFrequency.MONTHLY if subscription else PledgeFrequency.ONE_TIME,
        pledge_ids=ids,
    )
    return _book_payment(session, target, payment)


def _checkout_unpaid(session: Session, event: WebhookEvent, obj: dict[str, Any]) -> Result:
    target = _target(
        session,
        _metadata(obj),
        checkout_session_id=_id(obj.get("id")),
        payment_intent_id=_id(obj.get("payment_intent")),
    )
    if isinstance(target, Result):
        return target
    if target.pledge is None:
        return Result(InboxStatus.PROCESSED, "no pledge to update")
    expired = event.type == "checkout.session.expired"
    moved = _move_pledge(
        session, target.pledge, PledgeStatus.EXPIRED if expired else PledgeStatus.FAILED
    )
    return Result(InboxStatus.PROCESSED, None if moved else "pledge already settled")


# ------------------------------------------------------------------ payment intents


def _payment_intent_succeeded(
    session: Session, obj: dict[str, Any], *, paid_at: datetime
) -> Result:
    if _id(obj.get("invoice")):
        return Result(
            InboxStatus.IGNORED, "a subscription invoice's payment: invoice.paid books it"
        )
    intent_id = _id(obj.get("id"))
    if intent_id is None:
        raise EventError("a PaymentIntent without an id")
    target = _target(session, _metadata(obj), payment_intent_id=intent_id)
    if isinstance(target, Result):
        return target
    # amount_received is what was charged; the Stripe stand-in only reports amount.
    field = "amount_received" if obj.get("amount_received") is not None else "amount"
    amount, currency = _money(obj, field)
    email = obj.get("receipt_email")
    payment = _Payment(
        reference=intent_id,
        amount=amount,
        currency=currency,
        paid_at=paid_at,
        payment_intent_id=intent_id,
        charge_id=_id(obj.get("latest_charge")),
        email=email if isinstance(email, str) else None,
        pledge_ids={"stripe_customer_id": _id(obj.get("customer"))},
    )
    return _book_payment(session, target, payment)


def _payment_intent_failed(session: Session, obj: dict[str, Any]) -> Result:
    intent_id = _id(obj.get("id"))
    target = _target(session, _metadata(obj), payment_intent_id=intent_id)
    if isinstance(target, Result):
        return target
    if target.pledge is None:
        return Result(InboxStatus.PROCESSED, "a failed payment without a pledge: nothing to do")
    if target.pledge.stripe_checkout_session_id is not None:
        # A declined card inside Checkout is not the end: the donor may try another
        # card on the same page. The session's own events decide (completed, expired,
        # async_payment_failed); failing the pledge here told a donor who then paid
        # that nothing was charged.
        return Result(InboxStatus.PROCESSED, "a declined attempt in Checkout: the session decides")
    moved = _move_pledge(session, target.pledge, PledgeStatus.FAILED)
    return Result(InboxStatus.PROCESSED, None if moved else "pledge already settled")
