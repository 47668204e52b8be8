"""Creating and changing campaigns."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from tests import factories
from tracker.domain.periods import PeriodKind
from tracker.services.campaigns import (
    CampaignError,
    CampaignNotFound,
    CampaignSpec,
    create_campaign,
    get_campaign,
    update_campaign,
)
from tracker.services.progress import campaign_progress


def test_slug_is_unique(session: Session) -> None:
    factories.campaign(session)
    with pytest.raises(CampaignError, match="already exists"):
        factories.campaign(session)


def test_update_replaces_the_ladder_and_bumps_the_version(session: Session) -> None:
    factories.campaign(session)
    campaign = update_campaign(
        session,
        "fund",
        {"tiers": [100_000, 200_000], "tier_labels": ["Rent", None], "title": "New"},
        "test",
    )
    session.commit()
    assert campaign.version == 2
    report = campaign_progress(session, "fund")
    assert [(t.amount, t.label) for t in report.tiers] == [(100_000, "Rent"), (200_000, "$2,000")]
    assert report.title == "New"


def test_currency_and_period_are_frozen_once_funded(session: Session) -> None:
    factories.campaign(session)
    update_campaign(session, "fund", {"currency": "EUR"}, "test")  # no money yet: allowed
    session.commit()
    factories.pay(session, "fund", "pi_1", 100)
    for change in ({"currency": "USD"}, {"period": PeriodKind.WEEK}, {"timezone": "Asia/Tokyo"}):
        with pytest.raises(CampaignError, match="the campaign has payments"):
            update_campaign(session, "fund", change, "test")
        session.rollback()
    with pytest.raises(CampaignError, match="cannot change created_at"):
        update_campaign(session, "fund", {"created_at": None}, "test")


def test_unknown_campaign(session: Session) -> None:
    with pytest.raises(CampaignNotFound):
        get_campaign(session, "nope")


def test_invalid_specs_are_refused(session: Session) -> None:
    with pytest.raises(CampaignError, match="top tier"):
        create_campaign(session, CampaignSpec(slug="x", title="T", currency="USD", tiers=[0]))
    with pytest.raises(CampaignError, match="more tier labels"):
        create_campaign(
            session,
            CampaignSpec(slug="x", title="T", currency="USD", tiers=[5], tier_labels=["a", "b"]),
        )
