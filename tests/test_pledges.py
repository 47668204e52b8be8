"""The pledge service: pending pledges, Checkout ids, and nothing ever credited."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests import factories
from tests.conftest import make_app
from tracker.models import (
    AMOUNT_LIMIT,
    Campaign,
    CampaignStatus,
    LedgerEntry,
    Pledge,
    PledgeFrequency,
    PledgeSource,
    PledgeStatus,
    utcnow,
)
from tracker.services.campaigns import CampaignNotFound
from tracker.services.pledges import (
    CampaignClosed,
    PledgeError,
    PledgeInput,
    PledgeNotFound,
    attach_checkout_session,
    create_pledge,
    donate_page,
    mark_checkout_failed,
    pledge_for_donor,
)

GIFT = PledgeInput(
    amount=2500,
    frequency=PledgeFrequency.ONE_TIME,
    email="ada@example.org",
    name="Ada",
    message=None,
    anonymous=True,
)


def _count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Pledge)) or 0


def test_create_attach_and_read_back(session: Session) -> None:
    factories.campaign(session, "fund")
    pledge = create_pledge(session, "fund", GIFT, source=PledgeSource.STRIPE)
    session.commit()
    assert (pledge.status, pledge.currency, pledge.amount) == (PledgeStatus.PENDING, "USD", 2500)
    attach_checkout_session(session, pledge.id, "cs_test_1")
    session.commit()
    view = pledge_for_donor(session, "fund", pledge.id)
    assert view.checkout_session_id == "cs_test_1"
    assert (view.email, view.name, view.anonymous) == ("ada@example.org", "Ada", True)
    assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 0


def test_pledge_is_only_visible_through_its_own_campaign(session: Session) -> None:
    factories.campaign(session, "fund")
    factories.campaign(session, "other")
    pledge = create_pledge(session, "fund", GIFT, source=PledgeSource.OFFLINE)
    session.commit()
    with pytest.raises(PledgeNotFound):
        pledge_for_donor(session, "other", pledge.id)
    with pytest.raises(PledgeNotFound):
        pledge_for_donor(session, "fund", pledge.id + 1)


def test_mark_failed_leaves_a_pledge_a_webhook_moved_on(session: Session) -> None:
    factories.campaign(session, "fund")
    first = create_pledge(session, "fund", GIFT, source=PledgeSource.STRIPE)
    second = create_pledge(session, "fund", GIFT, source=PledgeSource.STRIPE)
    second.status = PledgeStatus.PAID
    session.commit()
    mark_checkout_failed(session, first.id)
    mark_checkout_failed(session, second.id)
    session.commit()
    assert first.status is PledgeStatus.FAILED
    assert second.status is PledgeStatus.PAID
    with pytest.raises(PledgeNotFound):
        mark_checkout_failed(session, 999_999)


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 0},
        {"amount": -1},
        {"amount": AMOUNT_LIMIT},
        {"amount": True},
        {"email": ""},
        {"email": "no-at-sign"},
        {"name": "n" * 201},
        {"message": "m" * 1001},
    ],
)
def test_the_service_guards_its_invariants(session: Session, change: dict[str, object]) -> None:
    factories.campaign(session, "fund")
    with pytest.raises(PledgeError):
        create_pledge(session, "fund", replace(GIFT, **change), source=PledgeSource.STRIPE)
    session.rollback()
    assert _count(session) == 0


def test_closed_ended_and_future_campaigns_take_no_pledges(session: Session) -> None:
    now = utcnow()
    factories.campaign(session, "closed", status=CampaignStatus.CLOSED)
    factories.campaign(session, "ended", starts_at=now - timedelta(days=9), ends_at=now)
    factories.campaign(session, "future", starts_at=now + timedelta(days=1))
    factories.campaign(session, "draft", status=CampaignStatus.DRAFT)
    for slug, words in (("closed", "closed"), ("ended", "ended"), ("future", "not started")):
        assert words in (donate_page(session, slug).closed_reason or "")
        with pytest.raises(CampaignClosed, match=words):
            create_pledge(session, slug, GIFT, source=PledgeSource.STRIPE)
    with pytest.raises(CampaignNotFound):
        create_pledge(session, "draft", GIFT, source=PledgeSource.STRIPE)
    with pytest.raises(CampaignNotFound):
        donate_page(session, "draft")
    session.rollback()
    assert _count(session) == 0


@pytest.fixture
def cli_app(db_url: str) -> Iterator[Flask]:
    """The app, for its CLI runner."""
    application = make_app(db_url)
    yield application
    application.extensions["tracker.db"].dispose()


def test_set_campaign_command(session: Session, cli_app: Flask) -> None:
    factories.campaign(session, "fund")
    runner = cli_app.test_cli_runner()
    args = ["tracker", "set-campaign", "fund"]
    result = runner.invoke(args=[*args, "--presets", "50, 10,25.50", "--instructions", " IBAN X "])
    assert result.exit_code == 0, result.output
    assert "presets 1000,2550,5000" in result.output
    session.expire_all()
    campaign = session.scalar(select(Campaign).where(Campaign.slug == "fund"))
    assert campaign is not None
    assert (campaign.preset_amounts, campaign.payment_instructions) == ("1000,2550,5000", "IBAN X")
    session.rollback()
    for extra, message in (
        (["--presets", "10,abc"], "preset 'abc'"),
        (["--presets", "1,2,3,4,5,6,7"], "at most 6"),
        (["--instructions", "x" * 5001], "longer than 5,000"),
        ([], "nothing to change"),
    ):
        failed = runner.invoke(args=[*args, *extra])
        assert failed.exit_code == 2 and message in failed.output, failed.output
    cleared = runner.invoke(args=[*args, "--presets", ""])
    assert "derived from the tiers" in cleared.output
