"""Reading a campaign's progress: one totals row, never a scan of the ledger."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from tracker.domain.money import format_money
from tracker.domain.periods import Period, PeriodError, PeriodKind, period_at, period_from_key
from tracker.domain.progress import NextTier, progress
from tracker.models import Campaign, PeriodTotal, utcnow
from tracker.services.campaigns import get_campaign, has_ended


@dataclass(frozen=True, slots=True)
class TierView:
    """A tier as shown: amount in minor units, its label, whether it is reached."""

    amount: int
    label: str
    reached: bool


@dataclass(frozen=True, slots=True)
class ProgressReport:
    """Everything the public API and the embeds show about a campaign right now."""

    slug: str
    title: str
    currency: str
    locale: str
    status: str
    show_cents: bool
    raised: int
    raised_display: str
    donors: int
    payments: int
    tiers: tuple[TierView, ...]
    next_tier: NextTier | None
    percent: Decimal
    period: Period | None
    updated_at: datetime
    version: tuple[int, int]
    amount_pattern: str | None = None
    # Closed or past its end date: the figures are final and nothing links to a donate page.
    closed: bool = False

    def display(self, minor: int, *, missing: bool = False) -> str:
        """Format ``minor`` units of this campaign's currency the way its raised amount is.

        ``missing``: money still to come, rounded up without cents (see ``format_money``).
        """
        return format_money(
            minor,
            self.currency,
            self.locale,
            cents=self.show_cents,
            pattern=self.amount_pattern,
            missing=missing,
        )


def in_locale(report: ProgressReport, locale: str) -> ProgressReport:
    """``report`` with every amount formatted for ``locale`` (an explicit embed option).

    Tier labels become formatted amounts too, as the publisher asked for this
    locale; the campaign's amount pattern still applies.

    :param locale: a normalised locale identifier (``fr_FR``).
    """
    if locale == report.locale:
        return report
    moved = replace(report, locale=locale)
    return replace(
        moved,
        raised_display=moved.display(report.raised),
        tiers=tuple(replace(t, label=moved.display(t.amount)) for t in report.tiers),
    )


def campaign_progress(
    session: Session, slug: str, *, now: datetime | None = None
) -> ProgressReport:
    """Progress of the public campaign ``slug`` in its current period.

    A campaign that has ended (:func:`~tracker.services.campaigns.has_ended`)
    keeps its final figures: a periodic one shows its last period, not the
    empty one the calendar has moved on to.

    :raise CampaignNotFound: for an unknown slug or a draft campaign.
    """
    campaign = get_campaign(session, slug, public=True)
    instant = now or utcnow()
    closed = has_ended(campaign, instant)
    period = period_at(campaign.period, campaign.timezone, instant)
    if closed and campaign.period is not PeriodKind.NONE:
        period = _final_period(session, campaign, instant, period)
    total = session.get(PeriodTotal, (campaign.id, period.key))
    return _report(campaign, period, total, closed=closed)


def _final_period(session: Session, campaign: Campaign, instant: datetime, now: Period) -> Period:
    # The period of the end date, when the campaign ended by it; else (closed by
    # an admin) the newest period that has totals, never a later one than now's.
    if campaign.ends_at is not None and campaign.ends_at <= instant:
        # The end is exclusive: a campaign ending at midnight on the 1st ends in the month before.
        last = campaign.ends_at - timedelta(microseconds=1)
        return period_at(campaign.period, campaign.timezone, last)
    key = session.scalar(
        select(PeriodTotal.period_key)
        .where(PeriodTotal.campaign_id == campaign.id, PeriodTotal.period_key <= now.key)
        .order_by(PeriodTotal.period_key.desc())
        .limit(1)
    )
    if key is None:
        return now
    try:
        return period_from_key(campaign.period, campaign.timezone, key)
    except PeriodError:
        # A row from before the campaign's period kind changed (a month among weeks).
        return now


def _report(
    campaign: Campaign, period: Period, total: PeriodTotal | None, *, closed: bool = False
) -> ProgressReport:
    raised = total.raised if total else 0
    state = progress(raised, [t.amount for t in campaign.tiers])

    def show(minor: int) -> str:
        return format_money(
            minor,
            campaign.currency,
            campaign.locale,
            cents=campaign.show_cents,
            pattern=campaign.amount_pattern,
        )

    tiers = tuple(
        TierView(t.amount, t.label or show(t.amount), s.reached)
        for t, s in zip(campaign.tiers, state.tiers, strict=True)
    )
    updated = max(campaign.updated_at, total.updated_at) if total else campaign.updated_at
    return ProgressReport(
        slug=campaign.slug,
        title=campaign.title,
        currency=campaign.currency,
        locale=campaign.locale,
        status=campaign.status.value,
        show_cents=campaign.show_cents,
        raised=raised,
        raised_display=show(raised),
        donors=total.donors if total else 0,
        payments=total.payments if total else 0,
        tiers=tiers,
        next_tier=state.next_tier,
        percent=state.percent,
        period=None if campaign.period is PeriodKind.NONE else period,
        updated_at=updated,
        version=(campaign.version, total.version if total else 0),
        amount_pattern=campaign.amount_pattern,
        closed=closed,
    )


@dataclass(frozen=True, slots=True)
class PeriodSummary:
    """One period's totals, for history listings."""

    period: Period
    raised: int
    raised_display: str
    donors: int
    payments: int


def period_history(session: Session, slug: str) -> tuple[Campaign, list[PeriodSummary]]:
    """Every period of the public campaign ``slug`` that has totals, newest first.

    :raise CampaignNotFound: for an unknown slug or a draft campaign.
    """
    campaign = get_campaign(session, slug, public=True)
    rows = session.scalars(
        select(PeriodTotal)
        .where(PeriodTotal.campaign_id == campaign.id)
        .order_by(PeriodTotal.period_key.desc())
    ).all()
    if campaign.period is PeriodKind.NONE:
        return campaign, []
    return campaign, [
        PeriodSummary(
            period_from_key(campaign.period, campaign.timezone, row.period_key),
            row.raised,
            format_money(
                row.raised,
                campaign.currency,
                campaign.locale,
                cents=campaign.show_cents,
                pattern=campaign.amount_pattern,
            ),
            row.donors,
            row.payments,
        )
        for row in rows
    ]
