"""Campaigns and their tier ladders."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.schema import CheckConstraint, ForeignKey, UniqueConstraint
from sqlalchemy.types import BigInteger, Boolean, Integer, String, Text

from tracker.domain.periods import PeriodKind
from tracker.models.base import AMOUNT_LIMIT, Base, utcnow
from tracker.models.columns import UTCDateTime, str_enum


class CampaignStatus(StrEnum):
    """Only active and closed campaigns are public; a closed one takes no new pledges."""

    DRAFT = "draft"
    ACTIVE = "active"
    CLOSED = "closed"


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
