"""A campaign that has ended keeps its public bar, with final figures, and offers no Donate.

Issue #10 item 13, over HTTP on SQLite and PostgreSQL: the progress API, the iframe
page, the SVG image and the donate routes. The widget itself (embed.js) is held
to the same in tests/browser/test_widget.py.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests import factories
from tracker.domain.periods import PeriodKind
from tracker.models import Campaign, CampaignStatus, utcnow
from tracker.services.campaigns import has_ended
from tracker.services.pledges import closed_reason

ENDED = "This campaign has ended"
LINK = re.compile(r"<a\b")


def _campaign(session: Session, how: str) -> Campaign:
    """Campaign ``fund`` with $2,811 raised, then ``how``: open, closed, ended or not started."""
    campaign = factories.campaign(session, "fund")
    factories.pay(session, "fund", "p1", 281_100, at=utcnow() - timedelta(days=2))
    if how == "closed":
        campaign.status = CampaignStatus.CLOSED
    elif how == "ended":
        campaign.starts_at = utcnow() - timedelta(days=30)
        campaign.ends_at = utcnow() - timedelta(days=1)
    elif how == "not_started":
        campaign.starts_at = utcnow() + timedelta(days=1)
    session.commit()
    return campaign


@pytest.mark.parametrize(
    ("how", "closed"), [("open", False), ("closed", True), ("ended", True), ("not_started", False)]
)
def test_api_says_closed_and_keeps_the_figures(
    client: FlaskClient, session: Session, how: str, closed: bool
) -> None:
    _campaign(session, how)
    body = client.get("/api/v1/campaigns/fund").get_json()
    assert body["closed"] is closed
    assert body["raised"] == 281_100
    assert body["texts"]["summary"] == "$2,811 raised of $5,000"
    # Every field an older widget checks is still there.
    assert body["texts"]["donate"] == "Donate"
    assert body["texts"]["closed"] == ENDED


def test_api_texts_say_it_in_the_locale(client: FlaskClient, session: Session) -> None:
    _campaign(session, "closed")
    assert client.get("/api/v1/campaigns/fund").get_json()["texts"]["ended"] == "Ended"
    body = client.get("/api/v1/campaigns/fund?locale=fr-FR").get_json()
    assert body["texts"]["closed"] == "Cette campagne est terminée"
    assert body["texts"]["ended"] == "Terminée"


@pytest.mark.parametrize("how", ["closed", "ended"])
def test_iframe_shows_final_figures_and_no_donate(
    client: FlaskClient, session: Session, how: str
) -> None:
    _campaign(session, how)
    html = client.get("/embed/fund?cta=Help+us&show-donors=1").get_data(as_text=True)
    assert "<b>$2,811</b> raised of $5,000" in html
    assert 'aria-valuenow="281100"' in html
    assert f"<span>{ENDED}</span>" in html
    assert "Help us" not in html
    assert "Donate" not in html
    assert not LINK.search(html)
    # Without a call to action there is no row to say it in, and still no link.
    bare = client.get("/embed/fund").get_data(as_text=True)
    assert "<b>$2,811</b>" in bare
    assert not LINK.search(bare)


@pytest.mark.parametrize(
    ("query", "corner"),
    [
        # No call to action row to say it in: the corner says it, beside the donors.
        ("", "Ended"),
        ("?show-donors=1", "1 donor · Ended"),
        ("?size=compact&cta=Help+us&show-donors=1", "1 donor · Ended"),
        # The row says it already.
        ("?cta=Help+us&show-donors=1", "1 donor"),
        ("?cta=Help+us", ""),
    ],
)
def test_iframe_without_a_call_to_action_row_still_says_it_has_ended(
    client: FlaskClient, session: Session, query: str, corner: str
) -> None:
    _campaign(session, "closed")
    html = client.get(f"/embed/fund{query}").get_data(as_text=True)
    assert f'<span class="d">{corner}</span>' in html
    assert not LINK.search(html)


@pytest.mark.parametrize("query", ["", "?show-donors=1", "?size=compact"])
def test_an_open_campaign_says_nothing_of_an_end(
    client: FlaskClient, session: Session, query: str
) -> None:
    _campaign(session, "open")
    html = client.get(f"/embed/fund{query}").get_data(as_text=True)
    assert "Ended" not in html
    svg = client.get(f"/campaigns/fund/progress.svg{query}").get_data(as_text=True)
    assert "Ended" not in svg


def test_iframe_of_an_open_campaign_keeps_its_donate(client: FlaskClient, session: Session) -> None:
    _campaign(session, "open")
    html = client.get("/embed/fund?cta=Help+us").get_data(as_text=True)
    assert "<span>Help us</span>" in html
    assert 'href="/donate/fund"' in html
    assert ENDED not in html


def test_iframe_says_it_in_the_locale(client: FlaskClient, session: Session) -> None:
    _campaign(session, "closed")
    html = client.get("/embed/fund?cta=Aidez-nous&locale=fr-FR").get_data(as_text=True)
    assert "<span>Cette campagne est terminée</span>" in html
    assert "Faire un don" not in html and not LINK.search(html)


def test_svg_keeps_figures_and_says_it_has_ended(client: FlaskClient, session: Session) -> None:
    _campaign(session, "closed")
    svg = client.get("/campaigns/fund/progress.svg").get_data(as_text=True)
    assert "<tspan>$2,811</tspan> raised of $5,000" in svg
    assert f"<title>Fund us: $2,811 raised of $5,000; tier $2,500 reached. {ENDED}</title>" in svg
    # An image has no call to action row: its corner says it, for the eye too.
    assert 'text-anchor="end">Ended</text>' in svg
    french = client.get("/campaigns/fund/progress.svg?locale=fr-FR&show-donors=1").text
    assert 'text-anchor="end">1 donateur · Terminée</text>' in french
    assert "Donate" not in svg


@pytest.mark.parametrize("how", ["closed", "ended"])
def test_donate_routes_refuse_with_409(client: FlaskClient, session: Session, how: str) -> None:
    # tests/test_donate.py checks that nothing is written; here, what the donor reads.
    _campaign(session, how)
    page = client.get("/donate/fund")
    assert page.status_code == 200
    assert "no longer takes donations" in page.text
    posted = client.post("/donate/fund", data={"amount": "2500"})
    assert posted.status_code == 409
    assert "no longer takes donations" in posted.text


@pytest.mark.parametrize("how", ["open", "closed", "ended", "not_started"])
def test_has_ended_agrees_with_the_donate_refusal(session: Session, how: str) -> None:
    campaign = _campaign(session, how)
    reason = closed_reason(campaign)
    assert has_ended(campaign, utcnow()) is bool(reason and "no longer" in reason)


def test_periodic_campaign_ended_by_date_shows_its_last_period(
    client: FlaskClient, session: Session, time_machine: time_machine.TimeMachineFixture
) -> None:
    time_machine.move_to(datetime(2026, 12, 15, 12, tzinfo=UTC), tick=False)
    # Ends at midnight on 1 December: its last month is November, not December's empty one.
    factories.campaign(
        session,
        period=PeriodKind.MONTH,
        starts_at=datetime(2026, 10, 1, tzinfo=UTC),
        ends_at=datetime(2026, 12, 1, tzinfo=UTC),
    )
    factories.pay(session, "fund", "oct", 1_000, at=datetime(2026, 10, 10, tzinfo=UTC))
    factories.pay(session, "fund", "nov", 3_000, at=datetime(2026, 11, 10, tzinfo=UTC))
    body = client.get("/api/v1/campaigns/fund").get_json()
    assert body["closed"] is True
    assert body["period"]["key"] == "2026-11"
    assert body["raised"] == 3_000


def test_periodic_campaign_closed_by_an_admin_shows_its_newest_totals(
    client: FlaskClient, session: Session, time_machine: time_machine.TimeMachineFixture
) -> None:
    time_machine.move_to(datetime(2027, 2, 15, 12, tzinfo=UTC), tick=False)
    campaign = factories.campaign(session, period=PeriodKind.MONTH)
    factories.pay(session, "fund", "oct", 1_000, at=datetime(2026, 10, 10, tzinfo=UTC))
    factories.pay(session, "fund", "nov", 3_000, at=datetime(2026, 11, 10, tzinfo=UTC))
    open_body = client.get("/api/v1/campaigns/fund").get_json()
    assert (open_body["period"]["key"], open_body["raised"]) == ("2027-02", 0)
    campaign.status = CampaignStatus.CLOSED
    session.commit()
    body = client.get("/api/v1/campaigns/fund").get_json()
    assert (body["closed"], body["period"]["key"], body["raised"]) == (True, "2026-11", 3_000)
