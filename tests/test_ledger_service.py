"""Recording entries: idempotency, totals kept with the entries, periods, drift checks."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from tests import factories
from tests.conftest import _empty_postgresql
from tracker.db import Database
from tracker.domain.ledger import EntryKind, EntrySource, LedgerError
from tracker.domain.periods import PeriodKind
from tracker.models import LedgerEntry, PeriodTotal
from tracker.services import ledger as ledger_service
from tracker.services.campaigns import get_campaign
from tracker.services.ledger import check_totals, record_entry
from tracker.services.progress import campaign_progress


def test_a_duplicate_reference_changes_nothing(session: Session) -> None:
    factories.campaign(session)
    assert factories.pay(session, "fund", "pi_1", 1_000, donor="a").new
    again = factories.pay(session, "fund", "pi_1", 9_999, donor="b")
    assert not again.new and again.entry_id is None
    report = campaign_progress(session, "fund")
    assert (report.raised, report.payments, report.donors) == (1_000, 1, 1)
    assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 1


def test_refunds_and_disputes_move_the_total_but_not_the_counts(session: Session) -> None:
    factories.campaign(session)
    factories.pay(session, "fund", "pi_1", 10_000, donor="a")
    factories.pay(session, "fund", "pi_2", 5_000, donor="a")
    factories.pay(session, "fund", "re_1", 2_500, kind=EntryKind.REFUND)
    factories.pay(session, "fund", "dp_1", 5_000, kind=EntryKind.DISPUTE_LOST)
    factories.pay(session, "fund", "dp_1:won", 5_000, kind=EntryKind.DISPUTE_WON)
    report = campaign_progress(session, "fund")
    assert (report.raised, report.payments, report.donors) == (12_500, 2, 1)
    assert check_totals(session) == []


def test_entries_count_in_the_period_of_occurred_at(session: Session) -> None:
    factories.campaign(session, period=PeriodKind.MONTH, timezone="Europe/Paris")
    # 23:30 UTC on 31 October is already November in Paris.
    factories.pay(session, "fund", "a", 100, at=datetime(2026, 10, 31, 23, 30, tzinfo=UTC))
    factories.pay(session, "fund", "b", 200, at=datetime(2026, 10, 31, 22, 30, tzinfo=UTC))
    rows = {r.period_key: r.raised for r in session.scalars(select(PeriodTotal))}
    assert rows == {"2026-11": 100, "2026-10": 200}
    now = datetime(2026, 11, 15, tzinfo=UTC)
    assert campaign_progress(session, "fund", now=now).raised == 100
    # A new period starts from zero; history is kept.
    assert campaign_progress(session, "fund", now=datetime(2026, 12, 2, tzinfo=UTC)).raised == 0


def test_foreign_currency_never_counts(session: Session) -> None:
    campaign = factories.campaign(session)
    with pytest.raises(LedgerError, match="EUR movement cannot count towards a USD"):
        record_entry(
            session,
            campaign,
            source=EntrySource.STRIPE,
            reference="pi_eur",
            kind=EntryKind.PAYMENT,
            amount=100,
            currency="eur",
            occurred_at=datetime.now(UTC),
        )


@pytest.mark.parametrize("amount", [0, -5])
def test_non_positive_magnitudes_are_refused(session: Session, amount: int) -> None:
    factories.campaign(session)
    with pytest.raises(LedgerError, match="positive"):
        factories.pay(session, "fund", "x", amount)


def test_the_database_guards_the_ledger(session: Session) -> None:
    factories.campaign(session)
    factories.pay(session, "fund", "pi_1", 1_000)
    # Append-only: no edit, no delete, whatever the code above it does.
    for statement in ("UPDATE ledger_entries SET amount = 1", "DELETE FROM ledger_entries"):
        with pytest.raises(DBAPIError, match="append-only"):
            session.execute(text(statement))
        session.rollback()
    campaign_id = get_campaign(session, "fund").id
    # A payment with a negative amount breaks the sign CHECK.
    with pytest.raises(IntegrityError):
        session.execute(
            text(
                "INSERT INTO ledger_entries (campaign_id, source, reference, kind, amount,"
                " currency, occurred_at, period_key, donor_key, created_at) VALUES"
                " (:c, 'offline', 'neg', 'payment', -5, 'USD', :t, 'all', 'x', :t)"
            ),
            {"c": campaign_id, "t": datetime.now(UTC)},
        )
    session.rollback()


def test_check_totals_reports_and_repairs_drift(session: Session) -> None:
    factories.campaign(session)
    factories.pay(session, "fund", "pi_1", 1_000, donor="a")
    factories.pay(session, "fund", "pi_2", 2_000, donor="b")
    session.execute(text("UPDATE period_totals SET raised = raised + 1, donors = 1"))
    session.commit()
    drifts = check_totals(session)
    assert [d.describe() for d in drifts] == [
        "fund all: raised 3001 (ledger says 3000), donors 1 (ledger says 2)"
    ]
    assert check_totals(session, repair=True)
    session.commit()
    assert check_totals(session) == []
    # The donor set was repaired too: a returning donor is not counted twice.
    factories.pay(session, "fund", "pi_3", 500, donor="a")
    assert campaign_progress(session, "fund").donors == 2
    assert check_totals(session) == []


def test_concurrent_writers_count_each_reference_once(database: Database) -> None:
    """16 threads record 1,000 entries, 200 of which repeat an earlier reference."""
    with database.session() as session:
        factories.campaign(session)
    rng = random.Random(7)
    distinct = [(f"ref-{i}", rng.randint(1, 50_000), f"donor-{i % 37}") for i in range(800)]
    repeats = [distinct[rng.randrange(800)] for _ in range(200)]
    work = distinct + repeats
    rng.shuffle(work)
    chunks = [work[i::16] for i in range(16)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(16)

    def writer(chunk: list[tuple[str, int, str]]) -> None:
        try:
            barrier.wait()
            with database.session() as session:
                campaign = get_campaign(session, "fund")
                session.commit()
                for reference, amount, donor in chunk:
                    record_entry(
                        session,
                        campaign,
                        source=EntrySource.STRIPE,
                        reference=reference,
                        kind=EntryKind.PAYMENT,
                        amount=amount,
                        currency="USD",
                        occurred_at=datetime(2026, 11, 20, tzinfo=UTC),
                        donor_key=donor,
                    )
                    session.commit()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with database.session() as session:
        report = campaign_progress(session, "fund")
        assert report.raised == sum(amount for _, amount, _ in distinct)
        assert report.payments == 800
        assert report.donors == 37
        assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 800
        assert check_totals(session) == []


@pytest.fixture
def pg_database(pg_server_url: str) -> Iterator[Database]:
    """The PostgreSQL test database alone: the race below needs concurrent writers."""
    database = Database(pg_server_url)
    yield database
    database.dispose()
    _empty_postgresql(pg_server_url)


def test_a_repair_never_writes_a_concurrent_payment_out_of_the_total(
    pg_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A payment committed between the check's read of the ledger and its read of
    # the totals looked like drift, and --repair wrote it out of the total. New
    # entries now wait for the check's transaction.
    with pg_database.session() as setup:
        factories.campaign(setup)
        factories.pay(setup, "fund", "pi_1", 1_000, donor="a")
    ledger_read = threading.Event()
    read = ledger_service.ledger_totals

    def slow_read(session: Session) -> dict[tuple[int, str], tuple[int, int, int]]:
        totals = read(session)
        ledger_read.set()
        time.sleep(0.5)  # the payment below tries to commit meanwhile
        return totals

    def pay_meanwhile() -> None:
        ledger_read.wait(10)
        with pg_database.session() as other:
            factories.pay(other, "fund", "pi_2", 2_000, donor="b")

    monkeypatch.setattr(ledger_service, "ledger_totals", slow_read)
    payer = threading.Thread(target=pay_meanwhile)
    payer.start()
    with pg_database.session() as checking:
        drifts = check_totals(checking, repair=True)
        checking.commit()
    payer.join(30)
    monkeypatch.setattr(ledger_service, "ledger_totals", read)
    assert drifts == []
    with pg_database.session(write=False) as session:
        total = session.scalars(select(PeriodTotal)).one()
        assert (total.raised, total.payments) == (3_000, 2)
        assert check_totals(session) == []


def test_maximal_entries_stop_at_the_total_bound_and_never_overflow(session: Session) -> None:
    from tracker.models import AMOUNT_LIMIT, TOTAL_LIMIT

    campaign = factories.campaign(session)
    biggest = AMOUNT_LIMIT - 1
    with pytest.raises(LedgerError, match="below"):
        factories.pay(session, "fund", "too-big", AMOUNT_LIMIT)
    session.rollback()
    fits = TOTAL_LIMIT // biggest  # 1,000 entries of 999,999,999,999,999
    at = datetime(2026, 11, 20, 12, tzinfo=UTC)
    for n in range(fits):
        record_entry(
            session,
            campaign,
            source=EntrySource.OFFLINE,
            reference=f"max-{n}",
            kind=EntryKind.PAYMENT,
            amount=biggest,
            currency="USD",
            occurred_at=at,
            donor_key=str(n % 7),
        )
    session.commit()
    # The entry that would cross the bound is refused, and nothing of it stays.
    with pytest.raises(LedgerError, match="beyond 1,000,000,000,000,000,000"):
        factories.pay(session, "fund", "one-too-many", biggest)
    session.rollback()
    report = campaign_progress(session, "fund")
    assert report.raised == fits * biggest and isinstance(report.raised, int)
    assert report.payments == fits
    assert check_totals(session) == []
    # A refund still goes through, and the total goes on being an integer.
    factories.pay(session, "fund", "re-1", biggest, kind=EntryKind.REFUND)
    factories.pay(session, "fund", "max-again", biggest)
    session.commit()
    assert check_totals(session) == []
    assert session.scalar(select(func.count()).select_from(LedgerEntry)) == fits + 2


def test_the_database_refuses_totals_beyond_the_bound_or_not_integers(session: Session) -> None:
    factories.campaign(session)
    factories.pay(session, "fund", "pi_1", 1_000)
    session.commit()
    statements = [
        "UPDATE period_totals SET raised = 1000000000000000001",
        "UPDATE period_totals SET raised = -1000000000000000001",
        "UPDATE period_totals SET raised = 9223372036854775807",
    ]
    if session.get_bind().dialect.name == "sqlite":
        # What SQLite did with an overflowing sum: a float in an integer column.
        statements += [
            "UPDATE period_totals SET raised = 9.30100000000022e+18",
            "UPDATE period_totals SET raised = 2.5",
            "UPDATE period_totals SET raised = raised + 9223372036854775807",
            "UPDATE period_totals SET payments = 1.5",
        ]
    for statement in statements:
        with pytest.raises(IntegrityError):
            session.execute(text(statement))
        session.rollback()
    if session.get_bind().dialect.name == "sqlite":
        campaign_id = get_campaign(session, "fund").id
        with pytest.raises(IntegrityError):
            session.execute(
                text(
                    "INSERT INTO ledger_entries (campaign_id, source, reference, kind, amount,"
                    " currency, occurred_at, period_key, donor_key, created_at) VALUES"
                    " (:c, 'offline', 'half', 'payment', 2.5, 'USD', :t, 'all', 'x', :t)"
                ),
                {"c": campaign_id, "t": datetime.now(UTC)},
            )
        session.rollback()
    assert campaign_progress(session, "fund").raised == 1_000
