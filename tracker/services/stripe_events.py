"""Applying Stripe events to pledges and the ledger, through the inbox.

Every event goes the same way, whether a webhook delivered it, the retry job
picked it up again or reconciliation listed it from the API:

1. it is stored raw in ``stripe_events`` (``INSERT … ON CONFLICT DO NOTHING``)
   and that is committed before anything else, so it can never be lost;
2. it is applied in one transaction that holds the inbox row's lock, so
   concurrent deliveries of one event take turns and the later ones see it
   done;
3. an error rolls the whole application back and marks the event ``failed``
   in a transaction of its own, for a retry.

What makes duplicates and any arrival order harmless is the ledger's unique
``(source, reference)`` plus the rules in :mod:`tracker.domain.stripe_rules`.
An event about a payment not booked yet (a refund overtaking its payment) is
``deferred``: it is applied in the transaction that books the payment, or by
the retry job, which can also ask Stripe for the payment.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, cast

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock: SQLite writers just poll
    fcntl = None  # type: ignore[assignment]

from sqlalchemy import (
    CursorResult,
    Executable,
    Table,
    bindparam,
    case,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, object_session
from sqlalchemy.orm.attributes import set_committed_value

from tracker.domain.ledger import EntryKind, EntrySource, LedgerError
from tracker.domain.stripe_rules import PLEDGE_MOVES_FROM, dispute_effects, refund_increment
from tracker.gateway.amounts import AmountNotRepresentable, from_stripe
from tracker.gateway.client import GatewayError, StripeGateway
from tracker.gateway.events import (
    RETENTION_DAYS,
    fetch_payment_intent,
    invoice_of_payment_intent,
    list_events,
)
from tracker.gateway.webhooks import InvalidWebhook, WebhookEvent, parse_event
from tracker.models import (
    Campaign,
    InboxStatus,
    LedgerEntry,
    Pledge,
    PledgeFrequency,
    PledgeSource,
    PledgeStatus,
    StripeEvent,
    StripePayment,
    utcnow,
)
from tracker.services.donors import email_key
from tracker.services.ledger import _insert_for, record_entry

log = logging.getLogger(__name__)

SessionFactory = Callable[[], Session]

# The event types this service acts on: the list to enable on the Stripe endpoint.
HANDLED_TYPES = frozenset(
    {
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
        "checkout.session.expired",
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "charge.refunded",
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
        "invoice.paid",
        "customer.subscription.deleted",
    }
)
FINAL = frozenset({InboxStatus.PROCESSED, InboxStatus.IGNORED})
RETRYABLE = (InboxStatus.RECEIVED, InboxStatus.FAILED, InboxStatus.DEFERRED)
CURRENCY_MISMATCH = "currency_mismatch"
_MAX_ERROR = 2000
# Pledge ids are 32-bit integers on PostgreSQL: nine digits always fit.
_MAX_PLEDGE_DIGITS = 9
# Core tables, for hot-path writes that need no ORM object.
_INBOX = cast(Table, StripeEvent.__table__)
_PAYMENTS = cast(Table, StripePayment.__table__)
_PLEDGES = cast(Table, Pledge.__table__)

# Hot-path statements built once, given their values as parameters: building a
# statement and its cache key cost about as much as running it.
# The outcome of an attempt (the SET columns not named here come as parameters).
_FINISH = (
    _INBOX.update()
    .where(_INBOX.c.id == bindparam("event_id"))
    .values(attempts=_INBOX.c.attempts + 1)
)
# The deferred events waiting for one of a payment's ids.
_WAITING = (
    select(_INBOX.c.id, _INBOX.c.payload)
    .where(
        _INBOX.c.status == InboxStatus.DEFERRED,
        _INBOX.c.waiting_for.in_(bindparam("ids", expanding=True)),
    )
    .order_by(_INBOX.c.api_created_at, _INBOX.c.id)
    .with_for_update(skip_locked=True)
)
# The inbox row, locked: only the columns needed to decide, the payload only
# when the caller does not bring the event (indexed by that).
_LOCK_INBOX = {
    with_payload: select(
        _INBOX.c.status, _INBOX.c.livemode, *([_INBOX.c.payload] if with_payload else [])
    )
    .where(_INBOX.c.id == bindparam("event_id"))
    .with_for_update()
    for with_payload in (False, True)
}
# A pledge about to be paid, locked (see _book_payment). FOR NO KEY UPDATE on
# PostgreSQL (key_share): it still waits for a Checkout event that updated the
# pledge's Stripe ids (unique columns: a key update), and lets through the foreign
# keys of other events' rows to the pledge (a refund's ledger entry).
_LOCK_PLEDGE = (
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
_CLAIM_PLEDGE = (
    _PAYMENTS.update()
    .where(_PAYMENTS.c.id == bindparam("payment_id"))
    .values(pledge_id=bindparam("pledge_id"), donor_key=bindparam("donor_key"))
)


class EventError(ValueError):
    """An event whose content cannot be applied (a malformed amount, a missing id)."""


class ProcessingFailed(RuntimeError):
    """Applying a stored event raised; it is kept as ``failed`` for a retry.

    ``refused`` is True when the event's own content was refused (a malformed or
    impossible amount, a missing id, a bound it would cross), False for anything
    else (a bug, the database): the webhook answers 422 or 500 accordingly, and
    Stripe delivers it again either way.
    """

    def __init__(self, error: str, *, refused: bool = False) -> None:
        super().__init__(error)
        self.refused = refused


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long a failing event is retried automatically before it is given up (``dead``).

    An event that fails waits ``first_delay`` before the retry job takes it again,
    then twice as long after each further failure (at most ``longest_delay``);
    after ``max_attempts`` failed attempts it becomes ``dead``: no automatic retry
    takes it again, and a Stripe redelivery only answers that it is dead. With
    the defaults (8, 5 min) an event is given up about ten hours after it first
    failed. An admin retries it by hand (``retry-inbox --event ID``).
    """

    max_attempts: int = 8
    first_delay: timedelta = timedelta(minutes=5)
    longest_delay: timedelta = timedelta(hours=6)

    def delay(self, attempts: int) -> timedelta:
        """How long to wait after the ``attempts``-th failed attempt."""
        wait: timedelta = self.first_delay * 2 ** min(max(attempts - 1, 0), 30)
        return min(wait, self.longest_delay)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RetryPolicy:
        """The policy of the app's ``INBOX_MAX_ATTEMPTS`` and ``INBOX_RETRY_DELAY`` settings."""
        return cls(
            max_attempts=int(config.get("INBOX_MAX_ATTEMPTS", 8)),
            first_delay=timedelta(seconds=float(config.get("INBOX_RETRY_DELAY", 300))),
        )


DEFAULT_POLICY = RetryPolicy()


@dataclass(frozen=True, slots=True)
class Result:
    """What applying one event did: its new inbox status and why."""

    status: InboxStatus
    note: str | None = None
    waiting_for: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of :func:`deliver`: whether the event was new, and its status now."""

    new: bool
    status: InboxStatus


# --------------------------------------------------------------------------- inbox


@cache
def _store_statement(dialect: str) -> Executable:
    # Built once per dialect; the values come as parameters (see the ledger's).
    return (
        _insert_for(dialect, _INBOX)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(_INBOX.c.id)
    )


def store_event(session: Session, event: WebhookEvent) -> bool:
    """Store a verified event in the inbox unless it is there already. The caller commits.

    :return: True if this call stored it, False for a redelivery.
    """
    stored = session.execute(
        _store_statement(session.get_bind().dialect.name),
        {
            "id": event.id,
            "type": event.type,
            "livemode": event.livemode,
            "api_created_at": event.created,
            "payload": event.payload,
            "status": InboxStatus.RECEIVED,
            "attempts": 0,
            "received_at": utcnow(),
        },
    ).scalar_one_or_none()
    return stored is not None


def process_event(
    session: Session,
    event_id: str,
    *,
    livemode: bool | None,
    event: WebhookEvent | None = None,
    revive: bool = False,
) -> InboxStatus:
    """Apply a stored event unless it is already final. Flushes; the caller commits.

    The inbox row is locked first (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite
    write transactions are serial), so concurrent deliveries of one event apply
    it once.

    :param livemode: the mode of the configured Stripe key, or None when unknown;
        an event of the other mode is stored but not applied.
    :param event: the event exactly as this caller just stored it, to spare
        reading and parsing the stored payload again; None reads the stored one.
    :param revive: apply it even if it is ``dead`` (an admin's retry by hand); a
        dead event is otherwise left alone, also when Stripe delivers it again.
    :return: the event's status afterwards.
    :raise LookupError: if the event is not in the inbox.
    :raise Exception: whatever applying it raised; the caller rolls back.
    """
    row = session.execute(_LOCK_INBOX[event is None], {"event_id": event_id}).one_or_none()
    if row is None:
        raise LookupError(f"event {event_id} is not in the inbox")
    status: InboxStatus = row.status
    event_livemode: bool = row.livemode
    if status in FINAL or (status is InboxStatus.DEAD and not revive):
        return status
    if livemode is not None and event_livemode != livemode:
        log.warning(
            "Stripe event %s is %s but the configured key is %s: stored, not applied",
            event_id,
            _mode(event_livemode),
            _mode(livemode),
        )
        result = Result(
            InboxStatus.IGNORED, f"{_mode(event_livemode)} event, {_mode(livemode)} key"
        )
        _finish(session, event_id, result)
        return result.status
    return _run(session, event if event is not None else parse_event(row.payload))


def mark_failed(
    session: Session,
    event_id: str,
    error: str,
    *,
    policy: RetryPolicy = DEFAULT_POLICY,
    now: datetime | None = None,
) -> None:
    """Record that applying ``event_id`` raised ``error``. The caller commits.

    The retry job leaves it alone until the policy's wait after this attempt is over.
    """
    attempts = session.scalar(select(StripeEvent.attempts).where(StripeEvent.id == event_id))
    done = (attempts or 0) + 1
    session.execute(
        update(StripeEvent)
        .where(StripeEvent.id == event_id, StripeEvent.status.not_in(FINAL))
        .values(
            status=InboxStatus.FAILED,
            attempts=StripeEvent.attempts + 1,
            last_error=error[:_MAX_ERROR],
            next_attempt_at=(now or utcnow()) + policy.delay(done),
        )
    )


def deliver(
    factory: SessionFactory,
    event: WebhookEvent,
    *,
    livemode: bool | None,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> Delivery:
    """Store ``event`` and commit, then apply it in a second transaction and commit.

    :param factory: makes a new write session (``Database.session``).
    :param policy: how long a failure waits for the retry job.
    :return: whether the event was new and its status afterwards (``dead`` for a
        redelivery of an event given up: it is not applied again).
    :raise ProcessingFailed: when applying raised; the event is then stored as failed.
    :raise sqlalchemy.exc.SQLAlchemyError: when the database cannot store the event
        (nothing was accepted; Stripe will deliver again).
    """
    with _write_turn(factory) as session:
        new = store_event(session, event)
        session.commit()
    # A redelivery is applied from the stored payload, as the retry job would.
    stored = event if new else None
    status = _apply_stored(factory, event.id, livemode=livemode, event=stored, policy=policy)
    return Delivery(new, status)


def _apply_stored(
    factory: SessionFactory,
    event_id: str,
    *,
    livemode: bool | None,
    event: WebhookEvent | None = None,
    revive: bool = False,
    policy: RetryPolicy = DEFAULT_POLICY,
    now: datetime | None = None,
) -> InboxStatus:
    with _write_turn(factory) as session:
        try:
            status = process_event(session, event_id, livemode=livemode, event=event, revive=revive)
            session.commit()
            return status
        except Exception as exc:
            session.rollback()
            error = f"{type(exc).__name__}: {exc}"
            refused = isinstance(exc, EventError | LedgerError | InvalidWebhook)
            if refused:
                log.warning("Stripe event %s cannot be applied: %s", event_id, error)
            else:
                log.exception("applying Stripe event %s failed", event_id)
    with _write_turn(factory) as session:
        mark_failed(session, event_id, error, policy=policy, now=now)
        session.commit()
    raise ProcessingFailed(error, refused=refused)


@contextmanager
def _write_turn(factory: SessionFactory) -> Iterator[Session]:
    """A write session for one inbox transaction, taking turns with other processes on SQLite.

    SQLite has one writer at a time, and a writer that finds the lock taken polls
    with growing sleeps (up to 100 ms each) until its busy timeout. Under several
    gunicorn workers receiving webhooks, most of the time was spent asleep. A
    blocking ``flock`` on a file beside the database queues the inbox's writers
    instead and hands the turn over the moment it is free. Other writers are
    unaffected (they still wait on SQLite's own lock). No-op on PostgreSQL.
    """
    with factory() as session:
        bind = session.get_bind()
        path = bind.engine.url.database if bind.dialect.name == "sqlite" else None
        if fcntl is None or not path or path == ":memory:" or path.startswith("file:"):
            yield session
            return
        fd = os.open(f"{path}.inbox-lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield session
        finally:
            # Release only once the transaction is over, committed or not.
            session.close()
            os.close(fd)  # closing the descriptor releases the lock


def _mode(livemode: bool) -> str:
    return "live-mode" if livemode else "test-mode"


def _finish(session: Session, event_id: str, result: Result) -> None:
    """Record the outcome of one attempt at an inbox event.

    A Core UPDATE, not the ORM: the hot path never loads the inbox row as an
    object, and ``attempts`` is counted in SQL.
    """
    session.execute(
        _FINISH,
        {
            "event_id": event_id,
            "status": result.status,
            "last_error": result.note[:_MAX_ERROR] if result.note else None,
            "waiting_for": result.waiting_for,
            "processed_at": utcnow() if result.status in FINAL else None,
            "next_attempt_at": None,
        },
    )


def _run(session: Session, event: WebhookEvent) -> InboxStatus:
    result = apply_event(session, event)
    _finish(session, event.id, result)
    return result.status


# ------------------------------------------------------------------- dispatching


def apply_event(session: Session, event: WebhookEvent) -> Result:
    """Apply one event's effect on pledges and the ledger. Flushes, does not commit.

    Idempotent: applying the same event again, or another event about the same
    money, books nothing twice.

    :return: the inbox status the event should take, with a note.
    :raise EventError: for an event whose amounts or ids make no sense.
    :raise LedgerError: when the ledger refuses a movement.
    """
    obj = event.object
    match event.type:
        case "checkout.session.completed" | "checkout.session.async_payment_succeeded":
            return _checkout_paid(session, event, obj)
        case "checkout.session.async_payment_failed" | "checkout.session.expired":
            return _checkout_unpaid(session, event, obj)
        case "payment_intent.succeeded":
            return _payment_intent_succeeded(session, obj, paid_at=event.created)
        case "payment_intent.payment_failed":
            return _payment_intent_failed(session, obj)
        case "charge.refunded":
            return _charge_refunded(session, event, obj)
        case (
            "charge.dispute.created"
            | "charge.dispute.updated"
            | "charge.dispute.closed"
            | "charge.dispute.funds_withdrawn"
            | "charge.dispute.funds_reinstated"
        ):
            return _dispute(session, event, obj)
        case "invoice.paid":
            return _invoice_paid(session, event, obj)
        case "customer.subscription.deleted":
            return _subscription_deleted(session, obj)
        case _:
            return Result(InboxStatus.IGNORED, f"event type {event.type} has no effect here")


# ------------------------------------------------------------------------ helpers


def _id(value: Any) -> str | None:
    """A Stripe id from a field that may hold the id or the expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _money(obj: dict[str, Any], field: str) -> tuple[int, str]:
    """``obj[field]`` in our minor units of the object's currency, and that currency.

    Stripe's API units differ from ISO's for some currencies (see gateway.amounts),
    and no amount Stripe reports exceeds its maximum charge: a larger one fails the
    event (kept with its error for the admin), never booked.
    """
    value, currency = obj.get(field), _currency(obj)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise EventError(f"{field} is not an amount in minor units: {value!r}")
    try:
        return from_stripe(value, currency), currency
    except AmountNotRepresentable as exc:
        raise EventError(f"{field}: {exc}") from None


def _currency(obj: dict[str, Any]) -> str:
    value = obj.get("currency")
    if not isinstance(value, str) or len(value) != 3 or not value.isalpha():
        raise EventError(f"no valid currency in the event: {value!r}")
    return value.upper()


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _instant(value: Any, default: datetime) -> datetime:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value, UTC)
    return default


@dataclass(slots=True)
class _Target:
    """Whose money an object is: the campaign, and our pledge if we know it."""

    campaign: Campaign
    pledge: Pledge | None


def _target(
    session: Session,
    meta: dict[str, Any],
    *,
    checkout_session_id: str | None = None,
    payment_intent_id: str | None = None,
    subscription_id: str | None = None,
) -> _Target | Result:
    """Find the campaign and pledge an object belongs to, or say why it is not ours."""
    matches = _pledge_matches(meta, checkout_session_id, payment_intent_id, subscription_id)
    slug = meta.get("tracker_campaign")
    pledge: Pledge | None = None
    campaign: Campaign | None = None
    shape = tuple(matches)
    if isinstance(slug, str) and slug:
        # The campaign and its pledge in one query (the pledge may be of another campaign).
        row = session.execute(_target_statement(shape, True), {"slug": slug, **matches}).first()
        if row is not None:
            campaign, pledge = row if matches else (row[0], None)
        if campaign is None:
            return Result(InboxStatus.IGNORED, f"no campaign {slug!r} here")
    elif matches:
        pledge = session.scalars(_target_statement(shape, False), matches).first()
        if pledge is not None:
            campaign = session.get(Campaign, pledge.campaign_id)
    if campaign is None:
        return Result(InboxStatus.IGNORED, "no tracker_campaign metadata: not ours")
    if pledge is not None and pledge.campaign_id != campaign.id:
        log.warning("pledge %s belongs to another campaign than %s", pledge.id, campaign.slug)
        pledge = None
    return _Target(campaign, pledge)


# The columns a Stripe object may name its pledge by, the one to trust most first.
# The ids Stripe assigned come before our ``tracker_pledge`` metadata: a Checkout
# Session or subscription already recorded on a pledge belongs to that pledge,
# whatever pledge the (editable) metadata names (docs/stripe.md).
_PLEDGE_KEYS: dict[str, Any] = {
    "checkout_session_id": Pledge.stripe_checkout_session_id,
    "payment_intent_id": Pledge.stripe_payment_intent_id,
    "subscription_id": Pledge.stripe_subscription_id,
    "pledge_id": Pledge.id,
}
# Pledge columns that are unique: a value held by one pledge is never copied to another.
_UNIQUE_PLEDGE_IDS = frozenset(
    {"stripe_checkout_session_id", "stripe_payment_intent_id", "stripe_subscription_id"}
)


def _pledge_matches(
    meta: dict[str, Any],
    checkout_session_id: str | None,
    payment_intent_id: str | None,
    subscription_id: str | None,
) -> dict[str, Any]:
    """The ways an object names its pledge, in the order of :data:`_PLEDGE_KEYS`."""
    matches: dict[str, Any] = {}
    for key, value in (
        ("checkout_session_id", checkout_session_id),
        ("payment_intent_id", payment_intent_id),
        ("subscription_id", subscription_id),
    ):
        if value:
            matches[key] = value
    raw = meta.get("tracker_pledge")
    text = str(raw) if isinstance(raw, str | int) and not isinstance(raw, bool) else ""
    # ASCII digits only ("²".isdigit() is true), and within the id column's range:
    # anything else is not one of our pledges, and must not fail the event forever.
    if text.isascii() and text.isdigit() and len(text) <= _MAX_PLEDGE_DIGITS:
        matches["pledge_id"] = int(text)
    return matches


@cache
def _target_statement(shape: tuple[str, ...], by_slug: bool) -> Executable:
    """The query of :func:`_target` for one combination of ids, built once.

    Building a statement and its cache key cost more than running it; only the
    combination of ids an object carries changes its shape, the values come as
    parameters. The pledge sought is the one matching the most trusted id.
    """
    conditions = [_PLEDGE_KEYS[key] == bindparam(key) for key in shape]
    first = case(
        *((condition, rank) for rank, condition in enumerate(conditions)), else_=len(conditions)
    )
    if not by_slug:
        return select(Pledge).where(or_(*conditions)).order_by(first).limit(1)
    if not conditions:
        return select(Campaign).where(Campaign.slug == bindparam("slug"))
    return (
        select(Campaign, Pledge)
        .outerjoin(Pledge, or_(*conditions))
        .where(Campaign.slug == bindparam("slug"))
        .order_by(first)
        .limit(1)
    )


def _move_pledge(session: Session, pledge: Pledge, target: PledgeStatus, **values: Any) -> bool:
    """Move a pledge forward if its current state allows; a conditional UPDATE, so a
    concurrent transaction that already moved it (paid) is never overwritten (failed)."""
    allowed = [PledgeStatus(s) for s in PLEDGE_MOVES_FROM[target.value]]
    session.flush()
    changes = {"status": target, "updated_at": utcnow(), **values}
    moved: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Pledge)
        .where(Pledge.id == pledge.id, Pledge.status.in_(allowed))
        .values(**changes)
        .execution_options(synchronize_session=False)
    )
    if not moved.rowcount:
        session.expire(pledge)  # someone else moved it: read it again if needed
        return False
    for name, value in changes.items():
        set_committed_value(pledge, name, value)
    return True


def _set_if_empty(pledge: Pledge, **ids: str | None) -> None:
    """Fill Stripe ids we learn about, never overwriting one already known, and never
    taking one another pledge holds (the event's metadata named this pledge, but the
    id is the other's: a unique violation would fail the event forever)."""
    session = object_session(pledge)
    for name, value in ids.items():
        if not value or getattr(pledge, name) is not None:
            continue
        if (
            name in _UNIQUE_PLEDGE_IDS
            and session is not None
            and _held_by_another(session, name, value, pledge.id)
        ):
            log.warning("pledge %s: %s %s belongs to another pledge", pledge.id, name, value)
            continue
        setattr(pledge, name, value)


def _held_by_another(session: Session, name: str, value: str, pledge_id: int | None) -> bool:
    """Whether a pledge other than ``pledge_id`` holds ``value`` in the unique column ``name``."""
    column = getattr(Pledge, name)
    query = select(Pledge.id).where(column == value)
    if pledge_id is not None:
        query = query.where(Pledge.id != pledge_id)
    return session.scalar(query.limit(1)) is not None


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


# ----------------------------------------------------------------------- payments


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


@cache
def _claim_statement(dialect: str) -> Executable:
    # Built once per dialect; the values come as parameters.
    return _insert_for(dialect, _PAYMENTS).on_conflict_do_nothing().returning(_PAYMENTS.c.id)


@cache
def _pledge_statement(dialect: str) -> Executable:
    return _insert_for(dialect, _PLEDGES).returning(_PLEDGES.c.id)


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
        session.execute(_LOCK_PLEDGE, {"pledge_id": pledge.id})
    # Core INSERT … RETURNING id: everything else about a new row is known here, so
    # the hot path needs no ORM object for it. With a pledge, the row is complete.
    claimed = session.scalar(
        _claim_statement(session.get_bind().dialect.name),
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
            "flag": flag,
            "paid_at": payment.paid_at,
            "created_at": utcnow(),
        },
    )
    if claimed is None:
        return _known_payment(session, target, payment)

    if pledge is None:
        pledge_id, email = _pledge_from_payment(session, campaign, payment)
        donor_key = _donor_key(session, email, pledge_id, payment)
        session.execute(
            _CLAIM_PLEDGE, {"payment_id": claimed, "pledge_id": pledge_id, "donor_key": donor_key}
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
        _wake(session, _payment_ids(payment))
        return Result(InboxStatus.PROCESSED, f"flagged: paid in {payment.currency}")
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
    _wake(session, _payment_ids(payment))
    return Result(InboxStatus.PROCESSED)


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
    _wake(session, _payment_ids(row))
    return Result(InboxStatus.PROCESSED, f"payment {row.reference} was already recorded")


def _pledge_from_payment(
    session: Session, campaign: Campaign, payment: _Payment
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
    pledge_id: int = session.execute(
        _pledge_statement(session.get_bind().dialect.name), values
    ).scalar_one()
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


def _payment_ids(payment: StripePayment | _Payment) -> list[str]:
    """The Stripe ids a deferred event may be waiting for to find this payment."""
    ids = (payment.reference, payment.payment_intent_id, payment.charge_id, payment.invoice_id)
    return [i for i in ids if i]


def _wake(session: Session, ids: list[str]) -> None:
    """Apply the deferred events waiting for a payment known by ``ids``, in this transaction.

    Rows another transaction holds are skipped (``SKIP LOCKED``): that one, or the
    retry job, applies them.
    """
    # Only the id and payload: the usual answer is no row, and a waiting row's
    # outcome is written by _finish, so no ORM object is needed.
    waiting = session.execute(_WAITING, {"ids": ids}).all()
    for event_id, payload in waiting:
        try:
            # A savepoint each: one bad waiting event must not block the payment
            # it waited for (or it would fail the payment's own event forever).
            with session.begin_nested():
                _run(session, parse_event(payload))
        except Exception as exc:
            log.exception("applying deferred Stripe event %s failed", event_id)
            mark_failed(session, event_id, f"{type(exc).__name__}: {exc}")


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


# ------------------------------------------------------------- refunds and disputes


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


# ------------------------------------------------------------------ subscriptions


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


# ------------------------------------------------------------ retry and reconcile


@dataclass(slots=True)
class Report:
    """Counts of what a retry or reconciliation run did, by outcome."""

    seen: int = 0
    new: int = 0
    skipped: int = 0
    dead: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def count(self, status: InboxStatus) -> None:
        """Add one event that ended in ``status``."""
        self.statuses[status.value] = self.statuses.get(status.value, 0) + 1

    def describe(self) -> str:
        """One line for an operator."""
        parts = [f"{self.seen} event(s)"]
        if self.new:
            parts.append(f"{self.new} new")
        if self.skipped:
            parts.append(f"{self.skipped} of types we do not handle")
        parts.extend(f"{n} {status}" for status, n in sorted(self.statuses.items()))
        if self.dead:
            parts.append(f"{self.dead} given up after too many attempts (dead)")
        return ", ".join(parts)


@contextmanager
def _counting(report: Report, event_id: str) -> Iterator[None]:
    try:
        yield
    except ProcessingFailed as exc:
        report.count(InboxStatus.FAILED)
        report.errors.append(f"{event_id}: {exc}")


def retry_inbox(
    factory: SessionFactory,
    *,
    livemode: bool | None,
    gateway: StripeGateway | None = None,
    limit: int = 1000,
    policy: RetryPolicy = DEFAULT_POLICY,
    event_ids: Sequence[str] | None = None,
    now: datetime | None = None,
) -> Report:
    """Apply again the inbox events that are not final: received, failed or deferred.

    Least tried first, then oldest, each in its own transaction: events that can
    stay deferred for good (refunds of payments that are not ours when Stripe
    cannot be asked) sink behind newer ones instead of filling every run's
    ``limit`` and starving them. A deferred event whose payment
    never arrived is resolved through the Stripe API when ``gateway`` is given:
    the payment is fetched and booked (if it is ours), then the event applied;
    if the payment is not ours the event is ignored. A failed event waits for
    the end of its policy's delay; one that has failed ``policy.max_attempts``
    times becomes ``dead`` and is not taken again (counted as given up). Meant for
    the scheduler and ``flask --app wsgi tracker retry-inbox``.

    :param limit: at most this many events per run.
    :param event_ids: retry exactly these events by hand instead: whatever their
        delay, ``dead`` ones included (a final one is left as it is).
    :param now: the current instant (tests); default the clock.
    :return: what happened, by status.
    """
    report = Report()
    moment = now or utcnow()
    with _write_turn(factory) as session:
        query = select(StripeEvent.id, StripeEvent.status, StripeEvent.waiting_for)
        if event_ids is not None:
            query = query.where(StripeEvent.id.in_(list(event_ids)))
        else:
            report.dead += _give_up(session, policy)
            session.commit()
            query = query.where(
                StripeEvent.status.in_(RETRYABLE),
                or_(StripeEvent.next_attempt_at.is_(None), StripeEvent.next_attempt_at <= moment),
            )
        pending = session.execute(
            query.order_by(StripeEvent.attempts, StripeEvent.api_created_at, StripeEvent.id).limit(
                limit
            )
        ).all()
    for event_id, status, waiting_for in pending:
        report.seen += 1
        with _counting(report, event_id):
            if status is InboxStatus.DEFERRED and gateway is not None and waiting_for:
                try:
                    _resolve(factory, gateway, event_id, waiting_for, report)
                except Exception as exc:
                    # Rolled back; the event stays deferred and the run goes on.
                    log.exception("resolving deferred Stripe event %s failed", event_id)
                    report.errors.append(f"{event_id}: {type(exc).__name__}: {exc}")
            revive = event_ids is not None
            report.count(
                _apply_stored(
                    factory, event_id, livemode=livemode, revive=revive, policy=policy, now=now
                )
            )
    with _write_turn(factory) as session:
        report.dead += _give_up(session, policy)
        session.commit()
    return report


def _give_up(session: Session, policy: RetryPolicy) -> int:
    """Mark ``dead`` the failed events that used up their attempts; how many there were."""
    given_up: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(StripeEvent)
        .where(
            StripeEvent.status == InboxStatus.FAILED,
            StripeEvent.attempts >= policy.max_attempts,
        )
        .values(status=InboxStatus.DEAD, next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )
    if given_up.rowcount:
        log.error(
            "%d Stripe event(s) failed %d times and are given up (dead):"
            " see `tracker retry-inbox --dead`",
            given_up.rowcount,
            policy.max_attempts,
        )
    return int(given_up.rowcount or 0)


def _resolve(
    factory: SessionFactory, gateway: StripeGateway, event_id: str, waiting_for: str, report: Report
) -> None:
    """Ask Stripe for the payment a deferred event waits for, and book or link it.

    A PaymentIntent with our metadata is booked like its own webhook would. One
    without metadata may still be a monthly donor's: if it paid an invoice we
    booked, the charge and PaymentIntent ids are linked to that payment. Only a
    payment that is neither, or one Stripe does not know, makes the event ignored.
    """
    invoice_id: str | None = None
    try:
        kind = "payment_intent_id" if waiting_for.startswith("pi_") else "charge_id"
        intent = fetch_payment_intent(gateway, **{kind: waiting_for})
        if intent is not None and not _metadata(intent).get("tracker_campaign"):
            invoice_id = _id(intent.get("invoice"))
            if invoice_id is None and intent.get("object") == "payment_intent":
                invoice_id = invoice_of_payment_intent(gateway, str(intent.get("id")))
    except GatewayError as exc:
        # Stay deferred: the next run asks again.
        report.errors.append(f"{event_id}: {exc}")
        return
    with _write_turn(factory) as session:
        row = session.scalars(
            select(StripeEvent).where(StripeEvent.id == event_id).with_for_update()
        ).one()
        if row.status is not InboxStatus.DEFERRED:
            return
        if intent is None:
            # Stripe answered 404 with our key: no payment of this account to wait for.
            _finish(
                session,
                event_id,
                Result(InboxStatus.IGNORED, f"Stripe does not know {waiting_for}"),
            )
        elif invoice_id is not None:
            # A subscription's payment: known once its invoice.paid is booked.
            booked = _find_payment(session, invoice_id=invoice_id, lock=True)
            if booked is not None:
                is_intent = intent.get("object") == "payment_intent"
                ids = {
                    "payment_intent_id": _id(intent.get("id")) if is_intent else None,
                    "charge_id": _id(intent.get("latest_charge")) if is_intent else waiting_for,
                }
                for name, value in ids.items():
                    if (
                        value
                        and getattr(booked, name) is None
                        and not _id_taken(session, name, value)
                    ):
                        setattr(booked, name, value)
                session.flush()
                _wake(session, _payment_ids(booked))
        elif not _metadata(intent).get("tracker_campaign"):
            _finish(
                session,
                event_id,
                Result(InboxStatus.IGNORED, "the payment is not ours (no metadata)"),
            )
        elif intent.get("object") == "payment_intent" and intent.get("status") == "succeeded":
            charge = intent.get("latest_charge")
            created = charge.get("created") if isinstance(charge, dict) else None
            paid_at = _instant(created, _instant(intent.get("created"), row.api_created_at))
            # Books the payment; waking then applies this event in the same transaction.
            booking = _payment_intent_succeeded(session, intent, paid_at=paid_at)
            if booking.status is InboxStatus.IGNORED and not _id(intent.get("invoice")):
                # Metadata of a campaign that is not here (another install on the
                # same Stripe account, a deleted campaign): asking again changes nothing.
                _finish(
                    session,
                    event_id,
                    Result(InboxStatus.IGNORED, f"its payment is not booked here: {booking.note}"),
                )
        session.commit()


def reconcile(
    factory: SessionFactory,
    gateway: StripeGateway,
    *,
    since: datetime,
    livemode: bool | None,
    now: datetime | None = None,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> Report:
    """Feed the events Stripe lists since ``since`` through the inbox, as if delivered.

    Events already final are left alone, so a second run changes nothing.
    Types this service does not handle are skipped without being stored. The
    API lists newest first; they are fed oldest first, as Stripe sent them, so
    that a subscription's deletion comes after its payments.

    :param since: an aware datetime; moved forward to Stripe's 30-day retention.
    :return: what happened, by status.
    :raise GatewayError: when Stripe cannot be listed (events already fed stay fed).
    """
    earliest = (now or utcnow()) - timedelta(days=RETENTION_DAYS) + timedelta(minutes=1)
    report = Report()
    listed = sorted(list_events(gateway, max(since, earliest)), key=lambda e: (e.created, e.id))
    for event in listed:
        report.seen += 1
        if event.type not in HANDLED_TYPES:
            report.skipped += 1
            continue
        with _counting(report, event.id):
            delivery = deliver(factory, event, livemode=livemode, policy=policy)
            report.new += int(delivery.new)
            report.count(delivery.status)
    return report


def retry_event(factory: SessionFactory, event_id: str, *, livemode: bool | None) -> InboxStatus:
    """Apply one stored event again, as ``retry-inbox`` does (the admin's retry button).

    :return: the event's status afterwards (``failed`` again when it raised; the
        error is kept on the event).
    """
    try:
        return _apply_stored(factory, event_id, livemode=livemode)
    except ProcessingFailed:
        return InboxStatus.FAILED


def inbox_events(session: Session, statuses: Iterable[InboxStatus]) -> list[StripeEvent]:
    """The inbox rows in ``statuses``, oldest first (for admin pages and tests)."""
    return list(
        session.scalars(
            select(StripeEvent)
            .where(StripeEvent.status.in_(list(statuses)))
            .order_by(StripeEvent.api_created_at, StripeEvent.id)
        )
    )


__all__ = [
    "CURRENCY_MISMATCH",
    "DEFAULT_POLICY",
    "HANDLED_TYPES",
    "Delivery",
    "EventError",
    "LedgerError",
    "ProcessingFailed",
    "Report",
    "Result",
    "RetryPolicy",
    "apply_event",
    "deliver",
    "inbox_events",
    "mark_failed",
    "process_event",
    "reconcile",
    "retry_event",
    "retry_inbox",
    "store_event",
]
