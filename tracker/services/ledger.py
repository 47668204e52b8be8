"""Recording money movements and keeping the per-period totals in step with them.

Idempotency rests on the database, not on a read-then-write: the entry is
inserted with ``ON CONFLICT (source, reference) DO NOTHING``, so two
processes inserting the same reference at the same instant produce one row,
and only the insert that created it touches the totals, in the same
transaction. Totals are bumped with a single atomic upsert, never read,
modified and written back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Protocol

from sqlalchemy import Executable, case, func, literal, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tracker.db import Prepared
from tracker.domain.daily import DayFigures, day_delta, fold_day, local_day
from tracker.domain.ledger import EntryKind, EntrySource, LedgerError, donor_key_for, signed
from tracker.domain.periods import PeriodKind, period_key
from tracker.models import (
    AMOUNT_LIMIT,
    TOTAL_LIMIT,
    Campaign,
    DailyTotal,
    LedgerEntry,
    PeriodDonor,
    PeriodTotal,
    utcnow,
)


class BookedOn(Protocol):
    """What :func:`record_entry` reads of a campaign: a ``Campaign`` row, or the webhook's
    lighter read of one (``tracker.services.stripe_events.targets.CampaignRef``)."""

    @property
    def id(self) -> int: ...
    @property
    def slug(self) -> str: ...
    @property
    def currency(self) -> str: ...
    @property
    def period(self) -> PeriodKind: ...
    @property
    def timezone(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Recorded:
    """The outcome of :func:`record_entry`: ``new`` is False for a duplicate reference."""

    new: bool
    entry_id: int | None
    period_key: str


def _insert(session: Session, table: Any) -> postgresql.Insert | sqlite.Insert:
    return _insert_for(session.get_bind().dialect.name, table)


def _insert_for(dialect: str, table: Any) -> postgresql.Insert | sqlite.Insert:
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database {dialect}")  # config refuses others


# The three statements of a booking are built once per dialect and given their
# values as parameters: building an upsert costs more than running it here.
# They run on the driver's cursor (tracker.db.Prepared), every column given.
_ENTRY_COLUMNS = (
    "campaign_id",
    "source",
    "reference",
    "kind",
    "amount",
    "currency",
    "occurred_at",
    "period_key",
    "donor_key",
    "pledge_id",
    "note",
    "created_at",
    "corrects_entry_id",
)
_TOTALS_COLUMNS = (
    "campaign_id",
    "period_key",
    "raised",
    "payments",
    "donors",
    "version",
    "updated_at",
)
_DAILY_COLUMNS = ("campaign_id", "day", "raised", "payments", "gross", "refunded", "disputed")


@cache
def _entry_insert(dialect: str) -> Prepared:
    return Prepared(
        _insert_for(dialect, LedgerEntry.__table__)
        .on_conflict_do_nothing(index_elements=["source", "reference"])
        .returning(LedgerEntry.id),
        _ENTRY_COLUMNS,
    )


@cache
def _donor_insert(dialect: str) -> Prepared:
    return Prepared(
        _insert_for(dialect, PeriodDonor.__table__).on_conflict_do_nothing().returning(literal(1)),
        ("campaign_id", "period_key", "donor_key"),
    )


@cache
def _totals_upsert(dialect: str) -> Prepared:
    return Prepared(_totals_statement(dialect), _TOTALS_COLUMNS)


def _totals_statement(dialect: str) -> Executable:
    table = PeriodTotal.__table__
    stmt = _insert_for(dialect, table)
    raised = table.c.raised + stmt.excluded.raised
    return stmt.on_conflict_do_update(
        index_elements=["campaign_id", "period_key"],
        set_={
            "raised": raised,
            "payments": table.c.payments + stmt.excluded.payments,
            "donors": table.c.donors + stmt.excluded.donors,
            "version": table.c.version + 1,
            "updated_at": stmt.excluded.updated_at,
        },
        # An entry that would take the total past the bound updates nothing (and
        # returns no row): refused below. The CHECK on the column guards the rest.
        where=raised.between(-TOTAL_LIMIT, TOTAL_LIMIT),
    ).returning(literal(1))


@cache
def _daily_upsert(dialect: str) -> Prepared:
    table = DailyTotal.__table__
    stmt = _insert_for(dialect, table)
    return Prepared(
        stmt.on_conflict_do_update(
            index_elements=["campaign_id", "day"],
            set_={
                name: table.c[name] + stmt.excluded[name]
                for name in ("raised", "payments", "gross", "refunded", "disputed")
            },
        ),
        _DAILY_COLUMNS,
    )


def record_entry(
    session: Session,
    campaign: BookedOn,
    *,
    source: EntrySource,
    reference: str,
    kind: EntryKind,
    amount: int,
    currency: str,
    occurred_at: datetime,
    donor_key: str | None = None,
    pledge_id: int | None = None,
    note: str | None = None,
    corrects_entry_id: int | None = None,
) -> Recorded:
    """Append one movement to the ledger unless ``(source, reference)`` is already there.

    ``amount`` is the positive magnitude in minor units; the sign comes from ``kind``.
    The entry counts in the campaign period containing ``occurred_at``, and on its
    local day in the per-day figures. Flushes, does not commit: the caller's
    transaction covers the entry and its totals together. ``corrects_entry_id``
    names the entry a correction reverses.

    :return: whether the entry was new, its id, and its period key.
    :raise LedgerError: for a non-positive amount, an empty reference, a currency
        other than the campaign's (a total never mixes currencies), or an entry that
        would take its period's total beyond :data:`~tracker.models.TOTAL_LIMIT`
        either way (the caller must roll back: the entry row was written).
    """
    value = signed(kind, amount)
    if amount >= AMOUNT_LIMIT:
        raise LedgerError(f"an entry is below {AMOUNT_LIMIT:,} minor units")
    reference = (reference or "").strip()
    if not reference or len(reference) > 255:
        raise LedgerError("an entry needs a reference of 1 to 255 characters")
    if currency.upper() != campaign.currency:
        raise LedgerError(
            f"a {currency.upper()} movement cannot count towards a {campaign.currency} campaign"
        )
    key = period_key(campaign.period, campaign.timezone, occurred_at)
    donor = (
        donor_key_for(source, reference, donor_key)
        if kind is EntryKind.PAYMENT
        else (donor_key or "")
    )

    session.flush()
    dialect = session.get_bind().dialect.name
    row = (
        _entry_insert(dialect)
        .execute(
            session,
            {
                "campaign_id": campaign.id,
                "source": source,
                "reference": reference,
                "kind": kind,
                "amount": value,
                "currency": campaign.currency,
                "occurred_at": occurred_at,
                "period_key": key,
                "donor_key": donor,
                "pledge_id": pledge_id,
                "note": note,
                "created_at": utcnow(),
                "corrects_entry_id": corrects_entry_id,
            },
        )
        .fetchone()
    )
    if row is None:
        return Recorded(False, None, key)
    inserted: int = row[0]

    new_donor = 0
    if kind is EntryKind.PAYMENT:
        added = (
            _donor_insert(dialect)
            .execute(session, {"campaign_id": campaign.id, "period_key": key, "donor_key": donor})
            .fetchone()
        )
        new_donor = 1 if added else 0
    counted = (
        _totals_upsert(dialect)
        .execute(
            session,
            {
                "campaign_id": campaign.id,
                "period_key": key,
                "raised": value,
                "payments": 1 if kind is EntryKind.PAYMENT else 0,
                "donors": new_donor,
                "version": 1,
                "updated_at": utcnow(),
            },
        )
        .fetchone()
    )
    if counted is None:
        # The entry and donor rows above go with the caller's rollback.
        raise LedgerError(
            f"this {kind.value} would take the {campaign.slug} total of period {key} beyond"
            f" {TOTAL_LIMIT:,} minor units either way: refused"
        )
    delta = day_delta(kind, value)
    _daily_upsert(dialect).execute(
        session,
        {
            "campaign_id": campaign.id,
            "day": local_day(campaign.timezone, occurred_at),
            "raised": delta.raised,
            "payments": delta.payments,
            "gross": delta.gross,
            "refunded": delta.refunded,
            "disputed": delta.disputed,
        },
    )
    return Recorded(True, inserted, key)


@dataclass(frozen=True, slots=True)
class Drift:
    """A totals row that disagrees with its ledger entries."""

    campaign_slug: str
    period_key: str
    stored: tuple[int, int, int]
    expected: tuple[int, int, int]

    def describe(self) -> str:
        """One line for an operator: the row, and what it stores against what the ledger says."""
        names = ("raised", "donors", "payments")
        diffs = ", ".join(
            f"{name} {have} (ledger says {want})"
            for name, have, want in zip(names, self.stored, self.expected, strict=True)
            if have != want
        )
        return f"{self.campaign_slug} {self.period_key}: {diffs}"


def ledger_totals(session: Session) -> dict[tuple[int, str], tuple[int, int, int]]:
    """Recompute (raised, donors, payments) per (campaign id, period key) from the ledger."""
    is_payment = LedgerEntry.kind == EntryKind.PAYMENT
    rows = session.execute(
        select(
            LedgerEntry.campaign_id,
            LedgerEntry.period_key,
            func.sum(LedgerEntry.amount),
            func.count(func.distinct(case((is_payment, LedgerEntry.donor_key)))),
            func.count(case((is_payment, 1))),
        ).group_by(LedgerEntry.campaign_id, LedgerEntry.period_key)
    )
    return {
        (cid, key): (int(raised), int(donors), int(payments))
        for cid, key, raised, donors, payments in rows
    }


def check_totals(session: Session, *, repair: bool = False) -> list[Drift]:
    """Compare every totals row with the ledger; return the rows that drifted.

    With ``repair=True`` drifted rows are rewritten from the ledger (totals are
    derived data; the ledger is never touched). The caller commits.

    On PostgreSQL new entries wait until the caller's transaction ends (the
    ledger is locked in SHARE mode): otherwise a payment committed between
    reading the ledger and reading the totals would look like drift, and a
    repair would write it out of the total. SQLite write transactions are
    serial already.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE ledger_entries IN SHARE MODE"))
    expected = ledger_totals(session)
    stored = {
        (row.campaign_id, row.period_key): row for row in session.scalars(select(PeriodTotal))
    }
    slugs = {cid: slug for cid, slug in session.execute(select(Campaign.id, Campaign.slug))}
    drifts: list[Drift] = []
    for ident in sorted(set(expected) | set(stored)):
        want = expected.get(ident, (0, 0, 0))
        row = stored.get(ident)
        have = (row.raised, row.donors, row.payments) if row else (0, 0, 0)
        if have != want:
            drifts.append(Drift(slugs.get(ident[0], str(ident[0])), ident[1], have, want))
            if repair:
                _rewrite(session, ident, want, row)
    return drifts


def _rewrite(
    session: Session, ident: tuple[int, str], want: tuple[int, int, int], row: PeriodTotal | None
) -> None:
    campaign_id, key = ident
    if row is None:
        row = PeriodTotal(campaign_id=campaign_id, period_key=key, version=0)
        session.add(row)
    row.raised, row.donors, row.payments = want
    row.version = (row.version or 0) + 1
    row.updated_at = utcnow()
    # The donor set must match too, or the next payment would miscount.
    donors = session.scalars(
        select(LedgerEntry.donor_key)
        .distinct()
        .where(
            LedgerEntry.campaign_id == campaign_id,
            LedgerEntry.period_key == key,
            LedgerEntry.kind == EntryKind.PAYMENT,
        )
    ).all()
    session.query(PeriodDonor).filter_by(campaign_id=campaign_id, period_key=key).delete()
    session.add_all(
        PeriodDonor(campaign_id=campaign_id, period_key=key, donor_key=d) for d in donors
    )
    session.flush()


@dataclass(frozen=True, slots=True)
class DailyDrift:
    """A per-day row that disagrees with the ledger entries of that local day."""

    campaign_slug: str
    day: str
    stored: DayFigures
    expected: DayFigures

    def describe(self) -> str:
        """One line for an operator: the day, and what it stores against what the ledger says."""
        names = ("raised", "payments", "gross", "refunded", "disputed")
        diffs = ", ".join(
            f"{name} {have} (ledger says {want})"
            for name, have, want in zip(names, self.stored, self.expected, strict=True)
            if have != want
        )
        return f"{self.campaign_slug} day {self.day}: {diffs}"


def ledger_days(session: Session) -> dict[tuple[int, str], DayFigures]:
    """Recompute the per-day figures of every campaign from the ledger (streams the rows).

    Days are local dates in each campaign's timezone, which SQLite cannot compute,
    so the rows are folded here; ``check-totals`` is the only caller.
    """
    zones = {cid: tz for cid, tz in session.execute(select(Campaign.id, Campaign.timezone))}
    rows = session.execute(
        select(
            LedgerEntry.campaign_id, LedgerEntry.occurred_at, LedgerEntry.kind, LedgerEntry.amount
        ).execution_options(yield_per=5000)
    )
    acc: dict[tuple[int, str], list[int]] = {}
    for cid, at, kind, amount in rows:
        fold_day(acc.setdefault((cid, local_day(zones[cid], at)), [0, 0, 0, 0, 0]), kind, amount)
    return {ident: (r[0], r[1], r[2], r[3], r[4]) for ident, r in acc.items()}


def check_daily_totals(session: Session, *, repair: bool = False) -> list[DailyDrift]:
    """Compare every per-day row with the ledger; return the days that drifted.

    Call it in the same transaction as :func:`check_totals` (whose lock keeps new
    entries out on PostgreSQL). With ``repair=True`` drifted rows are rewritten
    from the ledger. The caller commits.
    """
    expected = ledger_days(session)
    stored = {(row.campaign_id, row.day): row for row in session.scalars(select(DailyTotal))}
    slugs = {cid: slug for cid, slug in session.execute(select(Campaign.id, Campaign.slug))}
    drifts: list[DailyDrift] = []
    for ident in sorted(set(expected) | set(stored)):
        want = expected.get(ident, (0, 0, 0, 0, 0))
        row = stored.get(ident)
        have: DayFigures = (
            (row.raised, row.payments, row.gross, row.refunded, row.disputed)
            if row
            else (0, 0, 0, 0, 0)
        )
        if have != want:
            drifts.append(DailyDrift(slugs.get(ident[0], str(ident[0])), ident[1], have, want))
            if repair:
                if row is None:
                    row = DailyTotal(campaign_id=ident[0], day=ident[1])
                    session.add(row)
                row.raised, row.payments, row.gross, row.refunded, row.disputed = want
    session.flush()
    return drifts
