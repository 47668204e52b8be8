"""Pledges made on the donate page: created pending, never credited here.

Only the Stripe webhooks (or an admin booking offline money) turn a pledge into
ledger entries; these functions record the donor's intent and Stripe's
Checkout Session id, and read a pledge back for the donor's own pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tracker.domain.money import N_, MoneyError, parse_amount
from tracker.domain.presets import MAX_PRESETS, presets_for
from tracker.models import (
    AMOUNT_LIMIT,
    Campaign,
    CampaignStatus,
    Pledge,
    PledgeFrequency,
    PledgeSource,
    PledgeStatus,
    utcnow,
)
from tracker.services.campaigns import CampaignError, CampaignNotFound, get_campaign

MAX_NAME = 200
MAX_EMAIL = 320
MAX_MESSAGE = 1000
MAX_INSTRUCTIONS = 5000


class PledgeError(ValueError):
    """A pledge that cannot be recorded as asked; ``str()`` is the message."""


class CampaignClosed(PledgeError):
    """The campaign exists but takes no pledges now (closed, ended or not started)."""


class PledgeNotFound(LookupError):
    """No pledge with that id on that campaign."""


@dataclass(frozen=True, slots=True)
class PledgeInput:
    """A donor's validated entries. ``amount`` is in minor units of the campaign's currency."""

    amount: int
    frequency: PledgeFrequency
    email: str
    name: str | None = None
    message: str | None = None
    anonymous: bool = False


@dataclass(frozen=True, slots=True)
class DonatePage:
    """What the donate page needs to know about a public campaign."""

    campaign: Campaign
    presets: tuple[int, ...]
    closed_reason: str | None


def closed_reason(campaign: Campaign, now: datetime | None = None) -> str | None:
    """Why ``campaign`` takes no pledges right now, or ``None`` when it does.

    :param campaign: the campaign.
    :param now: the instant to judge at (default: now).
    :returns: a sentence for the donor (English; the page translates it), or ``None``.
    """
    instant = now or utcnow()
    if campaign.status is not CampaignStatus.ACTIVE:
        return N_("This campaign is closed and no longer takes donations.")
    if campaign.ends_at is not None and instant >= campaign.ends_at:
        return N_("This campaign has ended and no longer takes donations.")
    if campaign.starts_at is not None and instant < campaign.starts_at:
        return N_("This campaign has not started yet.")
    return None


def donate_page(session: Session, slug: str) -> DonatePage:
    """Load a public campaign with its suggested amounts and whether it takes pledges.

    :param session: a database session.
    :param slug: the campaign's slug.
    :returns: the campaign, its presets (minor units) and why it is closed, if it is.
    :raise CampaignNotFound: for an unknown slug or a draft campaign.
    """
    campaign = get_campaign(session, slug, public=True)
    presets = presets_for(
        campaign.preset_amounts, [t.amount for t in campaign.tiers], campaign.currency
    )
    return DonatePage(campaign, presets, closed_reason(campaign))


def _check(data: PledgeInput) -> None:
    # The form validated all of this; the service checks again so no other
    # caller can store a pledge the donate page would have refused.
    if not isinstance(data.amount, int) or isinstance(data.amount, bool):
        raise PledgeError("the amount must be an integer number of minor units")
    if not 0 < data.amount < AMOUNT_LIMIT:
        raise PledgeError("the amount must be positive")
    if not isinstance(data.frequency, PledgeFrequency):
        raise PledgeError("choose one-time or monthly")
    if not data.email or len(data.email) > MAX_EMAIL or "@" not in data.email:
        raise PledgeError("an e-mail address is required")
    if data.name is not None and len(data.name) > MAX_NAME:
        raise PledgeError(f"the name is longer than {MAX_NAME} characters")
    if data.message is not None and len(data.message) > MAX_MESSAGE:
        raise PledgeError(f"the message is longer than {MAX_MESSAGE:,} characters")


def create_pledge(
    session: Session, slug: str, data: PledgeInput, *, source: PledgeSource
) -> Pledge:
    """Record a pending pledge on the public campaign ``slug``. Flushes; the caller commits.

    The pledge is a promise only: nothing is added to any total.

    :param session: a write session.
    :param slug: the campaign's slug.
    :param data: the donor's validated entries.
    :param source: ``stripe`` (to be paid through Checkout) or ``offline``.
    :returns: the new pledge, with its id.
    :raise CampaignNotFound: for an unknown slug or a draft campaign.
    :raise CampaignClosed: when the campaign takes no pledges now.
    :raise PledgeError: for an entry the donate form should have refused.
    """
    campaign = get_campaign(session, slug, public=True)
    reason = closed_reason(campaign)
    if reason:
        raise CampaignClosed(reason)
    _check(data)
    pledge = Pledge(
        campaign_id=campaign.id,
        amount=data.amount,
        currency=campaign.currency,
        frequency=data.frequency,
        donor_name=data.name or None,
        donor_email=data.email,
        message=data.message or None,
        anonymous=data.anonymous,
        source=source,
        status=PledgeStatus.PENDING,
    )
    session.add(pledge)
    session.flush()
    return pledge


def _pledge(session: Session, pledge_id: int, slug: str | None = None) -> Pledge:
    query = select(Pledge).where(Pledge.id == pledge_id)
    if slug is not None:
        query = query.join(Campaign, Campaign.id == Pledge.campaign_id).where(Campaign.slug == slug)
    pledge = session.scalar(query)
    if pledge is None:
        raise PledgeNotFound(f"no pledge {pledge_id}")
    return pledge


def attach_checkout_session(session: Session, pledge_id: int, checkout_session_id: str) -> None:
    """Remember the Checkout Session created for a pledge. Flushes; the caller commits.

    :param session: a write session.
    :param pledge_id: the pledge.
    :param checkout_session_id: Stripe's ``cs_...`` id.
    :raise PledgeNotFound: if the pledge does not exist.
    """
    pledge = _pledge(session, pledge_id)
    pledge.stripe_checkout_session_id = checkout_session_id
    pledge.updated_at = utcnow()
    session.flush()


def mark_checkout_failed(session: Session, pledge_id: int) -> None:
    """Mark a pledge whose Checkout Session could not be created as failed.

    The donor never reached Stripe, so the pledge can never be paid; leaving it
    pending would show admins a promise nobody can keep. A pledge a webhook
    already moved on is left alone. Flushes; the caller commits.

    :param session: a write session.
    :param pledge_id: the pledge.
    :raise PledgeNotFound: if the pledge does not exist.
    """
    pledge = _pledge(session, pledge_id)
    if pledge.status is PledgeStatus.PENDING:
        pledge.status = PledgeStatus.FAILED
        pledge.updated_at = utcnow()
        session.flush()


@dataclass(frozen=True, slots=True)
class PledgeView:
    """A pledge as its donor may see it again (thanks page, cancel page)."""

    id: int
    campaign_slug: str
    amount: int
    currency: str
    frequency: PledgeFrequency
    source: PledgeSource
    status: PledgeStatus
    name: str | None
    email: str | None
    message: str | None
    anonymous: bool
    checkout_session_id: str | None
    paid: bool = False  # money was received for it (a canceled monthly pledge may have)


def pledge_for_donor(session: Session, slug: str, pledge_id: int) -> PledgeView:
    """Read a pledge of campaign ``slug`` back; read-only, changes nothing.

    Callers must only pass an id that came from a token they signed: this
    returns the donor's e-mail address.

    :param session: any session.
    :param slug: the campaign the pledge must belong to.
    :param pledge_id: the pledge's id.
    :returns: the pledge's donor-visible fields and status.
    :raise PledgeNotFound: if there is no such pledge on that campaign.
    """
    pledge = _pledge(session, pledge_id, slug)
    return PledgeView(
        id=pledge.id,
        campaign_slug=slug,
        amount=pledge.amount,
        currency=pledge.currency,
        frequency=pledge.frequency,
        source=pledge.source,
        status=pledge.status,
        name=pledge.donor_name,
        email=pledge.donor_email,
        message=pledge.message,
        anonymous=pledge.anonymous,
        checkout_session_id=pledge.stripe_checkout_session_id,
        paid=pledge.paid_at is not None,
    )


def set_donate_settings(
    session: Session,
    slug: str,
    *,
    presets: str | None = None,
    instructions: str | None = None,
) -> Campaign:
    """Change a campaign's suggested amounts and/or offline payment instructions.

    Flushes; the caller commits. ``None`` leaves a setting as it is; an empty
    string clears it (the page then derives presets from the tiers, and offline
    donors are told the organisers will write to them).

    :param session: a write session.
    :param slug: the campaign (drafts included: set it up before publishing).
    :param presets: major units, comma-separated (``"10,25,50"``), at most 6.
    :param instructions: how to pay offline (bank details, address), ≤ 5,000 characters.
    :returns: the campaign.
    :raise CampaignNotFound: for an unknown slug.
    :raise CampaignError: for an unreadable amount, too many presets or too long instructions.
    """
    campaign = get_campaign(session, slug)
    if presets is not None:
        amounts: set[int] = set()
        for part in (p.strip() for p in presets.split(",")):
            if not part:
                continue
            try:
                amounts.add(parse_amount(part, campaign.currency, "en_US"))
            except MoneyError as exc:
                raise CampaignError(f"preset {part!r}: {exc}") from None
        if len(amounts) > MAX_PRESETS:
            raise CampaignError(f"at most {MAX_PRESETS} suggested amounts")
        campaign.preset_amounts = ",".join(str(a) for a in sorted(amounts))
    if instructions is not None:
        text = instructions.strip()
        if len(text) > MAX_INSTRUCTIONS:
            raise CampaignError(f"the instructions are longer than {MAX_INSTRUCTIONS:,} characters")
        campaign.payment_instructions = text or None
    campaign.version += 1
    campaign.updated_at = utcnow()
    session.flush()
    return campaign


__all__ = [
    "CampaignClosed",
    "CampaignNotFound",
    "DonatePage",
    "PledgeError",
    "PledgeInput",
    "PledgeNotFound",
    "PledgeView",
    "attach_checkout_session",
    "closed_reason",
    "create_pledge",
    "donate_page",
    "mark_checkout_failed",
    "pledge_for_donor",
    "set_donate_settings",
]
