"""The inbox and delivery: storing an event, applying it under its row's lock,
recording the outcome, and waking the events deferred until a payment."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import cache

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.orm import Session

from tracker.db import Prepared, write_turns
from tracker.domain.ledger import LedgerError
from tracker.gateway.webhooks import InvalidWebhook, WebhookEvent, parse_event
from tracker.models import InboxStatus, StripeEvent, utcnow
from tracker.services.ledger import _insert_for
from tracker.services.stripe_events.common import (
    _INBOX,
    _MAX_ERROR,
    DEFAULT_POLICY,
    FINAL,
    Delivery,
    EventError,
    ProcessingFailed,
    Result,
    RetryPolicy,
    SessionFactory,
    log,
)
from tracker.services.stripe_events.payments import (
    _checkout_paid,
    _checkout_unpaid,
    _payment_intent_failed,
    _payment_intent_succeeded,
)
from tracker.services.stripe_events.refunds import _charge_refunded, _dispute
from tracker.services.stripe_events.subscriptions import _invoice_paid, _subscription_deleted

# Hot-path statements built and compiled once, given their values as parameters,
# run on the driver's cursor (tracker.db.Prepared): building a statement and its
# cache key, and SQLAlchemy's execution of it, cost more than running it.
# The outcome of an attempt.
_FINISH = Prepared(
    _INBOX.update()
    .where(_INBOX.c.id == bindparam("event_id"))
    .values(attempts=_INBOX.c.attempts + 1),
    ["status", "last_error", "waiting_for", "processed_at", "next_attempt_at"],
)
# A payment is known by at most four ids (reference, PaymentIntent, charge, invoice).
_MAX_IDS = 4
# The deferred events waiting for one of a payment's ids (the list padded with
# its first id: a fixed shape, compiled once).
_WAITING = Prepared(
    select(_INBOX.c.id, _INBOX.c.payload)
    .where(
        _INBOX.c.status == InboxStatus.DEFERRED,
        _INBOX.c.waiting_for.in_([bindparam(f"id{n}") for n in range(_MAX_IDS)]),
    )
    .order_by(_INBOX.c.api_created_at, _INBOX.c.id)
    .with_for_update(skip_locked=True)
)
# The inbox row, locked: only the columns needed to decide, the payload only
# when the caller does not bring the event (indexed by that).
_LOCK_INBOX = {
    with_payload: Prepared(
        select(_INBOX.c.status, _INBOX.c.livemode, *([_INBOX.c.payload] if with_payload else []))
        .where(_INBOX.c.id == bindparam("event_id"))
        .with_for_update()
    )
    for with_payload in (False, True)
}
_STORED_COLUMNS = (
    "id",
    "type",
    "livemode",
    "api_created_at",
    "payload",
    "status",
    "attempts",
    "received_at",
)


@cache
def _store_statement(dialect: str) -> Prepared:
    # Built once per dialect; the values come as parameters (see the ledger's).
    return Prepared(
        _insert_for(dialect, _INBOX)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(_INBOX.c.id),
        _STORED_COLUMNS,
    )


def store_event(session: Session, event: WebhookEvent) -> bool:
    """Store a verified event in the inbox unless it is there already. The caller commits.

    :return: True if this call stored it, False for a redelivery.
    """
    stored = (
        _store_statement(session.get_bind().dialect.name)
        .execute(
            session,
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
        )
        .fetchone()
    )
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
    row = _LOCK_INBOX[event is None].execute(session, {"event_id": event_id}).fetchone()
    if row is None:
        raise LookupError(f"event {event_id} is not in the inbox")
    status = InboxStatus(row[0])
    event_livemode = bool(row[1])
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
    return _run(session, event if event is not None else parse_event(row[2]))


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

    See :func:`tracker.db.write_turns`. A committed session is closed after the
    turn is given back: the next writer need not wait for its clean-up.
    """
    with factory() as session, write_turns(session):
        yield session


def _mode(livemode: bool) -> str:
    return "live-mode" if livemode else "test-mode"


def _finish(session: Session, event_id: str, result: Result) -> None:
    """Record the outcome of one attempt at an inbox event.

    A Core UPDATE, not the ORM: the hot path never loads the inbox row as an
    object, and ``attempts`` is counted in SQL.
    """
    _FINISH.execute(
        session,
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
    waiting_for = result.waiting_for if result.status is InboxStatus.DEFERRED else None
    if waiting_for and _gate(session, [waiting_for]):
        # The payment may be being booked by a transaction that looked for deferred
        # events before this deferral commits, while this one looked for the payment
        # before that booking commits: each would miss the other and the event would
        # wait for the retry job. Under the payment's gate, which the booking takes
        # before it looks (see _wake), a second look settles it either way; the
        # first look wrote nothing, so looking again is safe.
        result = apply_event(session, event)
    _finish(session, event.id, result)
    return result.status


def apply_event(session: Session, event: WebhookEvent) -> Result:
    """Apply one event's effect on pledges and the ledger. Flushes, does not commit.

    Idempotent: applying the same event again, or another event about the same
    money, books nothing twice. An event that books a payment then applies the
    events deferred until it (:func:`_wake`), in the same transaction.

    :return: the inbox status the event should take, with a note.
    :raise EventError: for an event whose amounts or ids make no sense.
    :raise LedgerError: when the ledger refuses a movement.
    """
    result = _dispatch(session, event)
    if result.wake:
        _wake(session, list(result.wake))
    return result


def _dispatch(session: Session, event: WebhookEvent) -> Result:
    """The handler of the event's type (payments, refunds and disputes, subscriptions)."""
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


# Transaction advisory locks in the two-key form (a space of their own, apart from
# the scheduler's one-key leader lock): this class, and a hash of a payment's id.
_GATE_CLASS = 0x7472
_GATE = Prepared(
    text("SELECT pg_advisory_xact_lock(:cls, key) FROM unnest(CAST(:keys AS integer[])) AS key")
)


def _gate(session: Session, ids: list[str]) -> bool:
    """Hold the gates of a payment's ``ids`` until the transaction ends (PostgreSQL only).

    Serialises an event's decision to wait for a payment with the booking's look
    for the events waiting for it. Taken in sorted order, so two transactions
    gating overlapping ids never deadlock on them. SQLite has one writer at a
    time, so the two can never overlap there.

    :returns: whether a gate was taken (False on SQLite).
    """
    if session.get_bind().dialect.name != "postgresql":
        return False
    keys = sorted({zlib.crc32(i.encode()) - (1 << 31) for i in ids})
    _GATE.execute(session, {"cls": _GATE_CLASS, "keys": keys}).fetchall()
    return True


def _wake(session: Session, ids: list[str]) -> None:
    """Apply the deferred events waiting for a payment known by ``ids``, in this transaction.

    Rows another transaction holds are skipped (``SKIP LOCKED``): that one, or the
    retry job, applies them.
    """
    # Only the id and payload: the usual answer is no row, and a waiting row's
    # outcome is written by _finish, so no ORM object is needed.
    if not ids:
        return
    # After the gate: an event deciding to wait for this payment either committed
    # its deferral before (and is seen below) or looks again once this commits.
    _gate(session, ids)
    padded = [*ids[:_MAX_IDS], *[ids[0]] * (_MAX_IDS - len(ids))]
    waiting = _WAITING.execute(session, {f"id{n}": i for n, i in enumerate(padded)}).fetchall()
    for event_id, payload in waiting:
        try:
            # A savepoint each: one bad waiting event must not block the payment
            # it waited for (or it would fail the payment's own event forever).
            with session.begin_nested():
                _run(session, parse_event(payload))
        except Exception as exc:
            log.exception("applying deferred Stripe event %s failed", event_id)
            mark_failed(session, event_id, f"{type(exc).__name__}: {exc}")


def inbox_events(session: Session, statuses: Iterable[InboxStatus]) -> list[StripeEvent]:
    """The inbox rows in ``statuses``, oldest first (for admin pages and tests)."""
    return list(
        session.scalars(
            select(StripeEvent)
            .where(StripeEvent.status.in_(list(statuses)))
            .order_by(StripeEvent.api_created_at, StripeEvent.id)
        )
    )
