"""Campaign notifications (who hears what, when) and the outbox of messages to send."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.schema import CheckConstraint, ForeignKey, Index
from sqlalchemy.types import BigInteger, Boolean, Integer, String, Text

from tracker.models.base import Base, utcnow
from tracker.models.columns import UTCDateTime, str_enum


class SummaryCadence(StrEnum):
    """How often a campaign's owners get a progress summary."""

    OFF = "off"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class CampaignNotification(Base):
    """Where and when a campaign's owners hear about it, and what the scheduler last checked.

    ``checked_period`` and ``checked_version`` are the totals row the milestone
    check last looked at: a campaign whose row has not moved costs one
    comparison, never a read of its ledger.
    """

    __tablename__ = "campaign_notifications"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    # Comma-separated addresses, validated when set.
    emails: Mapped[str] = mapped_column(Text, default="", server_default="")
    chat_url: Mapped[str | None] = mapped_column(String(500))
    summary: Mapped[SummaryCadence] = mapped_column(
        str_enum(SummaryCadence, "summary_cadence"), default=SummaryCadence.OFF
    )
    summary_hour: Mapped[int] = mapped_column(Integer, default=8)
    thank_you: Mapped[bool] = mapped_column(Boolean, default=False)
    checked_period: Mapped[str | None] = mapped_column(String(16))
    checked_version: Mapped[int | None] = mapped_column(Integer)
    # The total seen then: a tier is alerted when a total crosses it, not for having
    # been reached before notifications were set up.
    checked_raised: Mapped[int | None] = mapped_column(BigInteger)
    # The newest ledger entry the thank-you pass has looked at.
    thanked_entry_id: Mapped[int | None] = mapped_column(BigInteger)
    # The local date (ISO) of the latest scheduled summary written to the outbox.
    summary_fired_on: Mapped[str | None] = mapped_column(String(10))
    # What the previous summary showed, for "since the previous summary".
    last_summary_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_summary_period: Mapped[str | None] = mapped_column(String(16))
    last_summary_raised: Mapped[int | None] = mapped_column(BigInteger)
    last_summary_entry_id: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        CheckConstraint("summary_hour >= 0 AND summary_hour <= 23", name="summary_hour_range"),
    )


class OutboxChannel(StrEnum):
    """How an outbox message travels."""

    EMAIL = "email"
    CHAT = "chat"


class OutboxStatus(StrEnum):
    """Where an outgoing message stands.

    ``logged`` is final: no SMTP server was configured, so the message was
    written to the log instead (a newcomer sees what would be sent).
    ``canceled`` is final: the reason to send it went away (a thank-you for a
    payment refunded before it left).
    """

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    LOGGED = "logged"
    CANCELED = "canceled"


class OutboxMessage(Base):
    """One message to one recipient, written in the transaction that decided to send it."""

    __tablename__ = "outbox_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # What makes it unique: (kind, campaign, period or date, tier, channel, recipient).
    key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[OutboxChannel] = mapped_column(str_enum(OutboxChannel, "outbox_channel"))
    recipient: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    # Stable across retries, so a message delivered twice is recognisably one.
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    # A payment whose refund before sending cancels this message (thank-you notes).
    ledger_entry_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[OutboxStatus] = mapped_column(
        str_enum(OutboxStatus, "outbox_status"), default=OutboxStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_outbox_messages_status_next", "status", "next_attempt_at"),)
