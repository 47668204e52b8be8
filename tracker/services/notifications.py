"""A campaign's notification settings: who hears about it, on which channels, how often."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from tracker.models import Campaign, CampaignNotification, SummaryCadence, utcnow
from tracker.notify.chat import ChatPolicy, ChatUrlError, check_url
from tracker.notify.outbox import Recipients
from tracker.services.campaigns import CampaignError, get_campaign

MAX_RECIPIENTS = 20


@dataclass(frozen=True, slots=True)
class NotificationChanges:
    """What to change; ``None`` leaves a setting as it is, ``""`` clears a text one."""

    emails: str | None = None
    chat_url: str | None = None
    summary: str | None = None
    summary_hour: int | None = None
    thank_you: bool | None = None


def parse_emails(text: str) -> str:
    """Validate a comma-separated list of addresses; return it normalised (``a@x.org,b@y.org``).

    :raise CampaignError: naming the first address that is not one.
    """
    addresses: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            normalized = validate_email(part, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise CampaignError(f"--notify-email {part!r}: {exc}") from None
        if normalized not in addresses:
            addresses.append(normalized)
    if len(addresses) > MAX_RECIPIENTS:
        raise CampaignError(f"at most {MAX_RECIPIENTS} notification addresses")
    return ",".join(addresses)


def notifications_of(
    session: Session, campaign: Campaign, now: datetime | None = None
) -> CampaignNotification:
    """The campaign's settings row, created (everything off) if missing. Flushes.

    A new row remembers where the campaign stands, so milestone alerts are about
    tiers reached from then on, not about tiers reached long ago.
    """
    from tracker.notify.milestones import baseline

    row = session.get(CampaignNotification, campaign.id)
    if row is None:
        row = CampaignNotification(
            campaign_id=campaign.id,
            emails="",
            summary=SummaryCadence.OFF,
            summary_hour=8,
            thank_you=False,
            updated_at=utcnow(),
        )
        baseline(session, campaign, row, now or utcnow())
        session.add(row)
        session.flush()
    return row


def set_notifications(
    session: Session,
    slug: str,
    changes: NotificationChanges,
    policy: ChatPolicy,
    now: datetime | None = None,
) -> CampaignNotification:
    """Change where and when ``slug``'s owners hear about it. Flushes; the caller commits.

    :raise CampaignNotFound: for an unknown slug.
    :raise CampaignError: for an invalid address, webhook URL, cadence or hour.
    """
    from tracker.notify.summaries import skip_to_next

    instant = now or utcnow()
    campaign = get_campaign(session, slug)
    row = notifications_of(session, campaign, instant)
    if changes.emails is not None:
        row.emails = parse_emails(changes.emails)
    if changes.chat_url is not None:
        if changes.chat_url.strip():
            try:
                row.chat_url = check_url(changes.chat_url, policy)
            except ChatUrlError as exc:
                raise CampaignError(f"--notify-chat: {exc}") from None
        else:
            row.chat_url = None
    if changes.summary is not None:
        try:
            row.summary = SummaryCadence(changes.summary.strip().lower())
        except ValueError:
            raise CampaignError(
                f"--summary {changes.summary!r}: choose daily, weekly, monthly or off"
            ) from None
    if changes.summary_hour is not None:
        if not 0 <= changes.summary_hour <= 23:
            raise CampaignError("--summary-hour: a whole hour from 0 to 23")
        row.summary_hour = changes.summary_hour
    if changes.summary is not None or changes.summary_hour is not None:
        # A schedule set at 10:00 for 08:00 starts tomorrow, not with a "missed" one now.
        skip_to_next(row, campaign, instant)
    if changes.thank_you is not None:
        row.thank_you = changes.thank_you
    row.updated_at = utcnow()
    session.flush()
    return row


def recipients(row: CampaignNotification | None) -> Recipients:
    """Where a campaign's owner messages go."""
    if row is None:
        return Recipients()
    emails = tuple(e for e in row.emails.split(",") if e)
    return Recipients(emails, row.chat_url)


def notification_rows(
    session: Session, ids: Sequence[int] | None = None
) -> list[tuple[Campaign, CampaignNotification]]:
    """Every campaign that has settings (or only those of ``ids``), with them."""
    query = select(Campaign, CampaignNotification).join(
        CampaignNotification, CampaignNotification.campaign_id == Campaign.id
    )
    if ids is not None:
        query = query.where(Campaign.id.in_(ids))
    return [(c, n) for c, n in session.execute(query)]
