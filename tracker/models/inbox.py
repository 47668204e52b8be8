"""The webhook inbox: every verified Stripe event, stored before it is applied."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.schema import Index
from sqlalchemy.types import Boolean, Integer, String, Text

from tracker.models.base import Base, utcnow
from tracker.models.columns import UTCDateTime, str_enum


class InboxStatus(StrEnum):
    """Where a received Stripe event stands.

    ``received`` is stored but not yet handled (or a crash came in between);
    ``deferred`` waits for the payment it refers to; ``failed`` raised an error
    and keeps it. The retry job takes all three; ``processed`` and ``ignored``
    are final. ``dead`` failed too many times: no automatic retry takes it
    again, only one asked for by hand.
    """

    RECEIVED = "received"
    PROCESSED = "processed"
    IGNORED = "ignored"
    DEFERRED = "deferred"
    FAILED = "failed"
    DEAD = "dead"


class StripeEvent(Base):
    """The webhook inbox: every verified Stripe event, stored raw before it is applied."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    livemode: Mapped[bool] = mapped_column(Boolean)
    # Stripe's ``created``: when the event happened, not when it reached us.
    api_created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[InboxStatus] = mapped_column(
        str_enum(InboxStatus, "inbox_status"), default=InboxStatus.RECEIVED
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # The Stripe object (charge or PaymentIntent id) a deferred event waits for.
    waiting_for: Mapped[str | None] = mapped_column(String(255), index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A failed event is not retried automatically before this (the wait grows).
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_stripe_events_status_created", "status", "api_created_at"),)
