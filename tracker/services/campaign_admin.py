"""Creating and editing campaigns from the admin, with the CLI's checks, audited.

The checks are the campaign service's own (``create_campaign``,
``update_campaign``, ``set_donate_settings``); this module adds what the
admin needs around them: start and end as local dates, and one audit record
per action (``campaign_created`` with every field, or ``update_campaign``'s own
``campaign_updated`` with the fields that changed), carrying the client address.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from tracker.domain.periods import PeriodKind, parse_timezone
from tracker.models import Campaign, CampaignStatus
from tracker.services.audit import audit
from tracker.services.campaigns import (
    COLUMN_SETTINGS,
    CampaignSpec,
    campaign_snapshot,
    create_campaign,
    update_campaign,
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
    """Create a campaign with its donate settings, audited once. Flushes; the caller commits.

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
    # The campaign service's own check of the column; set here, not through
    # update_campaign, so that creating is one audit record, not two.
    campaign.cta = COLUMN_SETTINGS["cta"](data.cta)
    session.flush()
    audit(
        session,
        actor=actor,
        action="campaign_created",
        campaign_id=campaign.id,
        details={"slug": campaign.slug, "title": campaign.title, **_created(campaign)},
        address=address,
    )
    return campaign


def _created(campaign: Campaign) -> dict[str, object]:
    fields = campaign_snapshot(campaign)
    return {"fields": {k: v for k, v in fields.items() if k not in ("slug", "title")}}


def edit_from_admin(
    session: Session, slug: str, data: CampaignInput, *, actor: str, address: str | None
) -> Campaign:
    """Apply the form to campaign ``slug`` through ``update_campaign``. Flushes; the caller commits.

    One audit record (``campaign_updated``: each changed field, who, the client
    address), none when nothing changed. The slug changes only while the
    campaign is a draft; currency, period and timezone only while it has no
    money (the campaign service refuses them).

    :raise CampaignNotFound: for an unknown slug.
    :raise CampaignError: (or a domain error) for any invalid or frozen value.
    """
    return update_campaign(
        session,
        slug,
        {
            "slug": data.slug,
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
            "presets": data.presets,
            "instructions": data.instructions,
        },
        actor,
        address=address,
    )
