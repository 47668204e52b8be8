"""Creating and editing campaigns from the admin, with the CLI's checks, audited.

The checks are the campaign service's own (``create_campaign``,
``update_campaign``, ``set_donate_settings``); this module adds what the
admin needs around them: a slug that may change only while the campaign is a
draft, start and end as local dates, and one audit record per change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from tracker.domain.periods import PeriodKind, parse_timezone
from tracker.models import Campaign, CampaignStatus
from tracker.services.audit import audit
from tracker.services.campaigns import (
    CampaignError,
    CampaignSpec,
    create_campaign,
    get_campaign,
    update_campaign,
    validate_slug,
)
from tracker.services.pledges import set_donate_settings


@dataclass(slots=True)
class CampaignInput:
    """What the admin's campaign form gives, already parsed (tiers in minor units)."""

    title: str
    slug: str
    currency: str
    tiers: Sequence[int]
    period: PeriodKind
    timezone: str
    locale: str
    show_cents: bool
    status: CampaignStatus
    starts_on: date | None
    ends_on: date | None
    presets: str
    instructions: str
    cta: str | None = None


def _instant(day: date | None, zone: str) -> datetime | None:
    return None if day is None else datetime.combine(day, time(), ZoneInfo(parse_timezone(zone)))


def create_from_admin(
    session: Session, data: CampaignInput, *, actor: str, address: str | None
) -> Campaign:
    """Create a campaign with its donate settings. Flushes; the caller commits.

    :raise CampaignError: (or a domain error) for any invalid value.
    """
    campaign = create_campaign(
        session,
        CampaignSpec(
            slug=data.slug,
            title=data.title,
            currency=data.currency,
            tiers=data.tiers,
            locale=data.locale,
            period=data.period,
            timezone=data.timezone,
            status=data.status,
            show_cents=data.show_cents,
            starts_at=_instant(data.starts_on, data.timezone),
            ends_at=_instant(data.ends_on, data.timezone),
        ),
    )
    set_donate_settings(
        session, campaign.slug, presets=data.presets, instructions=data.instructions
    )
    if data.cta:
        # The campaign service's own check and column setting (audited as an update).
        update_campaign(session, campaign.slug, {"cta": data.cta}, actor)
    audit(
        session,
        actor=actor,
        action="campaign_created",
        campaign_id=campaign.id,
        details={"slug": campaign.slug, "title": campaign.title},
        address=address,
    )
    return campaign


def edit_from_admin(
    session: Session, slug: str, data: CampaignInput, *, actor: str, address: str | None
) -> Campaign:
    """Apply the form to campaign ``slug``. Flushes; the caller commits.

    The slug changes only while the campaign is a draft (embeds and links name
    it once public); currency, period and timezone only while it has no money
    (the campaign service refuses them).

    :raise CampaignNotFound: for an unknown slug.
    :raise CampaignError: (or a domain error) for any invalid or frozen value.
    """
    campaign = get_campaign(session, slug)
    new_slug = data.slug
    if new_slug != campaign.slug:
        if campaign.status is not CampaignStatus.DRAFT:
            raise CampaignError("the slug is fixed once the campaign is public")
        validate_slug(new_slug)
        if session.scalar(select(exists().where(Campaign.slug == new_slug))):
            raise CampaignError(f"a campaign with slug {new_slug!r} already exists")
    before = {
        "title": campaign.title,
        "status": campaign.status.value,
        "tiers": [t.amount for t in campaign.tiers],
    }
    update_campaign(
        session,
        slug,
        {
            "tiers": list(data.tiers),
            "title": data.title,
            "currency": data.currency,
            "locale": data.locale,
            "period": data.period,
            "timezone": data.timezone,
            "status": data.status,
            "show_cents": data.show_cents,
            "starts_at": _instant(data.starts_on, data.timezone),
            "ends_at": _instant(data.ends_on, data.timezone),
            "cta": data.cta,
        },
        actor,
    )
    campaign.slug = new_slug
    session.flush()
    set_donate_settings(session, new_slug, presets=data.presets, instructions=data.instructions)
    audit(
        session,
        actor=actor,
        action="campaign_edited",
        campaign_id=campaign.id,
        details={
            "before": before,
            "after": {
                "title": campaign.title,
                "status": campaign.status.value,
                "tiers": [t.amount for t in campaign.tiers],
                "slug": new_slug,
            },
        },
        address=address,
    )
    return campaign
