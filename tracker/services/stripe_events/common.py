"""What every module of the package shares: the statuses, outcomes and errors of
applying an event, the retry policy, and reading Stripe's objects safely."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.orm import Session

from tracker.gateway.amounts import AmountNotRepresentable, from_stripe
from tracker.models import InboxStatus, Pledge, StripeEvent, StripePayment

# One logger for the whole package, as before it was split: log filters and
# alerts name it.
log = logging.getLogger("tracker.services.stripe_events")

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
# Core tables, for hot-path writes that need no ORM object.
_INBOX = cast(Table, StripeEvent.__table__)
_PAYMENTS = cast(Table, StripePayment.__table__)
_PLEDGES = cast(Table, Pledge.__table__)


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
    """What applying one event did: its new inbox status and why.

    ``wake`` holds the ids of a payment the event booked (or found booked): the
    events deferred until that payment are applied next, in the same transaction
    (:func:`.inbox.apply_event`). Handlers return them rather than wake the
    events themselves, so that applying stays in the inbox module and the
    handlers need not import it.
    """

    status: InboxStatus
    note: str | None = None
    waiting_for: str | None = None
    wake: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of :func:`deliver`: whether the event was new, and its status now."""

    new: bool
    status: InboxStatus


# ------------------------------------------------------------- reading objects


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
