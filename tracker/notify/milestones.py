"""The milestone check: alerts when a period's total reaches a tier, period reports when a
period ends, and thank-you notes for new payments.

The check runs every few seconds. A campaign whose totals row has not moved
since the last check costs one comparison: the row's ``version`` is compared
with the one remembered in ``campaign_notifications``; only a campaign with new
entries is looked at further, and its ledger is never scanned.

Policy: one alert per (campaign, period, tier), ever. A refund that takes the
total back under a tier and a payment that crosses it again send nothing more:
the alert's key is already in the outbox.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from tracker.domain.ledger import EntryKind
from tracker.domain.money import format_money
from tracker.domain.periods import PeriodKind, period_at, period_from_key
from tracker.domain.progress import progress
from tracker.models import (
    Campaign,
    CampaignNotification,
    LedgerEntry,
    PeriodTotal,
    Pledge,
    utcnow,
)
from tracker.notify import messages
from tracker.notify.context import Context
from tracker.notify.outbox import Recipients, enqueue
from tracker.services.notifications import notification_rows, recipients

log = logging.getLogger("tracker.notify")


@dataclass(slots=True)
class CheckReport:
    """What a check did."""

    looked_at: int = 0
    alerts: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    thanks: int = 0


def _money(campaign: Campaign, minor: int) -> str:
    return format_money(minor, campaign.currency, campaign.locale, cents=campaign.show_cents)


def _alerts(
    session: Session,
    campaign: Campaign,
    to: Recipients,
    period_key: str,
    before: int,
    raised: int,
    context: Context,
    now: datetime,
) -> list[str]:
    ladder = [t.amount for t in campaign.tiers]
    state = progress(raised, ladder)
    sent = []
    for tier, tier_state in zip(campaign.tiers, state.tiers, strict=True):
        if tier.amount <= 0 or not tier_state.reached or before >= tier.amount:
            # A 0 tier is where the bar starts, not a milestone; a tier the total was
            # already at is not news (its alert, if any, went out then).
            continue
        key = f"milestone:{campaign.id}:{period_key}:{tier.amount}"
        message = messages.milestone(
            title=campaign.title,
            tier=tier.label or _money(campaign, tier.amount),
            raised=_money(campaign, raised),
            top=_money(campaign, state.top),
            percent=int(state.percent),
            is_top=tier.amount == state.top,
            key=key,
            url=context.url(f"/donate/{campaign.slug}"),
        )
        if enqueue(
            session, message, to, campaign_id=campaign.id, mail_from=context.mail_from, now=now
        ):
            sent.append(key)
    return sent


def _report(
    session: Session,
    campaign: Campaign,
    to: Recipients,
    ended_key: str,
    context: Context,
    now: datetime,
) -> str | None:
    ended = session.get(PeriodTotal, (campaign.id, ended_key))
    raised = ended.raised if ended else 0
    state = progress(raised, [t.amount for t in campaign.tiers])
    start = period_from_key(campaign.period, campaign.timezone, ended_key).starts_at
    previous = None
    if start is not None:
        before = period_at(campaign.period, campaign.timezone, start - timedelta(microseconds=1))
        prior = session.get(PeriodTotal, (campaign.id, before.key))
        previous = _money(campaign, prior.raised if prior else 0)
    key = f"report:{campaign.id}:{ended_key}"
    message = messages.period_report(
        title=campaign.title,
        period_label=ended_key,
        raised=_money(campaign, raised),
        donors=ended.donors if ended else 0,
        payments=ended.payments if ended else 0,
        tiers_reached=tuple(
            t.label or _money(campaign, t.amount)
            for t, s in zip(campaign.tiers, state.tiers, strict=True)
            if s.reached and t.amount > 0
        ),
        previous=previous,
        key=key,
    )
    created = enqueue(
        session, message, to, campaign_id=campaign.id, mail_from=context.mail_from, now=now
    )
    return key if created else None


def _thank(
    session: Session, campaign: Campaign, row: CampaignNotification, context: Context, now: datetime
) -> int:
    if row.thanked_entry_id is None:
        # Just switched on: thank donors from now on, not the whole history.
        row.thanked_entry_id = _newest_entry(session, campaign) or 0
        return 0
    since = row.thanked_entry_id
    entries = session.execute(
        select(LedgerEntry.id, LedgerEntry.amount, Pledge.donor_email, Pledge.donor_name)
        .join(Pledge, Pledge.id == LedgerEntry.pledge_id)
        .where(
            LedgerEntry.campaign_id == campaign.id,
            LedgerEntry.id > since,
            LedgerEntry.kind == EntryKind.PAYMENT,
        )
        .order_by(LedgerEntry.id)
    ).all()
    written = 0
    for entry_id, amount, email, name in entries:
        row.thanked_entry_id = max(row.thanked_entry_id or 0, entry_id)
        if not email:
            continue
        message = messages.thank_you(
            title=campaign.title,
            amount=_money(campaign, amount),
            name=name,
            key=f"thanks:{entry_id}",
            url=context.url(f"/donate/{campaign.slug}"),
            locale=campaign.locale,
        )
        written += enqueue(
            session,
            message,
            Recipients((email,)),
            campaign_id=campaign.id,
            mail_from=context.mail_from,
            ledger_entry_id=entry_id,
            now=now,
        )
    return written


def baseline(
    session: Session, campaign: Campaign, row: CampaignNotification, now: datetime
) -> None:
    """Remember where the campaign stands, so alerts start from what happens next."""
    period = period_at(campaign.period, campaign.timezone, now)
    total = session.get(PeriodTotal, (campaign.id, period.key))
    row.checked_period = period.key
    row.checked_version = total.version if total else 0
    row.checked_raised = total.raised if total else 0
    row.thanked_entry_id = _newest_entry(session, campaign) or 0


def _newest_entry(session: Session, campaign: Campaign) -> int | None:
    return session.scalar(
        select(LedgerEntry.id)
        .where(LedgerEntry.campaign_id == campaign.id)
        .order_by(LedgerEntry.id.desc())
        .limit(1)
    )


def check(session: Session, context: Context, now: datetime | None = None) -> CheckReport:
    """Alert on tiers reached, report ended periods, thank new donors. Flushes only."""
    instant = now or utcnow()
    report = CheckReport()
    # First the few columns that tell whether anything is new, as plain tuples:
    # a quiet campaign costs one row of this and one of the totals below, never
    # the loading of its campaign, tiers and settings as objects.
    light = session.execute(
        select(
            Campaign.id,
            Campaign.period,
            Campaign.timezone,
            CampaignNotification.checked_period,
            CampaignNotification.checked_version,
        ).join(CampaignNotification, CampaignNotification.campaign_id == Campaign.id)
    ).all()
    if not light:
        return report
    periods = {cid: period_at(kind, zone, instant).key for cid, kind, zone, _, _ in light}
    totals: dict[tuple[int, str], tuple[int, int]] = {
        (cid, key): (version, raised)
        for cid, key, version, raised in session.execute(
            select(
                PeriodTotal.campaign_id,
                PeriodTotal.period_key,
                PeriodTotal.version,
                PeriodTotal.raised,
            ).where(
                tuple_(PeriodTotal.campaign_id, PeriodTotal.period_key).in_(list(periods.items()))
            )
        )
    }
    changed = [
        cid
        for cid, _, _, checked_period, checked_version in light
        if not (
            checked_period == periods[cid]
            and checked_version == totals.get((cid, periods[cid]), (0, 0))[0]
        )
    ]
    if not changed:
        return report  # nothing new anywhere: the whole cost of a quiet check
    rows = notification_rows(session, changed)
    for campaign, row in rows:
        key = periods[campaign.id]
        version, raised = totals.get((campaign.id, key), (0, 0))
        if row.checked_period == key and row.checked_version == version:
            continue  # changed between the two reads: the next check sees it
        report.looked_at += 1
        if row.checked_period is None:
            baseline(session, campaign, row, instant)
            continue
        to = recipients(row)
        if row.checked_period != key and campaign.period is not PeriodKind.NONE and to:
            done = _report(session, campaign, to, row.checked_period, context, instant)
            if done:
                report.reports.append(done)
        before = row.checked_raised if row.checked_period == key else 0
        if to:
            report.alerts += _alerts(
                session, campaign, to, key, before or 0, raised, context, instant
            )
        if row.thank_you:
            report.thanks += _thank(session, campaign, row, context, instant)
        else:
            row.thanked_entry_id = None
        row.checked_period = key
        row.checked_version = version
        row.checked_raised = raised
    session.flush()
    return report
