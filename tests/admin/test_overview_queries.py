"""The dashboard's and campaign page's figures: what one statement each computes equals
what a plain reading of the ledger gives, and the pages send a fixed number of statements.

The oracle here sums and sorts the ledger rows in Python, the slow and obvious way;
the service reads the aggregates, a one-day slice of the ledger and the median's
sample as scalar subqueries of one statement (tracker/services/overview.py).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from tests import factories
from tests.admin.conftest import make_admin, sign_in
from tracker.db import get_database
from tracker.domain.ledger import EntryKind
from tracker.domain.periods import PeriodKind, period_at
from tracker.models import LedgerEntry, Pledge, PledgeFrequency, PledgeSource, PledgeStatus
from tracker.services import overview

NOW = datetime(2026, 11, 20, 18, 30, tzinfo=UTC)


def _seed(session: Session, slug: str = "fund") -> None:
    """Money on many days around ``NOW``: payments, refunds, disputes, pledges."""
    factories.campaign(session, slug, period=PeriodKind.MONTH, timezone="Europe/Paris")
    start = datetime(2026, 10, 25, 7, 11, tzinfo=UTC)
    for i in range(90):  # every 8 h 5 min: October, November up to NOW and a little past
        at = start + timedelta(minutes=485 * i)
        if at > NOW:
            break
        if i % 9 == 8:
            kind, amount = EntryKind.REFUND, 300 + i
        elif i % 17 == 16:
            kind, amount = EntryKind.DISPUTE_LOST, 700
        else:
            kind, amount = EntryKind.PAYMENT, 1_000 + 37 * ((i * 7919) % 101)
        factories.pay(session, slug, f"{slug}-{i}", amount, kind=kind, at=at, donor=f"d{i % 13}")
    campaign = session.scalars(select(LedgerEntry.campaign_id).limit(1)).one()
    for i, (frequency, status) in enumerate(
        [
            (PledgeFrequency.MONTHLY, PledgeStatus.PAID),
            (PledgeFrequency.MONTHLY, PledgeStatus.PAID),
            (PledgeFrequency.MONTHLY, PledgeStatus.PENDING),
            (PledgeFrequency.ONE_TIME, PledgeStatus.PAID),
            (PledgeFrequency.ONE_TIME, PledgeStatus.PENDING),
        ]
    ):
        session.add(
            Pledge(
                campaign_id=campaign,
                amount=1_500 + 100 * i,
                currency="USD",
                frequency=frequency,
                source=PledgeSource.OFFLINE,
                status=status,
            )
        )
    session.commit()


def _ledger(session: Session) -> list[LedgerEntry]:
    return list(session.scalars(select(LedgerEntry).order_by(LedgerEntry.occurred_at)))


def _oracle_median(entries: list[LedgerEntry], starts: datetime, ends: datetime, n: int) -> int:
    payments = [
        e
        for e in entries
        if e.kind is EntryKind.PAYMENT and starts <= e.occurred_at < ends and e.occurred_at <= NOW
    ]
    latest = sorted(payments, key=lambda e: (e.occurred_at, e.id), reverse=True)[:n]
    return int(statistics.median(e.amount for e in latest))


@pytest.mark.parametrize("sample", [overview.MEDIAN_SAMPLE, 7, 6])
def test_the_figures_equal_a_plain_reading_of_the_ledger(
    session: Session, monkeypatch: pytest.MonkeyPatch, sample: int
) -> None:
    # Odd and even samples smaller than the period, and the real one (the whole period).
    monkeypatch.setattr(overview, "MEDIAN_SAMPLE", sample)
    _seed(session)
    entries = _ledger(session)
    period = period_at(PeriodKind.MONTH, "Europe/Paris", NOW)
    assert period.starts_at is not None and period.ends_at is not None
    in_period = [e for e in entries if period.starts_at <= e.occurred_at < period.ends_at]
    payments = [e for e in in_period if e.kind is EntryKind.PAYMENT]

    page = overview.campaign_overview(session, "fund", now=NOW)
    row = page.row
    assert row.raised.minor == sum(e.amount for e in in_period)
    assert row.payments == len(payments)
    assert row.donors == len({e.donor_key for e in payments})
    for since, got in ((NOW - timedelta(1), row.change_24h), (NOW - timedelta(7), row.change_7d)):
        assert got.minor == sum(e.amount for e in entries if e.occurred_at >= since)
    assert row.pending == 2 and row.flags == ()
    figures = page.figures
    median = _oracle_median(entries, period.starts_at, period.ends_at, sample)
    assert figures.median_gift is not None and figures.median_gift.minor == median
    assert figures.median_sample == min(sample, len(payments))
    assert figures.average_gift is not None
    assert figures.average_gift.minor == sum(e.amount for e in payments) // len(payments)
    assert figures.refunds.minor == sum(e.amount for e in in_period if e.kind is EntryKind.REFUND)
    assert figures.disputes.minor == sum(
        e.amount for e in in_period if e.kind is EntryKind.DISPUTE_LOST
    )
    assert (figures.monthly_donors, figures.monthly_total.minor) == (2, 1_500 + 1_600)
    assert page.chart.cumulative == row.raised.minor
    # The dashboard's line is the campaign page's.
    assert overview.dashboard(session, now=NOW) == [row]


def test_an_empty_period_has_no_median(session: Session) -> None:
    factories.campaign(session, period=PeriodKind.MONTH)
    factories.pay(session, "fund", "old", 5_000, at=NOW - timedelta(days=40))
    figures = overview.campaign_overview(session, "fund", now=NOW).figures
    assert figures.median_gift is None and figures.median_sample == 0
    assert figures.average_gift is None


def test_a_campaign_without_periods_counts_every_day(session: Session) -> None:
    factories.campaign(session)
    factories.pay(session, "fund", "a", 10_000, at=NOW - timedelta(days=200))
    factories.pay(session, "fund", "b", 3_000, at=NOW - timedelta(hours=2))
    factories.pay(session, "fund", "a-r", 1_000, kind=EntryKind.REFUND, at=NOW - timedelta(1))
    page = overview.campaign_overview(session, "fund", now=NOW)
    assert page.row.raised.minor == 12_000
    assert page.figures.average_gift is not None and page.figures.average_gift.minor == 6_500
    assert page.figures.median_gift is not None and page.figures.median_gift.minor == 6_500
    assert page.figures.refunds.minor == -1_000
    assert page.chart.cumulative == 12_000  # the 90 days' chart opens at what came before


@contextmanager
def _statements(app: Flask) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn, _cursor, statement, _params, _context, _many) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    engine = get_database(app).engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_each_page_sends_a_fixed_number_of_statements(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    # One statement per figure made the pages slow (a round trip each on
    # PostgreSQL); their number must not grow with the ledger or the figures.
    _seed(session)
    factories.campaign(session, "other")
    make_admin(app)
    sign_in(client)
    counts = []
    for more in (0, 40):
        for i in range(more):
            factories.pay(session, "fund", f"more-{i}", 2_000, at=NOW - timedelta(minutes=i))
        with _statements(app) as dashboard:
            assert client.get("/admin/").status_code == 200
        with _statements(app) as campaign:
            assert client.get("/admin/campaigns/fund").status_code == 200
        counts.append((len(dashboard), len(campaign)))
    # Dashboard: the signed-in admin, the flags, the campaigns with their
    # tiers, one per campaign. Campaign page: the admin, the campaign with its
    # tiers, the figures, the chart's days, history, latest, pending.
    assert counts == [(3 + 2, 7), (3 + 2, 7)]


def test_the_growing_reads_use_their_indexes(session: Session) -> None:
    # Revision 0010: the median's sample and the partial-day sums read the
    # ledger's index alone, and the foreign-currency count reads only flagged
    # Stripe payments. The page's own statement, as sent, is explained. On
    # PostgreSQL with sequential scans off (its planner rightly prefers them on
    # tables this small); on a table of a few rows it may still pick another
    # ledger index, so there only the partial index is asked for.
    factories.campaign(session, period=PeriodKind.MONTH)
    factories.pay(session, "fund", "a", 1_000, at=NOW)
    sent: list[tuple[str, object]] = []

    def capture(_conn, _cursor, statement, params, _context, _many) -> None:  # type: ignore[no-untyped-def]
        if "group_concat" in statement or "string_agg" in statement:
            sent.append((statement, params))

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", capture)
    try:
        overview.campaign_overview(session, "fund", now=NOW)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    [(statement, params)] = sent
    cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    if engine.dialect.name == "sqlite":
        cursor.execute(f"EXPLAIN QUERY PLAN {statement}", params)
        plan = " | ".join(str(row[-1]) for row in cursor.fetchall())
        assert "COVERING INDEX ix_ledger_entries_campaign_occurred_kind_amount" in plan, plan
    else:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {statement}", params)
        plan = " | ".join(str(row[0]) for row in cursor.fetchall())
    assert "ix_stripe_payments_flagged" in plan, plan
