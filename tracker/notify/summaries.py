"""Deciding progress summaries: gathering their facts, writing them to the outbox once.

A scheduled summary is keyed ``summary:<campaign>:<local date of its fire
time>``; whoever writes it first wins and every later attempt writes nothing.
A scheduler that was down across a fire time writes the latest missed summary
when it comes back, if that fire time is within the catch-up window
(``TRACKER_SCHEDULER_CATCHUP_HOURS``, 12 h), and only that one: never one per
missed day.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from tracker.domain.cadence import Cadence
from tracker.domain.ledger import EntryKind
from tracker.domain.money import format_money
from tracker.domain.pace import Target, pace
from tracker.domain.periods import PeriodKind, period_at
from tracker.domain.progress import progress
from tracker.models import (
    Campaign,
    CampaignNotification,
    CampaignStatus,
    LedgerEntry,
    OutboxMessage,
    PeriodTotal,
    Pledge,
    PledgeStatus,
    SummaryCadence,
    utcnow,
)
from tracker.notify import messages
from tracker.notify.context import Context
from tracker.notify.outbox import Outgoing, enqueue
from tracker.services.notifications import notification_rows, notifications_of, recipients

log = logging.getLogger("tracker.notify")

LATEST_MESSAGES = 3


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a summary showed, kept for the next one's "since the previous summary"."""

    period_key: str
    raised: int
    entry_id: int | None


def _money(campaign: Campaign, minor: int, *, missing: bool = False) -> str:
    return format_money(
        minor, campaign.currency, campaign.locale, cents=campaign.show_cents, missing=missing
    )


def _goal(campaign: Campaign, target: Target | None) -> messages.Goal | None:
    if target is None:
        return None
    return messages.Goal(
        label=_money(campaign, target.amount),
        remaining=_money(campaign, target.remaining, missing=True),
        needed_per_day=None
        if target.needed_per_day is None
        else _money(campaign, target.needed_per_day, missing=True),
        projected=None
        if target.projected_at is None
        else messages.local_date(target.projected_at, campaign.timezone, campaign.locale),
        in_time=target.in_time,
    )


def tier_reached_at(session: Session, campaign: Campaign, period_key: str) -> dict[int, datetime]:
    """When each tier of a period was reached, as its milestone alert records it."""
    prefix = f"milestone:{campaign.id}:{period_key}:"
    rows = session.execute(
        select(OutboxMessage.key, OutboxMessage.created_at).where(
            OutboxMessage.campaign_id == campaign.id, OutboxMessage.kind == "milestone"
        )
    )
    reached: dict[int, datetime] = {}
    for key, created in rows:
        if key.startswith(prefix):
            amount = int(key[len(prefix) :].split("|", 1)[0])
            reached[amount] = min(created, reached.get(amount, created))
    return reached


def summary_facts(
    session: Session,
    campaign: Campaign,
    row: CampaignNotification,
    now: datetime,
    context: Context,
) -> tuple[messages.SummaryFacts, Snapshot]:
    """Everything the summary of ``campaign`` at ``now`` says, and what to remember of it."""
    period = period_at(campaign.period, campaign.timezone, now)
    total = session.get(PeriodTotal, (campaign.id, period.key))
    raised = total.raised if total else 0
    ladder = [t.amount for t in campaign.tiers]
    state = progress(raised, ladder)
    reached_at = tier_reached_at(session, campaign, period.key)
    tiers = tuple(
        messages.TierFact(
            t.label or _money(campaign, t.amount),
            s.reached,
            messages.local_date(reached_at[t.amount], campaign.timezone, campaign.locale)
            if s.reached and t.amount in reached_at
            else None,
        )
        for t, s in zip(campaign.tiers, state.tiers, strict=True)
    )

    since_entry = row.last_summary_entry_id or 0
    is_payment = LedgerEntry.kind == EntryKind.PAYMENT
    is_refund = LedgerEntry.kind == EntryKind.REFUND
    new = session.execute(
        select(
            func.count(case((is_payment, 1))),
            func.count(func.distinct(case((is_payment, LedgerEntry.donor_key)))),
            func.count(case((is_refund, 1))),
            func.coalesce(func.sum(case((is_refund, LedgerEntry.amount))), 0),
            func.count(case((LedgerEntry.kind == EntryKind.DISPUTE_LOST, 1))),
            func.max(LedgerEntry.id),
        ).where(
            LedgerEntry.campaign_id == campaign.id,
            LedgerEntry.period_key == period.key,
            LedgerEntry.id > since_entry,
        )
    ).one()
    payments, donors, refunds, refunded, disputes, newest = new
    change = None
    if row.last_summary_period == period.key and row.last_summary_raised is not None:
        difference = raised - row.last_summary_raised
        change = ("-" if difference < 0 else "") + _money(campaign, abs(difference))

    # Counting began at the period's start, else the campaign's, else its first entry
    # (money booked before the campaign row was made, such as imported history).
    since = period.starts_at or campaign.starts_at
    if since is None:
        first = session.scalar(
            select(func.min(LedgerEntry.occurred_at)).where(
                LedgerEntry.campaign_id == campaign.id, LedgerEntry.period_key == period.key
            )
        )
        since = min(campaign.created_at, first or now)
    since = min(since, now)
    ends = [d for d in (period.ends_at, campaign.ends_at) if d is not None]
    deadline = min(ends) if ends else None
    speed = pace(raised, tuple(ladder), since=since, now=now, deadline=deadline)

    latest = session.execute(
        select(Pledge.donor_name, Pledge.anonymous, Pledge.message)
        .where(
            Pledge.campaign_id == campaign.id,
            Pledge.status == PledgeStatus.PAID,
            Pledge.message.is_not(None),
        )
        .order_by(Pledge.paid_at.desc(), Pledge.id.desc())
        .limit(LATEST_MESSAGES)
    ).all()
    donor_messages = tuple(
        ("Anonymous" if anonymous or not name else name, message)
        for name, anonymous, message in latest
        if message
    )
    facts = messages.SummaryFacts(
        title=campaign.title,
        raised=_money(campaign, raised),
        top=_money(campaign, state.top),
        percent=int(state.percent),
        tiers=tiers,
        first=row.last_summary_at is None or row.last_summary_period != period.key,
        period_label=None if campaign.period is PeriodKind.NONE else period.key,
        change=change,
        payments=payments,
        donors=donors,
        refunds=refunds,
        refunded=_money(campaign, -int(refunded)) if refunds else None,
        disputes=disputes,
        next_goal=_goal(campaign, speed.next_tier),
        top_goal=_goal(campaign, speed.top_tier),
        per_day=_money(campaign, speed.per_day),
        days_left=speed.days_left,
        ends_label=None
        if deadline is None
        else messages.local_date(
            deadline - timedelta(microseconds=1), campaign.timezone, campaign.locale
        ),
        messages=donor_messages,
        donate_url=context.url(f"/donate/{campaign.slug}"),
        admin_url=context.url("/admin"),
    )
    newest_id = newest if newest is not None else row.last_summary_entry_id
    return facts, Snapshot(period.key, raised, newest_id)


def build_summary(
    session: Session,
    campaign: Campaign,
    row: CampaignNotification,
    key: str,
    now: datetime,
    context: Context,
) -> tuple[Outgoing, Snapshot]:
    """The summary message under ``key`` and the snapshot to keep once it is written."""
    facts, snapshot = summary_facts(session, campaign, row, now, context)
    return messages.summary(facts, key), snapshot


def _write(
    session: Session,
    campaign: Campaign,
    row: CampaignNotification,
    key: str,
    now: datetime,
    context: Context,
    built: tuple[Outgoing, Snapshot] | None = None,
) -> int:
    message, snapshot = built or build_summary(session, campaign, row, key, now, context)
    created = enqueue(
        session,
        message,
        recipients(row),
        campaign_id=campaign.id,
        mail_from=context.mail_from,
        now=now,
    )
    if created:
        row.last_summary_at = now
        row.last_summary_period = snapshot.period_key
        row.last_summary_raised = snapshot.raised
        row.last_summary_entry_id = snapshot.entry_id
        session.flush()
    return created


def send_summary_now(
    session: Session, campaign: Campaign, now: datetime, context: Context
) -> tuple[Outgoing, int]:
    """A summary asked for by hand (``send-summary``), keyed apart from the scheduled ones.

    :return: the message and how many outbox rows were written (0 without recipients).
    """
    row = notifications_of(session, campaign)
    key = f"summary-manual:{campaign.id}:{now.strftime('%Y-%m-%dT%H:%M:%S')}"
    built = build_summary(session, campaign, row, key, now, context)
    return built[0], _write(session, campaign, row, key, now, context, built)


def due_summaries(
    session: Session, now: datetime | None, catchup: timedelta, context: Context
) -> list[str]:
    """Write every scheduled summary due at ``now`` (or missed within ``catchup``). Flushes.

    :return: the slugs whose summary was written by this call.
    """
    instant = now or utcnow()
    written: list[str] = []
    for campaign, row in notification_rows(session):
        if row.summary is SummaryCadence.OFF or campaign.status is not CampaignStatus.ACTIVE:
            continue
        if not recipients(row):
            continue
        fire = Cadence(row.summary.value, row.summary_hour, campaign.timezone).latest_until(instant)
        day = fire.local_date.isoformat()
        if row.summary_fired_on is not None and row.summary_fired_on >= day:
            continue
        row.summary_fired_on = day
        if instant - fire.at > catchup:
            log.info(
                "summary of %s due at %s missed beyond the catch-up window", campaign.slug, fire.at
            )
            continue
        if _write(session, campaign, row, f"summary:{campaign.id}:{day}", instant, context):
            written.append(campaign.slug)
    session.flush()
    return written


def skip_to_next(row: CampaignNotification, campaign: Campaign, now: datetime) -> None:
    """Mark the latest fire time as done: a cadence set now starts at its next fire time."""
    if row.summary is SummaryCadence.OFF:
        return
    fire = Cadence(row.summary.value, row.summary_hour, campaign.timezone).latest_until(now)
    row.summary_fired_on = fire.local_date.isoformat()
