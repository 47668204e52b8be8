"""``set-campaign``: publish, close and edit a campaign, each change audited."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests import factories
from tracker.db import get_database
from tracker.models import AuditEvent, Campaign, CampaignStatus


def _set(runner: FlaskCliRunner, *args: str) -> tuple[int, str]:
    result = runner.invoke(args=["tracker", "set-campaign", *args])
    return result.exit_code, result.output


def _audits(app: Flask) -> list[AuditEvent]:
    with get_database(app).session() as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def test_a_draft_is_published_edited_and_audited(
    runner: FlaskCliRunner, app: Flask, session: Session
) -> None:
    factories.campaign(session, "spring", status=CampaignStatus.DRAFT)
    client = app.test_client()
    assert client.get("/api/v1/campaigns/spring").status_code == 404
    code, output = _set(
        runner,
        "spring",
        "--status",
        "active",
        "--title",
        "Spring drive",
        "--tiers",
        "0,1000,2000.50",
        "--cta",
        " Help us print the spring issue! ",
        "--locale",
        "fr-FR",
    )
    assert code == 0, output
    assert "updated spring: status active" in output
    api = client.get("/api/v1/campaigns/spring").get_json()
    assert api["title"] == "Spring drive"
    assert [t["amount"] for t in api["tiers"]] == [0, 100_000, 200_050]
    assert api["tiers"][1]["label"] == "1\u202f000\xa0$US"
    page = client.get("/donate/spring").text
    assert "Help us print the spring issue!" in page
    # The snippet builder suggests it for the embeds.
    builder = client.get("/campaigns/spring/embed").text
    assert 'cta="Help us print the spring issue!"' in builder
    (audit,) = _audits(app)
    assert audit.action == "campaign_updated"
    assert audit.actor.startswith("cli") and audit.address is None
    changes = audit.details["changes"]
    assert changes["status"] == {"from": "draft", "to": "active"}
    assert changes["title"] == {"from": "Fund us", "to": "Spring drive"}
    assert changes["tiers"] == {"from": [0, 250_000, 500_000], "to": [0, 100_000, 200_050]}
    assert changes["cta"] == {"from": None, "to": "Help us print the spring issue!"}
    assert changes["locale"] == {"from": "en_US", "to": "fr_FR"}
    assert set(changes) == {"status", "title", "tiers", "cta", "locale"}
    # The same values again change nothing and audit nothing.
    assert _set(runner, "spring", "--title", "Spring drive")[0] == 0
    assert len(_audits(app)) == 1
    assert _set(runner, "spring", "--cta", "")[0] == 0
    assert _audits(app)[-1].details["changes"] == {
        "cta": {"from": "Help us print the spring issue!", "to": None}
    }


def test_a_closed_campaign_shows_its_final_figures_and_refuses_pledges(
    runner: FlaskCliRunner, app: Flask, session: Session
) -> None:
    factories.campaign(session)
    factories.pay(session, "fund", "p1", 123_400)
    assert _set(runner, "fund", "--status", "closed")[0] == 0
    client = app.test_client()
    api = client.get("/api/v1/campaigns/fund")
    assert api.status_code == 200 and api.get_json()["raised_display"] == "$1,234"
    assert "<b>$1,234</b> raised of $5,000" in client.get("/embed/fund").text
    assert "$1,234" in client.get("/campaigns/fund/progress.svg").text
    page = client.get("/donate/fund")
    assert page.status_code == 200
    assert "This campaign is closed and no longer takes donations." in page.text
    assert "$1,234" in page.text
    assert "to the next goal" not in page.text  # final figures, not an appeal
    assert "<form" not in page.text
    refused = client.post("/donate/fund", data={"amount": "1000", "email": "a@example.org"})
    assert refused.status_code == 409
    assert "This campaign is closed and no longer takes donations." in refused.text
    with get_database(app).session() as check:
        assert check.scalar(select(func.count()).select_from(Campaign)) == 1
    assert _audits(app)[-1].details["changes"] == {"status": {"from": "active", "to": "closed"}}
    # Reopened: it takes pledges again.
    assert _set(runner, "fund", "--status", "active")[0] == 0
    assert "<form" in client.get("/donate/fund").text


BAD_CHANGES = [
    (["--status", "open"], "'open' is not one of 'draft', 'active', 'closed'"),
    (["--title", " "], "the title must be 1 to 200 characters"),
    (["--tiers", "0,abc"], "tier 'abc'"),
    (["--tiers", "5000,2500"], "increasing order"),
    (["--locale", "zz_ZZ"], "unknown locale"),
    (["--cta", "x" * 121], "at most 120 characters"),
    (["--cta", "two\nlines"], "one line"),
    (["--currency", "XXX"], "unknown currency 'XXX'"),
    (["--currency", "EUR"], "cannot change currency: the campaign has payments"),
    (["--period", "month"], "cannot change period: the campaign has payments"),
    (["--title", "New", "--currency", "EUR"], "cannot change currency"),
    ([], "nothing to change"),
]


def test_bad_changes_are_one_line_and_change_nothing(
    runner: FlaskCliRunner, app: Flask, session: Session
) -> None:
    factories.campaign(session)
    factories.pay(session, "fund", "p1", 1_000)
    for args, message in BAD_CHANGES:
        code, output = _set(runner, "fund", *args)
        lines = [line for line in output.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and message in lines[0], (args, output)
    assert _set(runner, "nope", "--title", "T")[1].strip() == "Error: no campaign 'nope'"
    with get_database(app).session() as check:
        campaign = check.scalar(select(Campaign))
        assert campaign is not None
        assert (campaign.title, campaign.currency, campaign.version) == ("Fund us", "USD", 1)
    assert _audits(app) == []


def test_currency_and_tiers_change_together_before_money(
    runner: FlaskCliRunner, app: Flask, session: Session
) -> None:
    factories.campaign(session)
    code, output = _set(runner, "fund", "--currency", "jpy", "--tiers", "0,500000")
    assert code == 0, output
    api = app.test_client().get("/api/v1/campaigns/fund").get_json()
    assert api["currency"] == "JPY"
    assert [t["amount"] for t in api["tiers"]] == [0, 500_000]
