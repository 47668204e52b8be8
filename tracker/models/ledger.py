"""The append-only ledger and the totals maintained with it (per period, per day)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.schema import CheckConstraint, ForeignKey, Index, UniqueConstraint
from sqlalchemy.types import BigInteger, Integer, String, Text

from tracker.domain.ledger import EntryKind, EntrySource
from tracker.models.base import AMOUNT_LIMIT, TOTAL_LIMIT, Base, utcnow
from tracker.models.columns import UTCDateTime, integer_only, str_enum


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
        # The admin's ledger pages, newest first, its 24 h / 7 d changes and the
        # median's sample; kind and amount in it so the last two read the index
        # alone (revision 0010).
        Index(
            "ix_ledger_entries_campaign_occurred_kind_amount",
            "campaign_id",
            "occurred_at",
            "id",
            "kind",
            "amount",
        ),
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
