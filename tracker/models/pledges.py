"""Pledges (what a donor committed to) and the Stripe payments matched to them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import text
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.schema import CheckConstraint, ForeignKey, Index
from sqlalchemy.types import BigInteger, Boolean, Integer, String, Text

from tracker.models.base import AMOUNT_LIMIT, Base, utcnow
from tracker.models.columns import UTCDateTime, integer_only, str_enum


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
        # The dashboard's count of payments in another currency reads only these
        # (revision 0010), not one row per Stripe payment ever taken.
        Index(
            "ix_stripe_payments_flagged",
            "campaign_id",
            postgresql_where=text("flag IS NOT NULL"),
            sqlite_where=text("flag IS NOT NULL"),
        ),
    )
