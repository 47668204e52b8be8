"""What the admin's dashboard and campaign pages show, read from aggregates.

Every figure here comes from the totals rows, the per-day rows, or an index
range bounded by time or a small limit, never from a scan of the ledger: the
pages cost the same at 1,000 or 1,000,000 entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from statistics import median
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from tracker.domain.chart import Chart, build_chart
from tracker.domain.ledger import EntryKind
from tracker.domain.money import format_money
from tracker.domain.periods import Period, period_at
from tracker.domain.progress import Progress, progress
from tracker.models import (
    Campaign,
    DailyTotal,
    InboxStatus,
    LedgerEntry,
    OutboxMessage,
    OutboxStatus,
    PeriodTotal,
    Pledge,
    PledgeFrequency,
    PledgeStatus,
    StripeEvent,
    StripePayment,
    utcnow,
)
from tracker.services.campaigns import get_campaign

# A deferred event older than this needs a person (its payment never came).
LONG_DEFERRED = timedelta(hours=24)
# Days a campaign without periods shows on its chart.
CHART_DAYS = 90
# The median gift is taken over this many latest payments of the period.
MEDIAN_SAMPLE = 1000


@dataclass(frozen=True, slots=True)
class Money:
    """An amount with its display."""

    minor: int
    text: str


@dataclass(frozen=True, slots=True)
class CampaignRow:
    """One line of the dashboard."""

    slug: str
    title: str
    status: str
    currency: str
    period: Period
    state: Progress
    raised: Money
    top: Money
    tier_labels: tuple[str, ...]
    donors: int
    payments: int
    change_24h: Money
    change_7d: Money
    pending: int
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class InboxFlags:
    """Webhook events that need a person."""

    failed: int
    long_deferred: int
    dead: int = 0


@lru_cache(maxsize=4096)
def money_text(minor: int, currency: str, locale: str) -> str:
    """``format_money`` with cents, remembered: Babel takes about a third of a
    millisecond per amount, and a page shows dozens (tiers, figures, rows) that
    recur from request to request."""
    return format_money(minor, currency, locale, cents=True)


def _fmt(campaign: Campaign, minor: int) -> Money:
    return Money(minor, money_text(minor, campaign.currency, campaign.locale))


def change_since(session: Session, campaign: Campaign, since: datetime) -> int:
    """The net amount of the entries at or after ``since`` (the 24 h and 7 day changes).

    Whole local days come from the per-day rows; only the entries of the day
    ``since`` falls in, from ``since`` to that day's end, are read from the
    ledger (through the ``(campaign_id, occurred_at, id)`` index): at most one
    day of entries, not the whole window's.
    """
    zone = ZoneInfo(campaign.timezone)
    local = since.astimezone(zone)
    first_day = local.date()
    # Through UTC: where midnight does not exist (a DST gap), the first instant that does.
    day_ends = datetime.combine(first_day + timedelta(days=1), time(), zone).astimezone(UTC)
    partial = session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
            LedgerEntry.campaign_id == campaign.id,
            LedgerEntry.occurred_at >= since,
            LedgerEntry.occurred_at < day_ends,
        )
    )
    whole_days = session.scalar(
        select(func.coalesce(func.sum(DailyTotal.raised), 0)).where(
            DailyTotal.campaign_id == campaign.id, DailyTotal.day > first_day.isoformat()
        )
    )
    return int(partial or 0) + int(whole_days or 0)


def _day_sum(session: Session, campaign: Campaign, period: Period) -> int:
    query = select(func.coalesce(func.sum(DailyTotal.raised), 0)).where(
        DailyTotal.campaign_id == campaign.id
    )
    if period.starts_at is not None and period.ends_at is not None:
        zone = ZoneInfo(campaign.timezone)
        first = period.starts_at.astimezone(zone).date().isoformat()
        end = period.ends_at.astimezone(zone).date().isoformat()
        query = query.where(DailyTotal.day >= first, DailyTotal.day < end)
    return int(session.scalar(query) or 0)


def inbox_flags(session: Session, *, now: datetime | None = None) -> InboxFlags:
    """Failed events, deferred ones waiting longer than a day, and dead ones (given up)."""
    instant = now or utcnow()
    failed = session.scalar(select(func.count()).where(StripeEvent.status == InboxStatus.FAILED))
    deferred = session.scalar(
        select(func.count()).where(
            StripeEvent.status == InboxStatus.DEFERRED,
            StripeEvent.received_at < instant - LONG_DEFERRED,
        )
    )
    dead = session.scalar(select(func.count()).where(StripeEvent.status == InboxStatus.DEAD))
    return InboxFlags(int(failed or 0), int(deferred or 0), int(dead or 0))


def failed_outbox(session: Session) -> int:
    """Outgoing messages that failed for good (each needs a person, or a resend)."""
    query = select(func.count()).where(OutboxMessage.status == OutboxStatus.FAILED)
    return int(session.scalar(query) or 0)


def _foreign(session: Session, campaign_id: int | None = None) -> dict[int, int]:
    query = (
        select(StripePayment.campaign_id, func.count())
        .where(StripePayment.flag.is_not(None))
        .group_by(StripePayment.campaign_id)
    )
    if campaign_id is not None:
        query = query.where(StripePayment.campaign_id == campaign_id)
    return {int(cid): int(n) for cid, n in session.execute(query).all()}


def dashboard(session: Session, *, now: datetime | None = None) -> list[CampaignRow]:
    """One row per campaign (drafts too), newest first."""
    instant = now or utcnow()
    campaigns = session.scalars(
        select(Campaign).options(selectinload(Campaign.tiers)).order_by(Campaign.id.desc())
    ).all()
    foreign = _foreign(session)
    return [campaign_row(session, c, instant, foreign.get(c.id, 0)) for c in campaigns]


def campaign_row(
    session: Session, campaign: Campaign, instant: datetime, foreign: int | None = None
) -> CampaignRow:
    """The dashboard's line of one campaign (its tiers loaded) at ``instant``.

    :param foreign: its payments in another currency, if already counted.
    """
    if foreign is None:
        foreign = _foreign(session, campaign.id).get(campaign.id, 0)
    period = period_at(campaign.period, campaign.timezone, instant)
    total = session.get(PeriodTotal, (campaign.id, period.key))
    raised = total.raised if total else 0
    amounts = [t.amount for t in campaign.tiers]
    state = progress(raised, amounts)
    pending = session.scalar(
        select(func.count()).where(
            Pledge.campaign_id == campaign.id, Pledge.status == PledgeStatus.PENDING
        )
    )
    flags = []
    if foreign:
        flags.append(f"{foreign} payment(s) in another currency, stored and not counted")
    if _day_sum(session, campaign, period) != raised:
        flags.append("the period total and the per-day figures differ: run check-totals")
    return CampaignRow(
        slug=campaign.slug,
        title=campaign.title,
        status=campaign.status.value,
        currency=campaign.currency,
        period=period,
        state=state,
        raised=_fmt(campaign, raised),
        top=_fmt(campaign, state.top),
        tier_labels=tuple(t.label or _fmt(campaign, t.amount).text for t in campaign.tiers),
        donors=total.donors if total else 0,
        payments=total.payments if total else 0,
        change_24h=_fmt(campaign, change_since(session, campaign, instant - timedelta(1))),
        change_7d=_fmt(campaign, change_since(session, campaign, instant - timedelta(7))),
        pending=int(pending or 0),
        flags=tuple(flags),
    )


@dataclass(frozen=True, slots=True)
class KeyFigures:
    """The campaign page's figures for the current period."""

    average_gift: Money | None
    median_gift: Money | None
    median_sample: int
    monthly_donors: int
    monthly_total: Money
    refunds: Money
    disputes: Money


@dataclass(frozen=True, slots=True)
class CampaignOverview:
    """Everything the campaign page shows."""

    campaign: Campaign
    row: CampaignRow
    chart: Chart
    chart_title: str
    figures: KeyFigures
    history: list[tuple[str, Money, int, int]]
    latest: list[LedgerEntry]
    pending: list[Pledge]


def _window(campaign: Campaign, period: Period, today: date) -> tuple[date, date, bool]:
    if period.starts_at is None or period.ends_at is None:
        return today - timedelta(days=CHART_DAYS - 1), today, False
    zone = ZoneInfo(campaign.timezone)
    first = period.starts_at.astimezone(zone).date()
    last = period.ends_at.astimezone(zone).date() - timedelta(days=1)
    return first, last, True


def campaign_overview(
    session: Session, slug: str, *, now: datetime | None = None
) -> CampaignOverview:
    """The campaign page of ``slug`` (drafts too).

    :raise CampaignNotFound: for an unknown slug.
    """
    instant = now or utcnow()
    campaign = get_campaign(session, slug)
    # This campaign's line only, not the whole dashboard's.
    row = campaign_row(session, campaign, instant)
    zone = ZoneInfo(campaign.timezone)
    today = instant.astimezone(zone).date()
    period = row.period
    first, last, project = _window(campaign, period, today)
    days = session.execute(
        select(DailyTotal).where(
            DailyTotal.campaign_id == campaign.id,
            DailyTotal.day >= first.isoformat(),
            DailyTotal.day <= last.isoformat(),
        )
    ).scalars()
    in_window = list(days)
    nets = {date.fromisoformat(d.day): d.raised for d in in_window}
    opening = 0 if project else row.raised.minor - sum(nets.values())
    chart = build_chart(
        nets,
        first_day=first,
        last_day=last,
        today=today,
        opening=opening,
        tiers=[(t.amount, label) for t, label in zip(campaign.tiers, row.tier_labels, strict=True)],
        project=project,
    )
    what = "this period" if project else f"the last {CHART_DAYS} days"
    chart_title = f"Cumulative amount raised per day over {what}"
    gross = sum(d.gross for d in in_window) if project else None
    count = sum(d.payments for d in in_window) if project else None
    if not project:
        total = session.get(PeriodTotal, (campaign.id, period.key))
        gross = int(
            session.scalar(
                select(func.coalesce(func.sum(DailyTotal.gross), 0)).where(
                    DailyTotal.campaign_id == campaign.id
                )
            )
            or 0
        )
        count = total.payments if total else 0
    sample = [
        int(a)
        for a in session.scalars(
            _period_entries(campaign.id, period)
            .where(LedgerEntry.kind == EntryKind.PAYMENT)
            .with_only_columns(LedgerEntry.amount)
            .limit(MEDIAN_SAMPLE)
        )
    ]
    refunds_disputes = [(d.refunded, d.disputed) for d in in_window] if project else None
    if refunds_disputes is None:
        sums = session.execute(
            select(
                func.coalesce(func.sum(DailyTotal.refunded), 0),
                func.coalesce(func.sum(DailyTotal.disputed), 0),
            ).where(DailyTotal.campaign_id == campaign.id)
        ).one()
        refunds_disputes = [(int(sums[0]), int(sums[1]))]
    monthly = session.execute(
        select(func.count(), func.coalesce(func.sum(Pledge.amount), 0)).where(
            Pledge.campaign_id == campaign.id,
            Pledge.frequency == PledgeFrequency.MONTHLY,
            Pledge.status == PledgeStatus.PAID,
        )
    ).one()
    figures = KeyFigures(
        average_gift=_fmt(campaign, (gross or 0) // count) if count else None,
        median_gift=_fmt(campaign, int(median(sample))) if sample else None,
        median_sample=len(sample),
        monthly_donors=int(monthly[0]),
        monthly_total=_fmt(campaign, int(monthly[1])),
        refunds=_fmt(campaign, sum(r for r, _ in refunds_disputes)),
        disputes=_fmt(campaign, sum(d for _, d in refunds_disputes)),
    )
    history = [
        (t.period_key, _fmt(campaign, t.raised), t.donors, t.payments)
        for t in session.scalars(
            select(PeriodTotal)
            .where(PeriodTotal.campaign_id == campaign.id)
            .order_by(PeriodTotal.period_key.desc())
            .limit(24)
        )
    ]
    latest = list(
        session.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.campaign_id == campaign.id)
            .order_by(LedgerEntry.occurred_at.desc(), LedgerEntry.id.desc())
            .limit(10)
        )
    )
    pending = list(
        session.scalars(
            select(Pledge)
            .where(Pledge.campaign_id == campaign.id, Pledge.status == PledgeStatus.PENDING)
            .order_by(Pledge.id.desc())
            .limit(20)
        )
    )
    return CampaignOverview(campaign, row, chart, chart_title, figures, history, latest, pending)


def _period_entries(campaign_id: int, period: Period) -> Select[LedgerEntry]:
    query = select(LedgerEntry).where(LedgerEntry.campaign_id == campaign_id)
    if period.starts_at is not None and period.ends_at is not None:
        query = query.where(
            LedgerEntry.occurred_at >= period.starts_at, LedgerEntry.occurred_at < period.ends_at
        )
    return query.order_by(LedgerEntry.occurred_at.desc(), LedgerEntry.id.desc())
