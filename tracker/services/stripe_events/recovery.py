"""Recovery: the retry job for events not final yet (asking Stripe for the payment
a deferred event waits for) and reconciliation from Stripe's event list."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.orm import Session

from tracker.gateway.client import GatewayError, StripeGateway
from tracker.gateway.events import (
    RETENTION_DAYS,
    fetch_payment_intent,
    invoice_of_payment_intent,
    list_events,
)
from tracker.models import InboxStatus, StripeEvent, utcnow
from tracker.services.stripe_events.common import (
    DEFAULT_POLICY,
    HANDLED_TYPES,
    RETRYABLE,
    ProcessingFailed,
    Result,
    RetryPolicy,
    SessionFactory,
    _id,
    _instant,
    _metadata,
    log,
)
from tracker.services.stripe_events.inbox import _apply_stored, _finish, _wake, _write_turn, deliver
from tracker.services.stripe_events.payments import (
    _find_payment,
    _id_taken,
    _payment_ids,
    _payment_intent_succeeded,
)


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
                _wake(session, list(_payment_ids(booked)))
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
            if booking.wake:
                _wake(session, list(booking.wake))
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
