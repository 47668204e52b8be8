"""The ledger's rules: what kinds of movement exist, their sign, and how totals fold.

Totals are a fold over distinct ledger entries. Entries are identified by
``(source, reference)``: folding the same entries in any order, with any
number of repeats, gives the same totals. The database applies exactly this
rule incrementally (unique constraint + aggregate row); this module states it
purely so it can be tested exhaustively.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class EntryKind(StrEnum):
    """A money movement. Payments and won disputes add; refunds and lost disputes subtract.

    Corrections are an admin's: a reversal of a manual entry (its opposite,
    naming it) or a manual adjustment, up or down, with a reason.
    """

    PAYMENT = "payment"
    REFUND = "refund"
    DISPUTE_LOST = "dispute_lost"
    DISPUTE_WON = "dispute_won"
    CORRECTION_PLUS = "correction_plus"
    CORRECTION_MINUS = "correction_minus"


class EntrySource(StrEnum):
    """Who vouches for an entry; the namespace of its reference."""

    STRIPE = "stripe"
    OFFLINE = "offline"
    DEMO = "demo"


POSITIVE_KINDS = frozenset({EntryKind.PAYMENT, EntryKind.DISPUTE_WON, EntryKind.CORRECTION_PLUS})
CORRECTION_KINDS = frozenset({EntryKind.CORRECTION_PLUS, EntryKind.CORRECTION_MINUS})


class LedgerError(ValueError):
    """An entry that breaks the ledger's rules; ``str()`` is the message."""


def signed(kind: EntryKind, amount: int) -> int:
    """Return ``amount`` (a positive magnitude in minor units) with the sign of ``kind``.

    :raise LedgerError: if ``amount`` is not a positive integer.
    """
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise LedgerError("an entry's amount must be a positive whole number of minor units")
    return amount if kind in POSITIVE_KINDS else -amount


@dataclass(frozen=True, slots=True)
class Entry:
    """One movement as the fold sees it; ``amount`` is already signed."""

    source: EntrySource
    reference: str
    kind: EntryKind
    amount: int
    period_key: str
    donor_key: str | None = None


@dataclass(slots=True)
class PeriodTotals:
    """The aggregate of one period: net raised, distinct paying donors, payment count."""

    raised: int = 0
    payments: int = 0
    donors: set[str] = field(default_factory=set)


def donor_key_for(source: EntrySource, reference: str, donor_key: str | None) -> str:
    """The key a payment's donor is counted under: the given one, else the payment itself."""
    return donor_key if donor_key else f"{source}:{reference}"


def fold(entries: Iterable[Entry]) -> dict[str, PeriodTotals]:
    """Fold entries into totals per period key, counting each ``(source, reference)`` once."""
    seen: set[tuple[EntrySource, str]] = set()
    totals: dict[str, PeriodTotals] = {}
    for entry in entries:
        ident = (entry.source, entry.reference)
        if ident in seen:
            continue
        seen.add(ident)
        bucket = totals.setdefault(entry.period_key, PeriodTotals())
        bucket.raised += entry.amount
        if entry.kind is EntryKind.PAYMENT:
            bucket.payments += 1
            bucket.donors.add(donor_key_for(entry.source, entry.reference, entry.donor_key))
    return totals
