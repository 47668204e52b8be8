"""The webhook floor benchmark's routes write what the service writes (bench/_floor_app.py).

If the schema moves on and the floor's hand-written statements no longer fit,
these fail instead of the benchmark quietly measuring errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from bench import _floor_app
from bench._webhook_load import SECRET, SLUG, signed_events
from tracker.db import Database
from tracker.domain.periods import PeriodKind
from tracker.models import InboxStatus, LedgerEntry, PeriodTotal, Pledge, StripeEvent, StripePayment
from tracker.services.campaigns import CampaignSpec, create_campaign
from tracker.services.ledger import check_daily_totals, check_totals


@pytest.fixture
def floor_app(db_url: str) -> Iterator[Flask]:
    database = Database(db_url)
    with database.session() as session:
        create_campaign(
            session,
            CampaignSpec(
                slug=SLUG, title="Bench", currency="USD", tiers=[0, 10_000], period=PeriodKind.NONE
            ),
        )
        session.commit()
    database.dispose()
    app = _floor_app.build({"DATABASE_URL": db_url, "STRIPE_WEBHOOK_SECRET": SECRET})
    yield app
    raw = app.extensions.get("floor.raw")
    if raw is not None:
        raw.close()


def _deliveries(tmp_path: Path, count: int) -> list[tuple[str, str]]:
    path = tmp_path / "events.tsv"
    signed_events(path, count)
    lines = path.read_text().splitlines()
    return [(sig, body) for sig, body in (line.split("\t", 1) for line in lines)]


def test_floor_routes_book_like_the_service(floor_app: Flask, db_url: str, tmp_path: Path) -> None:
    client = floor_app.test_client()
    routes = ["/floor/verify", "/floor/store", "/floor/apply", "/floor/apply-once"]
    deliveries = _deliveries(tmp_path, len(routes))
    for route, (signature, body) in zip(routes, deliveries, strict=True):
        response = client.post(route, data=body, headers={"Stripe-Signature": signature})
        assert response.status_code == 200, response.get_data(as_text=True)

    database = Database(db_url)
    try:
        with database.session(write=False) as session:
            statuses = sorted(session.scalars(select(StripeEvent.status)))
            # verify stores nothing; store leaves its row received; both applies finish theirs.
            assert statuses == sorted(
                [InboxStatus.RECEIVED, InboxStatus.PROCESSED, InboxStatus.PROCESSED]
            )
            for model in (Pledge, StripePayment, LedgerEntry):
                assert session.scalar(select(func.count()).select_from(model)) == 2
            total = session.scalars(select(PeriodTotal)).one()
            assert (total.raised, total.payments, total.donors) == (2000, 2, 2)
            assert check_totals(session) == []
            # The service books each payment on its day too: so must its floor.
            assert check_daily_totals(session) == []
    finally:
        database.dispose()


def test_floor_routes_refuse_a_bad_signature(floor_app: Flask, tmp_path: Path) -> None:
    ((_signature, body),) = _deliveries(tmp_path, 1)
    client = floor_app.test_client()
    for route in ("/floor/verify", "/floor/apply"):
        response = client.post(route, data=body, headers={"Stripe-Signature": "t=1,v1=00"})
        assert response.status_code == 400


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_db_path_parts_run_the_floor_and_the_service(kind: str) -> None:
    from bench.webhook_floor import measure_db_path

    results = measure_db_path(kind, rows=20, events=4, rounds=2)
    assert [r["part"] for r in results] == ["floor", "service", "sessions", "core"]
    assert {r["db"] for r in results} == {kind}
    for result in results:
        assert float(result["cpu_us"]) > 0
        assert len(str(result["cpu_us_rounds"]).split()) == 2
    assert results[0]["floor_cpu_ratio"] == 1.0
    # The writers' turn is SQLite's, and only the parts with write sessions or the
    # floor's own transactions take it.
    turns = {str(r["part"]): r.get("turn_us") for r in results}
    if kind == "sqlite":
        assert all(float(turns[part] or 0) > 0 for part in ("floor", "service", "sessions"))
        assert turns["core"] is None
        assert results[0]["floor_turn_ratio"] == 1.0
    else:
        assert set(turns.values()) == {None}


def test_statements_time_the_same_driver_calls_on_both_sides() -> None:
    from bench.webhook_floor import measure_statements

    results = measure_statements("sqlite", rows=20, events=10)
    by_call = {str(r["statement"]): r for r in results}
    # The floor runs the service's statements, no more and no fewer: each call
    # is timed on all three sides, matched by verb and table.
    for call in ("BEGIN", "COMMIT", "INSERT ledger_entries", "SELECT campaigns + pledges"):
        assert call in by_call
    assert "?" not in " ".join(by_call)
    for row in results:
        for part in ("floor", "service", "floor-interleaved"):
            assert float(row[f"{part}_us"]) > 0, (row["statement"], part)
    total = by_call["all"]
    assert float(total["service_us"]) == pytest.approx(
        sum(float(r["service_us"]) for r in results if r["statement"] != "all"), abs=1.0
    )


def test_statements_refuse_postgresql() -> None:
    from bench.harness import BenchError
    from bench.webhook_floor import measure_statements

    with pytest.raises(BenchError, match="SQLite only"):
        measure_statements("postgresql", rows=20, events=10)
