"""The benchmark harness's bulk seeding writes totals that agree with the ledger.

Only correctness here: benchmarks themselves never run in the test suite.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bench import harness
from tracker.db import Database
from tracker.domain.ledger import EntryKind
from tracker.domain.periods import PeriodKind
from tracker.models import LedgerEntry, PeriodDonor, PeriodTotal
from tracker.services.ledger import check_totals, ledger_totals


@pytest.mark.parametrize(
    ("period", "timezone"), [(PeriodKind.NONE, "UTC"), (PeriodKind.MONTH, "Europe/Paris")]
)
def test_seeded_totals_match_the_ledger(db_url: str, period: PeriodKind, timezone: str) -> None:
    seeded = harness.seed_campaign(db_url, 500, period=period, timezone=timezone)

    database = Database(db_url)
    try:
        with database.session(write=False) as session:
            assert check_totals(session) == []
            assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 500
            refunds = session.scalar(
                select(func.count()).where(LedgerEntry.kind == EntryKind.REFUND)
            )
            assert refunds == 25  # one entry in twenty
            recomputed = ledger_totals(session)
            assert sum(raised for raised, _, _ in recomputed.values()) == seeded.raised
            assert sum(payments for _, _, payments in recomputed.values()) == seeded.payments
            assert sum(donors for _, donors, _ in recomputed.values()) == seeded.donors
            assert len(recomputed) == seeded.periods
            stored_donors = session.scalar(select(func.count()).select_from(PeriodDonor))
            assert stored_donors == seeded.donors
            assert seeded.payments == 475
            assert 1 <= seeded.donors < seeded.payments  # donors give more than once
            if period is PeriodKind.NONE:
                assert seeded.periods == 1
            else:
                assert seeded.periods >= 12  # a year of entries, month by month
            versions = session.scalars(select(PeriodTotal.version)).all()
            assert sum(versions) == 500  # as if record_entry had bumped it per entry
    finally:
        database.dispose()


def test_seeding_is_deterministic(db_url: str) -> None:
    first = harness.seed_campaign(db_url, 200, slug="one")
    second = harness.seed_campaign(db_url, 200, slug="two")
    assert (first.raised, first.payments, first.donors) == (
        second.raised,
        second.payments,
        second.donors,
    )


def test_wrk_output_is_parsed() -> None:
    output = """Running 2s test @ http://127.0.0.1:8000/livez
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.90ms  501.00us  12.00ms   90.00%
  Latency Distribution
     50%    1.80ms
     75%    2.00ms
     90%    2.40ms
     99%  850.00us
  8000 requests in 2.00s, 1.20MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 3
Requests/sec:   4000.50
Transfer/sec:    600.00KB
"""
    result = harness.parse_wrk("http://127.0.0.1:8000/livez", output)
    assert result.rps == 4000.5
    assert result.requests == 8000
    assert result.latency_p50_ms == 1.8
    assert result.latency_p99_ms == 0.85
    assert result.errors == 3
    assert result.non_2xx == 3


def test_wrk_refuses_other_hosts() -> None:
    with pytest.raises(harness.BenchError, match="loopback"):
        harness.run_wrk("http://example.org/", duration=1)


def test_the_admin_pages_agree_with_what_the_harness_seeded(db_url: str) -> None:
    # What bench/admin.py measures must be right first: every page answers, the
    # per-day rows agree with the ledger (check-totals clean), and the figures
    # shown are the seeded ones.
    import csv
    import io
    import re

    from tests.admin.conftest import make_admin, sign_in
    from tests.conftest import make_app
    from tracker.domain.periods import period_at
    from tracker.models import DailyTotal, utcnow
    from tracker.services.ledger import check_daily_totals

    seeded = harness.seed_campaign(db_url, 400, period=PeriodKind.MONTH, timezone="Europe/Paris")
    database = Database(db_url)
    try:
        with database.session(write=False) as session:
            assert check_totals(session) == [] and check_daily_totals(session) == []
            assert sum(session.scalars(select(DailyTotal.raised))) == seeded.raised
            current = period_at(PeriodKind.MONTH, "Europe/Paris", utcnow()).key
            # The current month may have no entry yet (the seed ends now): zeros then.
            total = session.get(PeriodTotal, (seeded.campaign_id, current))
            raised, donors = (total.raised, total.donors) if total else (0, 0)
    finally:
        database.dispose()
    app = make_app(db_url)
    try:
        make_admin(app)
        client = app.test_client()
        sign_in(client)
        dashboard = client.get("/admin/")
        assert dashboard.status_code == 200
        assert f'data-raised="{raised}"' in dashboard.text
        assert f'data-donors="{donors}"' in dashboard.text
        assert "run check-totals" not in dashboard.text  # no drift flag
        page = client.get("/admin/campaigns/bench")
        assert page.status_code == 200 and "<svg" in page.text
        ledger = client.get("/admin/campaigns/bench/ledger?kind=payment&min=100")
        assert ledger.status_code == 200
        nxt = re.search(r"<a rel=\"next\" href=\"([^\"]+)\"", ledger.text)
        assert nxt is not None
        assert client.get(nxt.group(1).replace("&amp;", "&")).status_code == 200
        export = client.get("/admin/campaigns/bench/ledger.csv")
        rows = list(csv.reader(io.StringIO(export.get_data(as_text=True))))
        assert export.status_code == 200 and len(rows) == 1 + 400
        assert sum(int(r[4].replace(".", "")) for r in rows[1:]) == seeded.raised
    finally:
        app.extensions["tracker.db"].dispose()
