"""Revision 0008: old clear-text donor keys become keyed hashes, and no count moves.

Each test builds a database at revision 0003 (before the change), writes rows
the way the old code wrote them, then migrates to the head, on SQLite and
PostgreSQL.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from tests.conftest import DONOR_KEY_SECRET, fresh_pg_database
from tracker import migrate
from tracker.db import Database
from tracker.domain.donors import donor_key, named_donor_key
from tracker.models import (
    LedgerEntry,
    PeriodDonor,
    PeriodTotal,
    Pledge,
    PledgeSource,
    StripePayment,
    UTCDateTime,
)
from tracker.services.ledger import check_totals
from tracker.services.offline import add_offline_payment

DONOR_SECRET = DONOR_KEY_SECRET
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def old_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind of the test's own, migrated to revision 0003 only."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
        _to_0003(url)
        yield url
        return
    with fresh_pg_database("tracker_old") as url:
        _to_0003(url)
        yield url


def _before_0008() -> str:
    """The revision 0008 follows (later revisions may sit between 0003 and it)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate._config())
    previous = script.get_revision("0008").down_revision
    assert isinstance(previous, str)
    return previous


def _to_0003(url: str) -> None:
    database = Database(url)
    migrate.upgrade(database.engine, revision="0003")
    database.dispose()


_CAMPAIGNS = sa.table(
    "campaigns",
    *(sa.column(c) for c in ("id", "slug", "title", "currency", "locale", "status")),
    *(sa.column(c) for c in ("show_cents", "period", "timezone", "version")),
    sa.column("created_at", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
)
_ENTRIES = sa.table(
    "ledger_entries",
    *(sa.column(c) for c in ("campaign_id", "source", "reference", "kind", "amount")),
    *(sa.column(c) for c in ("currency", "period_key", "donor_key", "note")),
    sa.column("occurred_at", UTCDateTime()),
    sa.column("created_at", UTCDateTime()),
)
_DONORS = sa.table(
    "period_donors", *(sa.column(c) for c in ("campaign_id", "period_key")), sa.column("donor_key")
)
_TOTALS = sa.table(
    "period_totals",
    *(sa.column(c) for c in ("campaign_id", "period_key", "raised", "donors", "payments")),
    sa.column("version"),
    sa.column("updated_at", UTCDateTime()),
)
_PAYMENTS = sa.table(
    "stripe_payments",
    *(sa.column(c) for c in ("reference", "campaign_id", "payment_intent_id", "amount")),
    *(sa.column(c) for c in ("currency", "donor_key", "refunded")),
    sa.column("paid_at", UTCDateTime()),
    sa.column("created_at", UTCDateTime()),
)

# (period, reference, kind, amount, donor key as the old code wrote it)
_OLD_ENTRIES = [
    ("2026-10", "pi_a1", "payment", 1000, "email:ada@example.org"),
    ("2026-10", "pi_a2", "payment", 500, "email:ada@example.org"),
    ("2026-10", "re_a1", "refund", -200, "email:ada@example.org"),
    ("2026-10", "off-1", "payment", 700, "name:grace hopper"),
    ("2026-10", "off-2", "payment", 300, "offline:off-2"),
    ("2026-11", "pi_a3", "payment", 100, "email:ada@example.org"),
    ("2026-11", "pi_b1", "payment", 200, "email:bob@example.org"),
    ("2026-11", "pi_p1", "payment", 50, "pledge:1"),
    # Written by hand, not normalised: it counted apart from ada and still must.
    ("2026-11", "off-3", "payment", 10, "email:Ada@Example.org"),
]


def _seed_old(conn: sa.Connection) -> None:
    conn.execute(
        _CAMPAIGNS.insert(),
        {
            "id": 1, "slug": "fund", "title": "Fund", "currency": "USD", "locale": "en_US",
            "status": "active", "show_cents": False, "period": "month", "timezone": "UTC",
            "version": 1, "created_at": NOW, "updated_at": NOW,
        },
    )  # fmt: skip
    donors: dict[str, set[str]] = defaultdict(set)
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for period, reference, kind, amount, key in _OLD_ENTRIES:
        conn.execute(
            _ENTRIES.insert(),
            {
                "campaign_id": 1, "source": "stripe", "reference": reference, "kind": kind,
                "amount": amount, "currency": "USD", "period_key": period, "donor_key": key,
                "note": None, "occurred_at": NOW, "created_at": NOW,
            },
        )  # fmt: skip
        sums[period][0] += amount
        if kind == "payment":
            sums[period][1] += 1
            donors[period].add(key)
    for period, keys in donors.items():
        for key in keys:
            conn.execute(
                _DONORS.insert(), {"campaign_id": 1, "period_key": period, "donor_key": key}
            )
        raised, payments = sums[period]
        conn.execute(
            _TOTALS.insert(),
            {
                "campaign_id": 1, "period_key": period, "raised": raised, "donors": len(keys),
                "payments": payments, "version": payments, "updated_at": NOW,
            },
        )  # fmt: skip
    conn.execute(
        _PAYMENTS.insert(),
        {
            "reference": "pi_a1", "campaign_id": 1, "payment_intent_id": "pi_a1", "amount": 1000,
            "currency": "USD", "donor_key": "email:ada@example.org", "refunded": 200,
            "paid_at": NOW, "created_at": NOW,
        },
    )  # fmt: skip


def _totals(database: Database) -> list[tuple[str, int, int, int]]:
    with database.session(write=False) as session:
        rows = session.scalars(select_totals()).all()
        return [(r.period_key, r.raised, r.donors, r.payments) for r in rows]


def select_totals() -> sa.Select[tuple[PeriodTotal]]:
    return sa.select(PeriodTotal).order_by(PeriodTotal.period_key)


def test_old_keys_are_hashed_and_every_count_stays(old_url: str) -> None:
    database = Database(old_url, donor_key_secret=DONOR_SECRET)
    with database.engine.begin() as conn:
        _seed_old(conn)
    before = _totals(database)
    assert before == [("2026-10", 2300, 3, 4), ("2026-11", 360, 4, 4)]

    assert migrate.upgrade(database.engine, donor_key_secret=DONOR_SECRET)[1] == (
        migrate.head_revision()
    )

    assert _totals(database) == before
    ada = donor_key(DONOR_SECRET, "ada@example.org")
    with database.session() as session:
        assert check_totals(session) == []
        keys = {
            table.__name__: set(session.scalars(sa.select(table.donor_key)))
            for table in (LedgerEntry, PeriodDonor, StripePayment)
        }
        every = set().union(*keys.values())
        assert not any(key.startswith(("email:", "name:")) for key in every)
        assert not any("example.org" in key or "grace" in key for key in every)
        assert ada in keys["LedgerEntry"] and ada in keys["PeriodDonor"]
        assert keys["StripePayment"] == {ada}
        assert named_donor_key(DONOR_SECRET, "Grace Hopper") in keys["LedgerEntry"]
        assert {"offline:off-2", "pledge:1"} <= keys["LedgerEntry"]

        # ada paying again in November, now through today's code, is still one donor.
        pledge = Pledge(
            campaign_id=1, amount=900, currency="USD", donor_email=" ADA@example.org ",
            source=PledgeSource.OFFLINE,
        )  # fmt: skip
        session.add(pledge)
        session.flush()
        add_offline_payment(
            session, "fund", 900, note="transfer", actor="test", pledge_id=pledge.id, at=NOW
        )
        session.commit()
        assert check_totals(session) == []
    assert _totals(database)[1] == ("2026-11", 1260, 4, 5)
    database.dispose()


def test_an_old_ledger_is_not_migrated_without_the_secret(old_url: str) -> None:
    database = Database(old_url)
    with database.engine.begin() as conn:
        _seed_old(conn)
    with pytest.raises(RuntimeError, match="donor key secret"):
        migrate.upgrade(database.engine)
    # Nothing half-done: PostgreSQL rolls the whole upgrade back (transactional
    # DDL); SQLite keeps the revisions before 0008. Either way the old keys and
    # the strict triggers are in place.
    expected = "0003" if database.engine.dialect.name == "postgresql" else _before_0008()
    assert migrate.current_revision(database.engine) == expected
    with database.engine.connect() as conn:
        assert (
            conn.scalar(
                sa.text("SELECT count(*) FROM ledger_entries WHERE donor_key LIKE 'email:%'")
            )
            == 6
        )
    database.dispose()


def test_after_the_migration_only_an_erasure_may_update_the_ledger(old_url: str) -> None:
    database = Database(old_url, donor_key_secret=DONOR_SECRET)
    with database.engine.begin() as conn:
        _seed_old(conn)
    migrate.upgrade(database.engine, donor_key_secret=DONOR_SECRET)
    refused = [
        "UPDATE ledger_entries SET amount = amount + 1",
        "UPDATE ledger_entries SET donor_key = 'someone-else'",
        "UPDATE ledger_entries SET donor_key = 'erased:x', amount = amount + 1",
        "UPDATE ledger_entries SET donor_key = 'erased:x', period_key = '2026-12'",
        "UPDATE ledger_entries SET donor_key = 'erased:x', reference = 'other'",
        "DELETE FROM ledger_entries",
    ]
    for statement in refused:
        with database.engine.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
            conn.execute(sa.text(statement))
    with database.engine.begin() as conn:
        changed = conn.execute(
            sa.text(
                "UPDATE ledger_entries SET donor_key = 'erased:t', note = 'scrubbed'"
                " WHERE reference = 'off-1'"
            )
        )
        assert changed.rowcount == 1
    database.dispose()
