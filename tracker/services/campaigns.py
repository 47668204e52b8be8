"""Creating, changing and finding campaigns with their tier ladders."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from tracker.domain.money import MoneyError, normalize_currency, normalize_locale, parse_amount
from tracker.domain.periods import PeriodKind, parse_timezone
from tracker.domain.progress import validate_tiers
from tracker.models import Campaign, CampaignStatus, LedgerEntry, Tier, utcnow

_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")


class CampaignError(ValueError):
    """A campaign that cannot be created or changed as asked; ``str()`` is the message."""


class CampaignNotFound(LookupError):
    """No campaign (or no public campaign) has that slug."""


@dataclass(slots=True)
class CampaignSpec:
    """Everything needed to create a campaign. Tier amounts are minor units."""

    slug: str
    title: str
    currency: str
    tiers: Sequence[int]
    locale: str = "en_US"
    period: PeriodKind = PeriodKind.NONE
    timezone: str = "UTC"
    status: CampaignStatus = CampaignStatus.ACTIVE
    show_cents: bool = False
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    tier_labels: Sequence[str | None] = field(default_factory=tuple)


def validate_slug(slug: str) -> str:
    """Return ``slug`` if it is lower-case letters, digits and inner hyphens (≤ 64).

    :raise CampaignError: otherwise.
    """
    if not isinstance(slug, str) or not _SLUG.fullmatch(slug):
        raise CampaignError(f"bad slug {slug!r}: use 1-64 lower-case letters, digits and hyphens")
    return slug


def parse_tiers(text: str, currency: str) -> list[int]:
    """Parse a tier list typed as major units, comma-separated (``"0,2500,5000"``).

    :raise CampaignError: naming the tier that could not be read or the ladder's fault.
    """
    parts = [p.strip() for p in (text or "").split(",")]
    if not parts or any(p == "" for p in parts):
        raise CampaignError("give tiers as amounts separated by commas, e.g. 0,2500,5000")
    amounts = []
    for part in parts:
        try:
            amounts.append(parse_amount(part, currency, "en_US", allow_zero=True))
        except MoneyError as exc:
            raise CampaignError(f"tier {part!r}: {exc}") from None
    return list(validate_tiers(amounts))


def _check(spec: CampaignSpec) -> None:
    validate_slug(spec.slug)
    title = (spec.title or "").strip()
    if not title or len(title) > 200:
        raise CampaignError("the title must be 1 to 200 characters")
    spec.title = title
    spec.currency = normalize_currency(spec.currency)
    spec.locale = normalize_locale(spec.locale)
    spec.timezone = parse_timezone(spec.timezone)
    spec.tiers = list(validate_tiers(spec.tiers))
    if spec.starts_at and spec.ends_at and spec.ends_at <= spec.starts_at:
        raise CampaignError("the end must come after the start")
    if len(spec.tier_labels) > len(spec.tiers):
        raise CampaignError("more tier labels than tiers")


def create_campaign(session: Session, spec: CampaignSpec) -> Campaign:
    """Create a campaign with its tiers. Flushes; the caller commits.

    :raise CampaignError: if a value is invalid or the slug is taken.
    """
    try:
        _check(spec)
    except (MoneyError, ValueError) as exc:
        raise CampaignError(str(exc)) from None
    if session.scalar(select(exists().where(Campaign.slug == spec.slug))):
        raise CampaignError(f"a campaign with slug {spec.slug!r} already exists")
    campaign = Campaign(
        slug=spec.slug,
        title=spec.title,
        currency=spec.currency,
        locale=spec.locale,
        status=spec.status,
        show_cents=spec.show_cents,
        period=spec.period,
        timezone=spec.timezone,
        starts_at=spec.starts_at,
        ends_at=spec.ends_at,
    )
    campaign.tiers = _tier_rows(spec.tiers, spec.tier_labels)
    session.add(campaign)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise CampaignError(f"a campaign with slug {spec.slug!r} already exists") from None
    return campaign


def _tier_rows(amounts: Sequence[int], labels: Sequence[str | None]) -> list[Tier]:
    padded = list(labels) + [None] * (len(amounts) - len(labels))
    return [
        Tier(position=i, amount=a, label=(lbl or None))
        for i, (a, lbl) in enumerate(zip(amounts, padded, strict=True))
    ]


# Fields that decide which period and currency past entries were booked in.
_FROZEN_ONCE_FUNDED = ("currency", "period", "timezone")
_EDITABLE = {
    "title",
    "locale",
    "status",
    "show_cents",
    "starts_at",
    "ends_at",
    *_FROZEN_ONCE_FUNDED,
}


def update_campaign(
    session: Session,
    slug: str,
    *,
    tiers: Sequence[int] | None = None,
    tier_labels: Sequence[str | None] = (),
    **changes: Any,
) -> Campaign:
    """Change a campaign's fields and/or replace its tier ladder. Flushes; the caller commits.

    Currency, period and timezone are fixed once the campaign has ledger entries:
    changing them would move money already counted.

    :raise CampaignNotFound: if no campaign has ``slug``.
    :raise CampaignError: for an unknown field or an invalid value.
    """
    campaign = get_campaign(session, slug)
    unknown = set(changes) - _EDITABLE
    if unknown:
        raise CampaignError(f"cannot change {', '.join(sorted(unknown))}")
    spec = CampaignSpec(
        slug=campaign.slug,
        title=campaign.title,
        currency=campaign.currency,
        tiers=[t.amount for t in campaign.tiers] if tiers is None else tiers,
        locale=campaign.locale,
        period=campaign.period,
        timezone=campaign.timezone,
        status=campaign.status,
        show_cents=campaign.show_cents,
        starts_at=campaign.starts_at,
        ends_at=campaign.ends_at,
        tier_labels=tier_labels if tiers is not None else [t.label for t in campaign.tiers],
    )
    for name, value in changes.items():
        setattr(spec, name, value)
    try:
        _check(spec)
    except (MoneyError, ValueError) as exc:
        raise CampaignError(str(exc)) from None
    moving = [n for n in _FROZEN_ONCE_FUNDED if getattr(spec, n) != getattr(campaign, n)]
    if moving and session.scalar(select(exists().where(LedgerEntry.campaign_id == campaign.id))):
        raise CampaignError(f"cannot change {', '.join(moving)}: the campaign has payments")
    for name in _EDITABLE:
        setattr(campaign, name, getattr(spec, name))
    if tiers is not None:
        campaign.tiers.clear()
        session.flush()  # free the (campaign, position) keys before reusing them
        campaign.tiers.extend(_tier_rows(spec.tiers, spec.tier_labels))
    campaign.version += 1
    campaign.updated_at = utcnow()
    session.flush()
    return campaign


def get_campaign(session: Session, slug: str, *, public: bool = False) -> Campaign:
    """Load a campaign with its tiers.

    :raise CampaignNotFound: if there is none, or (with ``public=True``) it is a draft.
    """
    if not isinstance(slug, str) or not _SLUG.fullmatch(slug):
        # No campaign can have it; and a stranger's NUL byte in a URL would make
        # PostgreSQL refuse the query itself (a 500 instead of a 404).
        raise CampaignNotFound(f"no campaign {slug!r}")
    campaign = session.scalar(
        select(Campaign).where(Campaign.slug == slug).options(selectinload(Campaign.tiers))
    )
    if campaign is None or (public and campaign.status is CampaignStatus.DRAFT):
        raise CampaignNotFound(f"no campaign {slug!r}")
    return campaign
