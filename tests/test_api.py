"""The public progress API: the contract in DESIGN.md, caching headers, CORS, errors."""

from __future__ import annotations

from datetime import UTC, datetime

import time_machine
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests import factories
from tracker.domain.periods import PeriodKind
from tracker.models import CampaignStatus
from tracker.services.demo import seed_demo


def test_demo_campaign_matches_the_contract(client: FlaskClient, session: Session) -> None:
    seed_demo(session)
    session.commit()
    response = client.get("/api/v1/campaigns/demo")
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {
        "slug",
        "title",
        "currency",
        "raised",
        "raised_display",
        "donors",
        "payments",
        "tiers",
        "next_tier",
        "percent",
        "period",
        "updated_at",
        # Added (the contract may grow): the widget's sentences (docs/i18n.md).
        "texts",
        # Added: whether the campaign has ended (its figures final, no Donate; docs/api.md).
        "closed",
    }
    assert body["slug"] == "demo"
    assert body["currency"] == "USD"
    assert body["raised"] == 281100
    assert body["raised_display"] == "$2,811"
    assert body["donors"] == 5
    assert body["payments"] == 5
    assert body["tiers"] == [
        {"amount": 0, "label": "$0", "reached": True},
        {"amount": 250000, "label": "$2,500", "reached": True},
        {"amount": 500000, "label": "$5,000", "reached": False},
    ]
    assert body["next_tier"] == {"amount": 500000, "remaining": 218900}
    assert body["percent"] == 56.22
    assert body["period"] is None
    assert body["updated_at"].endswith("Z")
    assert body["closed"] is False


def test_etag_and_conditional_requests(client: FlaskClient, session: Session) -> None:
    seed_demo(session)
    session.commit()
    first = client.get("/api/v1/campaigns/demo")
    etag = first.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert first.headers["Cache-Control"] == "public, max-age=2, stale-while-revalidate=10"
    again = client.get("/api/v1/campaigns/demo", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""
    factories.pay(session, "demo", "new-payment", 1_000)
    changed = client.get("/api/v1/campaigns/demo", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert changed.get_json()["raised"] == 282_100


def test_cors_is_open_and_no_cookie_is_set(client: FlaskClient, session: Session) -> None:
    seed_demo(session)
    session.commit()
    response = client.get("/api/v1/campaigns/demo", headers={"Origin": "https://news.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Set-Cookie" not in response.headers
    preflight = client.options(
        "/api/v1/campaigns/demo",
        headers={
            "Origin": "https://news.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "If-None-Match",
        },
    )
    assert preflight.status_code == 200
    assert "If-None-Match" in preflight.headers["Access-Control-Allow-Headers"]


def test_unknown_and_draft_campaigns_are_404_json(client: FlaskClient, session: Session) -> None:
    factories.campaign(session, "hidden", status=CampaignStatus.DRAFT)
    for slug in ("nope", "hidden", "%3Cscript%3E", "x" * 300):
        response = client.get(f"/api/v1/campaigns/{slug}")
        assert response.status_code == 404
        assert response.get_json()["error"] == "not_found"
        assert "<script>" not in response.get_data(as_text=True)
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"
    assert client.post("/api/v1/campaigns/demo").status_code == 405


def test_closed_campaigns_stay_public(client: FlaskClient, session: Session) -> None:
    factories.campaign(session, "done", status=CampaignStatus.CLOSED)
    assert client.get("/api/v1/campaigns/done").status_code == 200


def test_overfunded_campaign(client: FlaskClient, session: Session) -> None:
    factories.campaign(session, show_cents=True)
    factories.pay(session, "fund", "big", 562_550)
    body = client.get("/api/v1/campaigns/fund").get_json()
    assert body["percent"] == 112.51
    assert body["next_tier"] is None
    assert body["raised_display"] == "$5,625.50"
    assert [t["reached"] for t in body["tiers"]] == [True, True, True]


def test_periodic_campaign_and_its_history(
    client: FlaskClient, session: Session, time_machine: time_machine.TimeMachineFixture
) -> None:
    # Half an hour before midnight UTC on 30 November is already December in Paris.
    time_machine.move_to(datetime(2026, 11, 30, 23, 30, tzinfo=UTC), tick=False)
    factories.campaign(session, period=PeriodKind.MONTH, timezone="Europe/Paris")
    factories.pay(session, "fund", "oct", 1_000, at=datetime(2026, 10, 10, tzinfo=UTC))
    factories.pay(session, "fund", "sep", 3_000, at=datetime(2026, 9, 10, tzinfo=UTC))
    factories.pay(session, "fund", "nov", 700, at=datetime(2026, 11, 30, 22, 59, tzinfo=UTC))
    factories.pay(session, "fund", "now", 500, at=datetime.now(UTC))
    body = client.get("/api/v1/campaigns/fund").get_json()
    assert body["raised"] == 500
    assert body["period"]["key"] == "2026-12"
    assert body["period"]["starts_at"] == "2026-12-01T00:00:00+01:00"
    history = client.get("/api/v1/campaigns/fund/periods").get_json()
    assert history["period"] == "month"
    keys = [p["key"] for p in history["periods"]]
    assert keys == ["2026-12", "2026-11", "2026-10", "2026-09"]
    september = history["periods"][-1]
    assert september == {
        "key": "2026-09",
        "starts_at": "2026-09-01T00:00:00+02:00",
        "ends_at": "2026-10-01T00:00:00+02:00",
        "raised": 3_000,
        "raised_display": "$30",
        "donors": 1,
        "payments": 1,
    }


def test_history_of_a_campaign_without_periods_is_empty(
    client: FlaskClient, session: Session
) -> None:
    seed_demo(session)
    session.commit()
    assert client.get("/api/v1/campaigns/demo/periods").get_json() == {
        "slug": "demo",
        "currency": "USD",
        "period": None,
        "periods": [],
    }
    assert client.get("/api/v1/campaigns/nope/periods").status_code == 404


def test_health_probes_and_framing(client: FlaskClient) -> None:
    health = client.get("/healthz")
    assert health.status_code == 200 and health.get_json()["database"] == "ok"
    assert client.get("/livez").get_json() == {"status": "ok"}
    assert health.headers["X-Frame-Options"] == "DENY"
    assert health.headers["Content-Security-Policy"] == "frame-ancestors 'none'"


def test_the_micro_cache_serves_repeats_without_the_database(db_url: str) -> None:
    from tests.conftest import make_app

    app = make_app(db_url, API_CACHE_SECONDS=30)
    client = app.test_client()
    with app.app_context():
        from tracker.db import get_database

        with get_database(app).session() as session:
            seed_demo(session)
            session.commit()
            first = client.get("/api/v1/campaigns/demo").get_json()
            factories.pay(session, "demo", "late", 1_000)
    # Within the cache window the process answers from memory, not the database.
    assert client.get("/api/v1/campaigns/demo").get_json() == first
    app.extensions["tracker.db"].dispose()


def test_database_down_is_a_503_not_a_500(tmp_path: object) -> None:
    from tests.conftest import make_app

    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    app = make_app("postgresql+psycopg://postgres@127.0.0.1:9/none")
    client = app.test_client()
    health = client.get("/healthz")
    assert health.status_code == 503
    assert health.get_json()["error"] == "database_unavailable"
    api = client.get("/api/v1/campaigns/demo")
    assert api.status_code == 503
    assert api.headers["Retry-After"] == "5"
    assert client.get("/livez").status_code == 200
