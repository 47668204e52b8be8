"""Per-day figures: kept with each entry on its local day, checked and repaired by check-totals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask.testing import FlaskCliRunner
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from tests import factories
from tracker.domain.ledger import EntryKind
from tracker.models import DailyTotal
from tracker.services.ledger import check_daily_totals


def _days(session: Session) -> dict[str, tuple[int, int, int, int, int]]:
    return {
        row.day: (row.raised, row.payments, row.gross, row.refunded, row.disputed)
        for row in session.scalars(select(DailyTotal))
    }


def test_entries_count_on_their_local_day(session: Session) -> None:
    factories.campaign(session, timezone="America/New_York")
    # 03:00 UTC on the 21st is still the 20th in New York.
    late = datetime(2026, 11, 21, 3, tzinfo=UTC)
    factories.pay(session, "fund", "a", 10_000, at=late)
    factories.pay(session, "fund", "b", 5_000, at=datetime(2026, 11, 21, 15, tzinfo=UTC))
    factories.pay(session, "fund", "b-r", 1_000, kind=EntryKind.REFUND, at=late)
    factories.pay(session, "fund", "d", 2_000, kind=EntryKind.DISPUTE_LOST, at=late)
    factories.pay(session, "fund", "a", 10_000, at=late)  # a duplicate changes nothing
    assert _days(session) == {
        "2026-11-20": (7_000, 1, 10_000, -1_000, -2_000),
        "2026-11-21": (5_000, 1, 5_000, 0, 0),
    }
    assert check_daily_totals(session) == []


def test_check_totals_reports_and_repairs_a_drifted_day(
    session: Session, runner: FlaskCliRunner
) -> None:
    factories.campaign(session)
    factories.pay(session, "fund", "a", 10_000)
    session.execute(update(DailyTotal).values(raised=1))
    session.commit()
    bad = runner.invoke(args=["tracker", "check-totals"])
    assert bad.exit_code == 1
    assert "fund day 2026-11-20: raised 1 (ledger says 10000)" in bad.output
    assert runner.invoke(args=["tracker", "check-totals", "--repair"]).exit_code == 0
    assert runner.invoke(args=["tracker", "check-totals"]).exit_code == 0
    session.expire_all()
    assert _days(session) == {"2026-11-20": (10_000, 1, 10_000, 0, 0)}


def test_the_migration_backfills_days_from_existing_entries(db_url: str) -> None:
    from alembic import command
    from sqlalchemy import text

    from tracker import migrate
    from tracker.db import Database

    database = Database(db_url)
    cfg = migrate._config()
    try:
        # Alembic's own transaction, as init-db runs it: 0010's concurrent index
        # steps commit it and run outside one, which a begin() around it forbids.
        with database.engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0006")  # the revision before 0007
            conn.commit()
        with database.session() as session:
            factories.campaign(session, timezone="Europe/Paris")
            cid = session.execute(text("SELECT id FROM campaigns")).scalar_one()
            sqlite = database.dialect == "sqlite"  # stores naive UTC, as UTCDateTime does
            for ref, amount, kind, hour in [
                ("a", 10_000, "payment", 23),  # 00:30 on the 21st in Paris
                ("b", 2_500, "payment", 10),
                ("c", -500, "refund", 11),
            ]:
                at = datetime(2026, 11, 20, hour, 30, tzinfo=None if sqlite else UTC)
                session.execute(
                    text(
                        "INSERT INTO ledger_entries (campaign_id, source, reference, kind, amount,"
                        " currency, occurred_at, period_key, donor_key, created_at) VALUES"
                        " (:cid, 'offline', :ref, :kind, :amount, 'USD', :at, 'all', :ref, :at)"
                    ),
                    {"cid": cid, "ref": ref, "kind": kind, "amount": amount, "at": at},
                )
            # A record referencing an entry: the SQLite rebuild must keep it valid.
            session.execute(
                text(
                    "INSERT INTO audit_events (at, actor, action, ledger_entry_id, details)"
                    " SELECT created_at, 'test', 'offline_payment', id, '{}' FROM ledger_entries"
                    " WHERE reference = 'a'"
                )
            )
            session.commit()
        migrate.upgrade(database.engine)
        with database.session() as session:
            assert _days(session) == {
                "2026-11-20": (2_000, 1, 2_500, -500, 0),
                "2026-11-21": (10_000, 1, 10_000, 0, 0),
            }
            assert check_daily_totals(session) == []
            linked = session.execute(
                text(
                    "SELECT e.reference FROM audit_events a"
                    " JOIN ledger_entries e ON e.id = a.ledger_entry_id"
                )
            ).scalar_one()
            assert linked == "a"
            # The new kinds are allowed, and the ledger is still append-only.
            factories.pay(session, "fund", "corr", 100, kind=EntryKind.CORRECTION_MINUS)
            with pytest.raises(DBAPIError):
                session.execute(text("UPDATE ledger_entries SET note = 'x'"))
            session.rollback()
    finally:
        migrate.upgrade(database.engine)
        database.dispose()


def test_the_24_hour_and_7_day_changes_equal_the_ledger_sum_at_any_instant(
    session: Session,
) -> None:
    # Per-day rows for whole days plus the ledger for the partial first day must
    # give what summing the ledger from the instant on gives, whatever the hour.
    from datetime import timedelta

    from sqlalchemy import func

    from tracker.models import LedgerEntry
    from tracker.services.campaigns import get_campaign
    from tracker.services.overview import change_since

    factories.campaign(session, timezone="America/New_York")
    start = datetime(2026, 11, 1, 0, 17, tzinfo=UTC)
    for i in range(60):  # every 7 h 13 min, across the DST change of 1 November
        kind = EntryKind.REFUND if i % 7 == 6 else EntryKind.PAYMENT
        at = start + timedelta(minutes=433 * i)
        factories.pay(session, "fund", f"e{i}", 1_000 + i, kind=kind, at=at)
    campaign = get_campaign(session, "fund")
    for hours in range(0, 60 * 7, 5):
        since = start + timedelta(hours=hours, minutes=3)
        want = session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                LedgerEntry.occurred_at >= since
            )
        )
        assert change_since(session, campaign, since) == want, since
