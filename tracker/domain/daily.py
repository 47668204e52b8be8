"""Per-day figures of a campaign: which local day an entry counts on, and what it adds.

The admin's chart and key figures read one row per (campaign, local day),
kept in the ledger's transaction exactly like the period totals. This module
says, purely, how one entry changes its day's row, so the database upsert,
the migration's backfill and ``check-totals`` all agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from tracker.domain.ledger import EntryKind


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_day(timezone: str, instant: datetime) -> str:
    """The ISO date (``2026-11-20``) of ``instant`` in ``timezone``.

    :raise ValueError: if ``instant`` is naive.
    """
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("instant must be timezone-aware")
    return instant.astimezone(_zone(timezone)).date().isoformat()


@dataclass(frozen=True, slots=True)
class DayDelta:
    """What one entry adds to its day: net, payment count, and the signed parts by kind."""

    raised: int
    payments: int
    gross: int
    refunded: int
    disputed: int


def day_delta(kind: EntryKind, signed_amount: int) -> DayDelta:
    """The change one entry of ``kind`` and ``signed_amount`` makes to its day's row."""
    is_payment = kind is EntryKind.PAYMENT
    return DayDelta(
        raised=signed_amount,
        payments=1 if is_payment else 0,
        gross=signed_amount if is_payment else 0,
        refunded=signed_amount if kind is EntryKind.REFUND else 0,
        disputed=signed_amount if kind in (EntryKind.DISPUTE_LOST, EntryKind.DISPUTE_WON) else 0,
    )


DayFigures = tuple[int, int, int, int, int]


def fold_day(row: list[int], kind: EntryKind, signed_amount: int) -> None:
    """Add one entry to ``row`` = [raised, payments, gross, refunded, disputed], in place."""
    delta = day_delta(kind, signed_amount)
    row[0] += delta.raised
    row[1] += delta.payments
    row[2] += delta.gross
    row[3] += delta.refunded
    row[4] += delta.disputed
