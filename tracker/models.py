"""Database models (SQLAlchemy 2, typed). Behaviour lives in services, not here.

The schema itself is created by the Alembic migrations in
``tracker/migrations``; these classes must stay in step with them (a test
compares the two on both databases).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from tracker.domain.ledger import EntryKind, EntrySource
from tracker.domain.periods import PeriodKind

# Named constraints, so migrations can refer to them on every database.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Far above any campaign, far inside a signed 64-bit integer.
AMOUNT_LIMIT = 10**15
# The most one period's total may hold either way. Every entry is below
# AMOUNT_LIMIT and an entry that would cross this is refused, so no sequence of
# accepted entries can take a total (or its arithmetic) out of a 64-bit integer
# (9.22e18): SQLite would silently turn it into a float.
TOTAL_LIMIT = 10**18


def integer_only(*columns: str, name: str) -> CheckConstraint:
    """A CHECK that SQLite stores these columns as integers (PostgreSQL's types already do).

    SQLite keeps whatever value it is given, and an integer overflow in SQL
    arithmetic quietly yields a float.
    """
    condition = " AND ".join(f"typeof({column}) = 'integer'" for column in columns)
    return CheckConstraint(condition, name=name).ddl_if(dialect="sqlite")


def utcnow() -> datetime:
    """The current instant, timezone-aware in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores instants as UTC and always returns aware datetimes.

    SQLite keeps no offset; without this a value would come back naive on one
    database and aware on the other.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an instant is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def str_enum(enum: type[StrEnum], name: str) -> Enum:
    """A VARCHAR column with a CHECK constraint, storing the enum's values (not names)."""
    return Enum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        validate_strings=True,
        values_callable=lambda members: [m.value for m in members],
    )


class Base(DeclarativeBase):
    """Declarative base with the project's constraint naming convention."""

    metadata = MetaData(naming_convention=NAMING)


class CampaignStatus(StrEnum):
    """Only active and closed campaigns are public; a closed one takes no new pledges."""

    DRAFT = "draft"
    ACTIVE = "active"
    CLOSED = "closed"


class PledgeStatus(StrEnum):
    """Lifecycle of a pledge; only webhooks or an admin move it past pending."""

    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELED = "canceled"


class PledgeFrequency(StrEnum):
    """One gift, or a monthly subscription."""

    ONE_TIME = "one_time"
    MONTHLY = "monthly"


class PledgeSource(StrEnum):
    """How the donor intends to pay."""

    STRIPE = "stripe"
    OFFLINE = "offline"


class Campaign(Base):
    """A fundraising campaign with a tier ladder and optional periods."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    locale: Mapped[str] = mapped_column(String(32), default="en_US")
    status: Mapped[CampaignStatus] = mapped_column(
        str_enum(CampaignStatus, "campaign_status"), default=CampaignStatus.ACTIVE
    )
    show_cents: Mapped[bool] = mapped_column(Boolean, default=False)
    period: Mapped[PeriodKind] = mapped_column(
        str_enum(PeriodKind, "period_kind"), default=PeriodKind.NONE
    )
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Suggested amounts on the donate page, minor units, comma-separated ("1000,2500,5000").
    preset_amounts: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # Shown to donors who pledge to pay offline (bank details, address for cheques).
    payment_instructions: Mapped[str | None] = mapped_column(Text)
    # The campaign's call to action ("Consider helping us!"), on its donate page.
    cta: Mapped[str | None] = mapped_column(String(120))
    # The campaign's own Babel number pattern for amounts ("#,##0 ¤"); NULL: the locale's.
    amount_pattern: Mapped[str | None] = mapped_column(String(40))
    # Bumped on every change of the campaign itself, so caches and ETags notice.
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    tiers: Mapped[list[Tier]] = relationship(
        back_populates="campaign",
        order_by="Tier.position",
        cascade="all, delete-orphan",
    )

    __table_args__ = (
        CheckConstraint("length(slug) > 0", name="slug_not_empty"),
        CheckConstraint(
            "ends_at IS NULL OR starts_at IS NULL OR ends_at > starts_at", name="ends_after_start"
        ),
    )


class Tier(Base):
    """One goal on a campaign's ladder, in minor units of the campaign's currency."""

    __tablename__ = "tiers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)
    label: Mapped[str | None] = mapped_column(String(80))

    campaign: Mapped[Campaign] = relationship(back_populates="tiers")

    __table_args__ = (
        UniqueConstraint("campaign_id", "position", name="uq_tiers_campaign_position"),
        UniqueConstraint("campaign_id", "amount", name="uq_tiers_campaign_amount"),
        CheckConstraint(f"amount >= 0 AND amount < {AMOUNT_LIMIT}", name="amount_range"),
    )


class Pledge(Base):
    """A donor's commitment. It becomes money only through ledger entries."""

    __tablename__ = "pledges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    frequency: Mapped[PledgeFrequency] = mapped_column(
        str_enum(PledgeFrequency, "pledge_frequency"), default=PledgeFrequency.ONE_TIME
    )
    donor_name: Mapped[str | None] = mapped_column(String(200))
    donor_email: Mapped[str | None] = mapped_column(String(320))
    message: Mapped[str | None] = mapped_column(Text)
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[PledgeSource] = mapped_column(str_enum(PledgeSource, "pledge_source"))
    status: Mapped[PledgeStatus] = mapped_column(
        str_enum(PledgeStatus, "pledge_status"), default=PledgeStatus.PENDING
    )
    # Stripe's ids for what this pledge created or was matched to; null until known.
    stripe_checkout_session_id: Mapped[str | None] = mapped_column(
        String(255), unique=True, index=True
    )
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(
        String(255), unique=True, index=True
    )
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255), unique=True, index=True)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255))
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        CheckConstraint(f"amount > 0 AND amount < {AMOUNT_LIMIT}", name="amount_positive"),
        Index("ix_pledges_campaign_status", "campaign_id", "status"),
    )


class LedgerEntry(Base):
    """One money movement. Append-only: triggers refuse UPDATE and DELETE."""

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    source: Mapped[EntrySource] = mapped_column(str_enum(EntrySource, "entry_source"))
    reference: Mapped[str] = mapped_column(String(255))
    kind: Mapped[EntryKind] = mapped_column(str_enum(EntryKind, "entry_kind"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    period_key: Mapped[str] = mapped_column(String(16))
    donor_key: Mapped[str] = mapped_column(String(320))
    pledge_id: Mapped[int | None] = mapped_column(ForeignKey("pledges.id"))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # A correction names the entry it reverses (admin corrections, docs/admin.md).
    # No foreign key: adding one would rebuild the append-only table on SQLite.
    corrects_entry_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), index=True
    )

    __table_args__ = (
        UniqueConstraint("source", "reference", name="uq_ledger_entries_source_reference"),
        CheckConstraint(
            f"amount <> 0 AND amount > -{AMOUNT_LIMIT} AND amount < {AMOUNT_LIMIT}",
            name="amount_range",
        ),
        CheckConstraint(
            "(kind IN ('payment', 'dispute_won', 'correction_plus') AND amount > 0)"
            " OR (kind IN ('refund', 'dispute_lost', 'correction_minus') AND amount < 0)",
            name="amount_sign",
        ),
        # On SQLite a trigger (revision 0006) refuses a non-integer amount: adding a
        # CHECK would rebuild this referenced, trigger-guarded table.
        Index("ix_ledger_entries_campaign_period", "campaign_id", "period_key"),
        # The admin's ledger pages, newest first, and its 24 h / 7 d changes.
        Index("ix_ledger_entries_campaign_occurred", "campaign_id", "occurred_at", "id"),
    )


class PeriodTotal(Base):
    """The running aggregate of one campaign period, maintained with its entries."""

    __tablename__ = "period_totals"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    period_key: Mapped[str] = mapped_column(String(16), primary_key=True)
    raised: Mapped[int] = mapped_column(BigInteger, default=0)
    donors: Mapped[int] = mapped_column(Integer, default=0)
    payments: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        CheckConstraint(
            "donors >= 0 AND payments >= 0 AND donors <= payments", name="counts_valid"
        ),
        CheckConstraint(
            f"raised >= -{TOTAL_LIMIT} AND raised <= {TOTAL_LIMIT}", name="raised_range"
        ),
        integer_only("raised", "donors", "payments", "version", name="counts_integer"),
    )


class PeriodDonor(Base):
    """Which donors have paid in a period: makes the donor count O(1) to maintain."""

    __tablename__ = "period_donors"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    period_key: Mapped[str] = mapped_column(String(16), primary_key=True)
    donor_key: Mapped[str] = mapped_column(String(320), primary_key=True)


class AuditEvent(Base):
    """Who did what by hand: offline payments, campaign edits, corrections."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"))
    ledger_entry_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The client address of an admin action done over HTTP (null from the CLI).
    address: Mapped[str | None] = mapped_column(String(64))


class DailyTotal(Base):
    """A campaign's movements per local day, maintained with its entries like the period totals.

    ``day`` is the ISO date in the campaign's timezone. ``raised`` is the net
    of the day; ``refunded`` and ``disputed`` are the parts of it that came
    from refunds and disputes (both signed), so the admin's chart and key
    figures read a few hundred rows at most, whatever the ledger's size.
    """

    __tablename__ = "daily_totals"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    raised: Mapped[int] = mapped_column(BigInteger, default=0)
    payments: Mapped[int] = mapped_column(Integer, default=0)
    gross: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    disputed: Mapped[int] = mapped_column(BigInteger, default=0)


class AdminRole(StrEnum):
    """Owners change things; viewers read everything and change nothing."""

    OWNER = "owner"
    VIEWER = "viewer"


class AdminUser(Base):
    """A person who may sign in to ``/admin``.

    ``session_nonce`` is part of the identity stored in the session cookie: a
    new nonce (new password, removal) signs the admin out everywhere.
    """

    __tablename__ = "admin_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[AdminRole] = mapped_column(str_enum(AdminRole, "admin_role"))
    session_nonce: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


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


class StripePayment(Base):
    """One Stripe payment as the ledger knows it, and what later events need about it.

    ``reference`` is the ledger reference of the payment (PaymentIntent id, or
    invoice id for a subscription); refunds and disputes name a charge or a
    PaymentIntent, so both are kept to find the payment again. ``refunded`` is
    the highest cumulative ``amount_refunded`` booked so far. A payment in a
    currency other than its campaign's is kept here with ``flag`` set and is
    never booked: an admin decides.
    """

    __tablename__ = "stripe_payments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(255), unique=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    pledge_id: Mapped[int | None] = mapped_column(ForeignKey("pledges.id"))
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True, index=True)
    charge_id: Mapped[str | None] = mapped_column(String(255), unique=True, index=True)
    invoice_id: Mapped[str | None] = mapped_column(String(255), unique=True, index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    donor_key: Mapped[str] = mapped_column(String(320))
    refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    # What disputes hold withdrawn from this payment now (withdrawn less reinstated).
    disputed: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    flag: Mapped[str | None] = mapped_column(String(64))
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        CheckConstraint(f"amount > 0 AND amount < {AMOUNT_LIMIT}", name="amount_positive"),
        CheckConstraint("refunded >= 0", name="refunded_not_negative"),
        CheckConstraint("disputed >= 0 AND refunded + disputed <= amount", name="holds"),
        integer_only("amount", "refunded", "disputed", name="amounts_integer"),
    )


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
