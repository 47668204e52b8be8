"""Creating and editing campaigns from the admin, on both databases."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests import factories
from tests.admin.conftest import csrf_from, make_admin, sign_in
from tracker.db import get_database
from tracker.models import AuditEvent, Campaign, CampaignStatus

FORM = {
    "title": "Winter drive",
    "slug": "winter",
    "currency": "EUR",
    "tiers": "0,1000,2000",
    "period": "month",
    "timezone": "Europe/Paris",
    "locale": "fr_FR",
    "status": "draft",
    "presets": "10,25",
    "instructions": "IBAN FR76 ...",
}


def _campaign(app: Flask, slug: str) -> Campaign | None:
    with get_database(app).session() as session:
        found = session.scalar(select(Campaign).where(Campaign.slug == slug))
        if found is not None:
            _ = [t.amount for t in found.tiers]
        return found


def test_create_then_edit_a_campaign(app: Flask, client: FlaskClient) -> None:
    make_admin(app)
    sign_in(client)
    token = csrf_from(client.get("/admin/campaigns/new").text)
    created = client.post("/admin/campaigns/new", data={**FORM, "csrf_token": token})
    assert created.status_code == 303 and created.headers["Location"] == "/admin/campaigns/winter"
    campaign = _campaign(app, "winter")
    assert campaign is not None and campaign.currency == "EUR"
    assert [t.amount for t in campaign.tiers] == [0, 100_000, 200_000]
    assert campaign.preset_amounts == "1000,2500"
    edit = client.get("/admin/campaigns/winter/edit")
    assert 'value="0,1000,2000"' in edit.text
    saved = client.post(
        "/admin/campaigns/winter/edit",
        data={**FORM, "slug": "winter-2026", "status": "active", "csrf_token": token},
    )
    assert saved.status_code == 303
    renamed = _campaign(app, "winter-2026")
    assert renamed is not None and renamed.status is CampaignStatus.ACTIVE
    # Public now: the slug is fixed.
    fixed = client.post(
        "/admin/campaigns/winter-2026/edit",
        data={**FORM, "slug": "other", "status": "active", "csrf_token": token},
    )
    assert fixed.status_code == 400 and "fixed once the campaign is public" in fixed.text
    with get_database(app).session() as session:
        records = session.scalars(
            select(AuditEvent).where(AuditEvent.action.like("campaign%")).order_by(AuditEvent.id)
        ).all()
        # One record per action: the creation, then the edit (from update_campaign,
        # the path set-campaign takes too) with each field changed, who, and from where.
        assert [r.action for r in records] == ["campaign_created", "campaign_updated"]
        created, edited = records
        assert created.address == edited.address == "127.0.0.1"
        assert created.actor == edited.actor == "admin:owner@example.org"
        assert created.details["fields"]["presets"] == "1000,2500"
        assert edited.details["changes"] == {
            "slug": {"from": "winter", "to": "winter-2026"},
            "status": {"from": "draft", "to": "active"},
        }


def test_a_call_to_action_at_creation_is_part_of_its_one_record(
    app: Flask, client: FlaskClient
) -> None:
    make_admin(app)
    sign_in(client)
    token = csrf_from(client.get("/admin/campaigns/new").text)
    data = {**FORM, "cta": "Give now", "csrf_token": token}
    assert client.post("/admin/campaigns/new", data=data).status_code == 303
    # Saving the form unchanged changes nothing, so it records nothing.
    assert client.post("/admin/campaigns/winter/edit", data=data).status_code == 303
    with get_database(app).session() as session:
        records = session.scalars(
            select(AuditEvent).where(AuditEvent.campaign_id.is_not(None))
        ).all()
        assert [(r.action, r.address) for r in records] == [("campaign_created", "127.0.0.1")]
        assert records[0].details["fields"]["cta"] == "Give now"


def test_errors_sit_beside_their_fields_and_values_are_kept(
    app: Flask, client: FlaskClient
) -> None:
    make_admin(app)
    sign_in(client)
    token = csrf_from(client.get("/admin/campaigns/new").text)
    bad = client.post(
        "/admin/campaigns/new",
        data={
            **FORM,
            "slug": "Bad Slug",
            "timezone": "Mars/Base",
            "tiers": "0,abc",
            "csrf_token": token,
        },
    )
    assert bad.status_code == 400
    for field in ("slug", "timezone", "tiers"):
        assert f'id="{field}-error"' in bad.text
    assert 'value="Winter drive"' in bad.text
    assert _campaign(app, "winter") is None


def test_currency_is_fixed_once_money_exists(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    factories.campaign(session)
    factories.pay(session, "fund", "a", 1_000)
    make_admin(app)
    sign_in(client)
    page = client.get("/admin/campaigns/fund/edit")
    data = {
        **FORM,
        "slug": "fund",
        "status": "active",
        "period": "none",
        "timezone": "UTC",
        "csrf_token": csrf_from(page.text),
    }
    refused = client.post("/admin/campaigns/fund/edit", data=data)
    assert refused.status_code == 400 and "the campaign has payments" in refused.text
    campaign = _campaign(app, "fund")
    assert campaign is not None and campaign.currency == "USD"


def test_the_call_to_action_is_set_checked_and_cleared(app: Flask, client: FlaskClient) -> None:
    make_admin(app)
    sign_in(client)
    token = csrf_from(client.get("/admin/campaigns/new").text)
    cta = "Chip in <b>now</b> & share"
    created = client.post("/admin/campaigns/new", data={**FORM, "cta": cta, "csrf_token": token})
    assert created.status_code == 303
    campaign = _campaign(app, "winter")
    assert campaign is not None and campaign.cta == cta
    edit = client.get("/admin/campaigns/winter/edit")
    assert 'value="Chip in &lt;b&gt;now&lt;/b&gt; &amp; share"' in edit.text
    url = "/admin/campaigns/winter/edit"
    for bad, message in (("x" * 121, "at most 120 characters"), ("two\nlines", "one line")):
        refused = client.post(
            url, data={**FORM, "title": "Changed", "cta": bad, "csrf_token": token}
        )
        assert refused.status_code == 400 and message in refused.text
        assert 'id="cta-error"' in refused.text
        unchanged = _campaign(app, "winter")
        assert unchanged is not None and unchanged.cta == cta and unchanged.title == FORM["title"]
    saved = client.post(url, data={**FORM, "cta": "  Give today  ", "csrf_token": token})
    assert saved.status_code == 303
    assert getattr(_campaign(app, "winter"), "cta", None) == "Give today"
    assert client.post(url, data={**FORM, "cta": "", "csrf_token": token}).status_code == 303
    assert getattr(_campaign(app, "winter"), "cta", "") is None
    with get_database(app).session() as session:
        changes = [
            a.details["changes"]["cta"]
            for a in session.scalars(
                select(AuditEvent).where(AuditEvent.action == "campaign_updated")
            )
            if "cta" in a.details.get("changes", {})
        ]
        created = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "campaign_created")
        ).one()
        assert created.details["fields"]["cta"] == cta  # set with the campaign, one record
    assert changes == [
        {"from": cta, "to": "Give today"},
        {"from": "Give today", "to": None},
    ]
