"""What the admin's dashboard and campaign pages show, read from aggregates.

Every figure here comes from the totals rows, the per-day rows, or an index
range bounded by time or a small limit, never from a scan of the ledger: the
pages cost the same at 1,000 or 1,000,000 entries.

Each figure is a scalar subquery, and a page sends them together in one
statement (a campaign's line is one ``SELECT (...), (...), ...``): on
PostgreSQL every statement is a round trip to the server, and on either
database every statement costs SQLAlchemy a fixed overhead, which made up most
of the pages' time when each figure had its own (docs/admin.md, "Speed").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from statistics import median_high, median_low
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    Select,
    String,
    bindparam,
    cast,
    func,
    select,
)
from sqlalchemy.orm import Session, joinedload

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


def _since(name: str) -> ColumnElement[Any]:
    """The net amount of the entries at or after ``:<name>_at``, as one SQL expression.

    Whole local days come from the per-day rows (after ``:<name>_day``); only the
    entries of the day the instant falls in, up to that day's end
    (``:<name>_ends``), are read from the ledger, through its
    ``(campaign_id, occurred_at, id, kind, amount)`` index alone: at most one day
    of entries, not the whole window's. :func:`_since_params` gives the values.
    """
    partial = select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
        LedgerEntry.campaign_id == bindparam("cid"),
        LedgerEntry.occurred_at >= bindparam(f"{name}_at"),
        LedgerEntry.occurred_at < bindparam(f"{name}_ends"),
    )
    whole_days = select(func.coalesce(func.sum(DailyTotal.raised), 0)).where(
        DailyTotal.campaign_id == bindparam("cid"), DailyTotal.day > bindparam(f"{name}_day")
    )
    return partial.scalar_subquery() + whole_days.scalar_subquery()


def _since_params(campaign: Campaign, name: str, since: datetime) -> dict[str, Any]:
    zone = ZoneInfo(campaign.timezone)
    first_day = since.astimezone(zone).date()
    # Through UTC: where midnight does not exist (a DST gap), the first instant that does.
    day_ends = datetime.combine(first_day + timedelta(days=1), time(), zone).astimezone(UTC)
    return {f"{name}_at": since, f"{name}_ends": day_ends, f"{name}_day": first_day.isoformat()}


def change_since(session: Session, campaign: Campaign, since: datetime) -> int:
    """The net amount of the entries at or after ``since`` (the 24 h and 7 day changes).

    See :func:`_since` for how it is read without scanning the window's entries.
    """
    params = {"cid": campaign.id, **_since_params(campaign, "since", since)}
    return int(session.scalar(select(_since("since")), params) or 0)


def _bounded(period: Period) -> bool:
    return period.starts_at is not None and period.ends_at is not None


def _day_sum(bounded: bool) -> ColumnElement[Any]:
    query = select(func.coalesce(func.sum(DailyTotal.raised), 0)).where(
        DailyTotal.campaign_id == bindparam("cid")
    )
    if bounded:
        query = query.where(
            DailyTotal.day >= bindparam("first_day"), DailyTotal.day < bindparam("end_day")
        )
    return query.scalar_subquery()


def _count(*where: ColumnElement[bool]) -> ColumnElement[Any]:
    return select(func.count()).where(*where).scalar_subquery()


def _inbox_columns(instant: datetime) -> list[ColumnElement[Any]]:
    return [
        _count(StripeEvent.status == InboxStatus.FAILED).label("failed"),
        _count(
            StripeEvent.status == InboxStatus.DEFERRED,
            StripeEvent.received_at < instant - LONG_DEFERRED,
        ).label("long_deferred"),
        _count(StripeEvent.status == InboxStatus.DEAD).label("dead"),
    ]


def _outbox_column() -> ColumnElement[Any]:
    return _count(OutboxMessage.status == OutboxStatus.FAILED).label("outbox_failed")


def attention(session: Session, *, now: datetime | None = None) -> tuple[InboxFlags, int]:
    """What needs a person, in one statement.

    The inbox's failed events, deferred ones waiting longer than a day and dead
    ones (given up), and the outgoing messages that failed for good.
    """
    row = session.execute(select(*_inbox_columns(now or utcnow()), _outbox_column())).one()
    flags = InboxFlags(int(row.failed or 0), int(row.long_deferred or 0), int(row.dead or 0))
    return flags, int(row.outbox_failed or 0)


def dashboard(session: Session, *, now: datetime | None = None) -> list[CampaignRow]:
    """One row per campaign (drafts too), newest first: one statement per campaign."""
    instant = now or utcnow()
    campaigns = (
        session.scalars(
            # The tiers in the same statement: one round trip for all campaigns.
            select(Campaign).options(joinedload(Campaign.tiers)).order_by(Campaign.id.desc())
        )
        .unique()
        .all()
    )
    return [campaign_row(session, c, instant) for c in campaigns]


def _row_columns(bounded: bool) -> list[ColumnElement[Any]]:
    """The figures of a campaign's dashboard line, each a labelled scalar subquery.

    Every value is a bound parameter (:func:`_row_params`), so the statement is
    built once per shape (:func:`_row_statement`), not per request: building it
    took about a sixth of the campaign page's time.
    """
    cid: BindParameter[int] = bindparam("cid")

    def total(column: Any) -> ColumnElement[Any]:
        # One primary-key lookup each; NULL (no money yet) reads as 0.
        query = select(column).where(
            PeriodTotal.campaign_id == cid, PeriodTotal.period_key == bindparam("key")
        )
        return func.coalesce(query.scalar_subquery(), 0)

    return [
        total(PeriodTotal.raised).label("raised"),
        total(PeriodTotal.donors).label("donors"),
        total(PeriodTotal.payments).label("payments"),
        _count(Pledge.campaign_id == cid, Pledge.status == PledgeStatus.PENDING).label("pending"),
        _count(StripePayment.campaign_id == cid, StripePayment.flag.is_not(None)).label("foreign"),
        _day_sum(bounded).label("day_sum"),
        _since("d1").label("change_24h"),
        _since("d7").label("change_7d"),
    ]


def _row_params(campaign: Campaign, period: Period, instant: datetime) -> dict[str, Any]:
    params = {
        "cid": campaign.id,
        "key": period.key,
        **_since_params(campaign, "d1", instant - timedelta(1)),
        **_since_params(campaign, "d7", instant - timedelta(7)),
    }
    if period.starts_at is not None and period.ends_at is not None:
        zone = ZoneInfo(campaign.timezone)
        params["first_day"] = period.starts_at.astimezone(zone).date().isoformat()
        params["end_day"] = period.ends_at.astimezone(zone).date().isoformat()
        params["starts_at"], params["ends_at"] = period.starts_at, period.ends_at
    return params


@lru_cache(maxsize=2)
def _row_statement(bounded: bool) -> Select[Any]:
    return select(*_row_columns(bounded))


def campaign_row(session: Session, campaign: Campaign, instant: datetime) -> CampaignRow:
    """The dashboard's line of one campaign (its tiers loaded) at ``instant``: one statement."""
    period = period_at(campaign.period, campaign.timezone, instant)
    statement = _row_statement(_bounded(period))
    figures = session.execute(statement, _row_params(campaign, period, instant)).one()
    return _row(campaign, period, figures)


def _row(campaign: Campaign, period: Period, figures: Any) -> CampaignRow:
    """A :class:`CampaignRow` from the columns of :func:`_row_columns`."""
    raised = int(figures.raised)
    amounts = [t.amount for t in campaign.tiers]
    state = progress(raised, amounts)
    flags = []
    foreign = int(figures.foreign or 0)
    if foreign:
        flags.append(f"{foreign} payment(s) in another currency, stored and not counted")
    if int(figures.day_sum or 0) != raised:
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
        donors=int(figures.donors),
        payments=int(figures.payments),
        change_24h=_fmt(campaign, int(figures.change_24h or 0)),
        change_7d=_fmt(campaign, int(figures.change_7d or 0)),
        pending=int(figures.pending or 0),
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


def _median_sample(bounded: bool) -> ColumnElement[Any]:
    """The amounts of the period's :data:`MEDIAN_SAMPLE` latest payments, as one text.

    Comma-separated (``string_agg`` / ``group_concat``), in no particular order:
    a scalar subquery, so the sample comes with the page's other figures instead
    of as a thousand rows of its own statement, and the median is then taken in
    Python exactly as before. NULL when the period has no payment. Ranking in SQL
    with window functions instead was measured several times slower on SQLite
    than reading the rows (docs/admin.md, "Speed").
    """
    query = select(LedgerEntry.amount.label("amount")).where(
        LedgerEntry.campaign_id == bindparam("cid"), LedgerEntry.kind == EntryKind.PAYMENT
    )
    if bounded:
        query = query.where(
            LedgerEntry.occurred_at >= bindparam("starts_at"),
            LedgerEntry.occurred_at < bindparam("ends_at"),
        )
    sample = (
        query.order_by(LedgerEntry.occurred_at.desc(), LedgerEntry.id.desc())
        .limit(bindparam("sample_size", type_=Integer))
        .subquery("sample")
    )
    amounts = func.aggregate_strings(cast(sample.c.amount, String), ",")
    return select(amounts).select_from(sample).scalar_subquery()


@lru_cache(maxsize=2)
def _page_statement(bounded: bool) -> Select[Any]:
    """The campaign page's figures: its dashboard line, the key figures, the median's sample."""
    cid: BindParameter[int] = bindparam("cid")
    monthly = (
        Pledge.campaign_id == cid,
        Pledge.frequency == PledgeFrequency.MONTHLY,
        Pledge.status == PledgeStatus.PAID,
    )
    columns = [
        *_row_columns(bounded),
        _count(*monthly).label("monthly_donors"),
        select(func.coalesce(func.sum(Pledge.amount), 0))
        .where(*monthly)
        .scalar_subquery()
        .label("monthly_total"),
        _median_sample(bounded).label("sample"),
    ]
    if not bounded:
        # Without periods the figures cover every day, not just the chart's 90.
        def every_day(column: Any) -> ColumnElement[Any]:
            query = select(func.coalesce(func.sum(column), 0))
            return query.where(DailyTotal.campaign_id == cid).scalar_subquery()

        columns += [
            every_day(DailyTotal.gross).label("gross"),
            every_day(DailyTotal.refunded).label("refunded"),
            every_day(DailyTotal.disputed).label("disputed"),
        ]
    return select(*columns)


def campaign_overview(
    session: Session, slug: str, *, now: datetime | None = None
) -> CampaignOverview:
    """The campaign page of ``slug`` (drafts too), in six statements whatever its size.

    The campaign with its tiers; every figure in one statement (its dashboard
    line, the key figures, the median's sample); the chart's days; the period history;
    the latest movements; the pending pledges.

    :raise CampaignNotFound: for an unknown slug.
    """
    instant = now or utcnow()
    campaign = get_campaign(session, slug, joined=True)
    zone = ZoneInfo(campaign.timezone)
    today = instant.astimezone(zone).date()
    period = period_at(campaign.period, campaign.timezone, instant)
    first, last, project = _window(campaign, period, today)
    params = {**_row_params(campaign, period, instant), "sample_size": MEDIAN_SAMPLE}
    figures = session.execute(_page_statement(project), params).one()
    row = _row(campaign, period, figures)
    in_window = list(
        session.scalars(
            select(DailyTotal).where(
                DailyTotal.campaign_id == campaign.id,
                DailyTotal.day >= first.isoformat(),
                DailyTotal.day <= last.isoformat(),
            )
        )
    )
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
    if project:
        gross = sum(d.gross for d in in_window)
        count = sum(d.payments for d in in_window)
        refunds = sum(d.refunded for d in in_window)
        disputes = sum(d.disputed for d in in_window)
    else:
        gross, count = int(figures.gross), row.payments
        refunds, disputes = int(figures.refunded), int(figures.disputed)
    sample = [int(a) for a in figures.sample.split(",")] if figures.sample else []
    key_figures = KeyFigures(
        average_gift=_fmt(campaign, gross // count) if count else None,
        # In whole minor units, no float: the lower of two middle gifts' mean cents.
        median_gift=_fmt(campaign, (median_low(sample) + median_high(sample)) // 2)
        if sample
        else None,
        median_sample=len(sample),
        monthly_donors=int(figures.monthly_donors or 0),
        monthly_total=_fmt(campaign, int(figures.monthly_total or 0)),
        refunds=_fmt(campaign, refunds),
        disputes=_fmt(campaign, disputes),
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
    return CampaignOverview(
        campaign, row, chart, chart_title, key_figures, history, latest, pending
    )
