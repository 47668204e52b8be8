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
    and keeps it. The retry job takes all three; the other two are final.
    """

    RECEIVED = "received"
    PROCESSED = "processed"
    IGNORED = "ignored"
    DEFERRED = "deferred"
    FAILED = "failed"


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
    flag: Mapped[str | None] = mapped_column(String(64))
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        CheckConstraint(f"amount > 0 AND amount < {AMOUNT_LIMIT}", name="amount_positive"),
        CheckConstraint("refunded >= 0", name="refunded_not_negative"),
    )
