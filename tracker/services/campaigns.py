"""Creating, changing and finding campaigns with their tier ladders."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload

from tracker.domain.money import (
    MoneyError,
    normalize_currency,
    normalize_locale,
    parse_amount,
    validate_amount_pattern,
)
from tracker.domain.periods import PeriodKind, parse_timezone
from tracker.domain.progress import validate_tiers
from tracker.models import Campaign, CampaignStatus, LedgerEntry, Tier, utcnow
from tracker.services.audit import audit

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
    # A Babel number pattern such as "#,##0 ¤"; None or "" uses the locale's.
    amount_pattern: str | None = None


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
    try:
        # The currency first: an unknown one is not the fault of the first tier.
        currency = normalize_currency(currency)
    except MoneyError as exc:
        raise CampaignError(str(exc)) from None
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
    spec.amount_pattern = (
        validate_amount_pattern(spec.amount_pattern) if spec.amount_pattern else None
    )


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
        amount_pattern=spec.amount_pattern,
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
# Checked together, as create_campaign checks them (through a CampaignSpec).
_EDITABLE = {
    "title",
    "locale",
    "status",
    "show_cents",
    "starts_at",
    "ends_at",
    "amount_pattern",
    *_FROZEN_ONCE_FUNDED,
}
# Settings of the donate page, kept by tracker.services.pledges.set_donate_settings.
_DONATE_SETTINGS = {"presets": "preset_amounts", "instructions": "payment_instructions"}
MAX_CTA = 120


def validate_cta(text: str | None) -> str | None:
    """A call to action as stored: stripped, ``None`` when empty.

    :raise CampaignError: if it is longer than 120 characters or holds control characters.
    """
    cta = (text or "").strip()
    if len(cta) > MAX_CTA:
        raise CampaignError(f"the call to action must be at most {MAX_CTA} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in cta):
        raise CampaignError("the call to action must be one line of text")
    return cta or None


# Campaign columns that stand alone: each is checked by its own function, which
# returns the value to store or raises CampaignError. A new setting of this kind
# is one entry here and one option of ``set-campaign``.
COLUMN_SETTINGS: dict[str, Callable[[Any], Any]] = {"cta": validate_cta}


def _changeable() -> frozenset[str]:
    return frozenset(
        {*_EDITABLE, *COLUMN_SETTINGS, "slug", "tiers", "tier_labels", *_DONATE_SETTINGS}
    )


def _audit_value(value: Any) -> Any:
    # Audit details are JSON: enums by value, instants as ISO text.
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_audit_value(v) for v in value]
    return value


def campaign_snapshot(campaign: Campaign) -> dict[str, Any]:
    """Every field ``update_campaign`` can change, as JSON values (what an audit record holds)."""
    state = {name: getattr(campaign, name) for name in ("slug", *_EDITABLE, *COLUMN_SETTINGS)}
    state["tiers"] = [t.amount for t in campaign.tiers]
    state["tier_labels"] = [t.label for t in campaign.tiers]
    for key, column in _DONATE_SETTINGS.items():
        state[key] = getattr(campaign, column)
    return {name: _audit_value(value) for name, value in state.items()}


def update_campaign(
    session: Session,
    slug: str,
    changes: Mapping[str, Any],
    actor: str,
    *,
    address: str | None = None,
) -> Campaign:
    """Apply ``changes`` to campaign ``slug`` and audit them. Flushes; the caller commits.

    The one audited path for changing a campaign (``set-campaign`` and the
    admin's edit form both call it). Every value is checked as
    ``create_campaign`` checks it; currency, period and timezone are fixed once
    the campaign has ledger entries (changing them would move money already
    counted); the slug changes only while the campaign is a draft (embeds and
    links name it once public). What actually changed is written to one
    ``campaign_updated`` audit event (``{"changes": {field: {"from", "to"}}}``)
    with who and from which address; setting a field to the value it has is
    not audited.

    :param changes: field → new value. ``title``, ``locale``, ``status``
        (:class:`CampaignStatus`), ``show_cents``, ``starts_at``, ``ends_at``,
        ``cta`` (``""`` or ``None`` clears), ``currency``, ``period``
        (:class:`PeriodKind`), ``timezone``, ``tiers`` (minor units, the whole
        ladder) with optional ``tier_labels``, and the donate page's ``presets``
        and ``instructions`` (as :func:`tracker.services.pledges.set_donate_settings`
        takes them). A new stand-alone column is one more entry of
        :data:`COLUMN_SETTINGS`.
    :param actor: who asks (``cli:alice``, an admin's name), for the audit trail.
    :param address: the client address when asked over HTTP (None from the CLI).
    :returns: the campaign.
    :raise CampaignNotFound: if no campaign has ``slug``.
    :raise CampaignError: for an unknown field or an invalid value.
    """
    unknown = set(changes) - _changeable()
    if unknown:
        raise CampaignError(f"cannot change {', '.join(sorted(unknown))}")
    campaign = get_campaign(session, slug)
    new_slug = changes.get("slug", campaign.slug)
    if new_slug != campaign.slug:
        # Checked first, on the status before this change: a draft may be
        # renamed in the same edit that publishes it.
        if campaign.status is not CampaignStatus.DRAFT:
            raise CampaignError("the slug is fixed once the campaign is public")
        validate_slug(new_slug)
        if session.scalar(select(exists().where(Campaign.slug == new_slug))):
            raise CampaignError(f"a campaign with slug {new_slug!r} already exists")
    before = campaign_snapshot(campaign)
    columns = {k: COLUMN_SETTINGS[k](v) for k, v in changes.items() if k in COLUMN_SETTINGS}
    fields = {k: v for k, v in changes.items() if k in _EDITABLE}
    tiers = changes.get("tiers")
    if tiers is None and "tier_labels" in changes:
        tiers = [t.amount for t in campaign.tiers]  # new labels on the same ladder
    _apply_fields(session, campaign, fields, tiers, changes.get("tier_labels", ()))
    if columns:
        for name, value in columns.items():
            setattr(campaign, name, value)
        campaign.version += 1
        campaign.updated_at = utcnow()
        session.flush()
    settings = {k: changes[k] for k in _DONATE_SETTINGS if k in changes}
    if settings:
        # Imported here: the pledges service itself builds on this module.
        from tracker.services.pledges import set_donate_settings

        set_donate_settings(session, slug, **settings)
    if new_slug != campaign.slug:
        campaign.slug = new_slug
        campaign.version += 1
        campaign.updated_at = utcnow()
        session.flush()
    after = campaign_snapshot(campaign)
    moved = {
        name: {"from": before[name], "to": after[name]}
        for name in sorted(after)
        if before[name] != after[name]
    }
    if moved:
        audit(
            session,
            actor=actor,
            action="campaign_updated",
            campaign_id=campaign.id,
            details={"changes": moved},
            address=address,
        )
    return campaign


def _apply_fields(
    session: Session,
    campaign: Campaign,
    changes: Mapping[str, Any],
    tiers: Sequence[int] | None,
    tier_labels: Sequence[str | None],
) -> None:
    if not changes and tiers is None:
        return
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
        amount_pattern=campaign.amount_pattern,
    )
    for name, value in changes.items():
        setattr(spec, name, value)
    try:
        _check(spec)
        spec.status = CampaignStatus(spec.status)
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


def get_campaign(
    session: Session, slug: str, *, public: bool = False, joined: bool = False
) -> Campaign:
    """Load a campaign with its tiers.

    :param joined: load the tiers in the same statement (a join) rather than a
        second one: one round trip less, for the admin's pages that send many.
    :raise CampaignNotFound: if there is none, or (with ``public=True``) it is a draft.
    """
    if not isinstance(slug, str) or not _SLUG.fullmatch(slug):
        # No campaign can have it; and a stranger's NUL byte in a URL would make
        # PostgreSQL refuse the query itself (a 500 instead of a 404).
        raise CampaignNotFound(f"no campaign {slug!r}")
    load = joinedload(Campaign.tiers) if joined else selectinload(Campaign.tiers)
    query = select(Campaign).where(Campaign.slug == slug).options(load)
    campaign = session.scalars(query).unique().one_or_none()
    if campaign is None or (public and campaign.status is CampaignStatus.DRAFT):
        raise CampaignNotFound(f"no campaign {slug!r}")
    return campaign


def has_ended(campaign: Campaign, instant: datetime) -> bool:
    """Whether ``campaign`` is over at ``instant``: closed, or past its end date.

    The two cases in which ``services.pledges.closed_reason`` says the campaign
    "no longer takes donations"; the embeds then show final figures and no Donate.
    """
    if campaign.status is CampaignStatus.CLOSED:
        return True
    return campaign.ends_at is not None and instant >= campaign.ends_at
