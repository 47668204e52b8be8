"""The public progress API: the contract in DESIGN.md, caching headers, CORS, errors."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

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
