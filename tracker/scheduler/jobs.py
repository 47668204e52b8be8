"""The scheduler's jobs: what each does, and when, built from settings and the database.

Every job is safe to run twice and safe to be killed at any line: what it
decides is written to the outbox (or the ledger's own tables) under unique
keys in one transaction, and delivery is a separate, retried step. A job that
raises is logged and runs again at its next time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.base import BaseTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]
from flask import Flask
from sqlalchemy import update
from sqlalchemy.orm import Session

from tracker.db import get_database
from tracker.domain.cadence import Cadence
from tracker.models import (
    CampaignNotification,
    CampaignStatus,
    Pledge,
    PledgeSource,
    PledgeStatus,
    SummaryCadence,
    utcnow,
)
from tracker.notify import milestones, outbox, summaries, wiring
from tracker.notify.donors import refunded_veto
from tracker.scheduler.settings import settings

# Stripe Checkout Sessions expire after 24 hours; an hour's margin so a payment
# completed in the last minute is booked before its pledge is called expired
# (a later payment still books and moves it to paid).
PLEDGE_EXPIRY = timedelta(hours=25)
# How far back the hourly reconciliation asks Stripe for events: enough to
# cover a scheduler down for a weekend, far less than the API's 30 days.
RECONCILE_WINDOW = timedelta(days=3)

JobFunc = Callable[[Flask, threading.Event], str]


class CadenceTrigger(BaseTrigger):  # type: ignore[misc]
    """An APScheduler trigger for a summary cadence (see :mod:`tracker.domain.cadence`)."""

    def __init__(self, cadence: Cadence) -> None:
        self.cadence = cadence

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """The first fire after the previous one, or the first at or after ``now``."""
        after = previous_fire_time or (now - timedelta(microseconds=1))
        return self.cadence.next_after(after).at

    def __str__(self) -> str:
        return f"{self.cadence.kind} at {self.cadence.hour:02d}:00 {self.cadence.timezone}"


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One job: its id, when it runs, and what it does."""

    id: str
    trigger: Any
    func: JobFunc
    description: str


def _write(app: Flask) -> Session:
    return get_database(app).session(write=True)


def deliver(app: Flask, stop: threading.Event) -> str:
    """Deliver the outbox rows that are due."""
    report = outbox.deliver(
        get_database(app).session,
        wiring.transports(app),
        policy=wiring.policy(app),
        veto=refunded_veto,
        stop=stop.is_set,
    )
    return report.describe()


def check_milestones(app: Flask, stop: threading.Event) -> str:
    """Tier alerts, period reports and thank-you notes for campaigns with new entries."""
    with _write(app) as session:
        report = milestones.check(session, wiring.context(app))
        session.commit()
    written = len(report.alerts) + len(report.reports) + report.thanks
    outcome = f"{report.looked_at} campaign(s) with new entries, {written} decision(s)"
    if written:
        # Sent now rather than at the next delivery run: within seconds of the payment.
        outcome += "; " + deliver(app, stop)
    return outcome


def send_due_summaries(app: Flask, stop: threading.Event) -> str:
    """Write the summaries due now (or missed within the catch-up window), then deliver."""
    window = timedelta(hours=settings(app).catchup_hours)
    with _write(app) as session:
        written = summaries.due_summaries(session, None, window, wiring.context(app))
        session.commit()
    if not written:
        return "no summary due"
    return f"summaries of {', '.join(written)}; " + deliver(app, stop)


def retry_inbox(app: Flask, stop: threading.Event) -> str:
    """``retry-inbox``'s path: apply again the Stripe events left unfinished."""
    from tracker.gateway import get_gateway
    from tracker.gateway.client import NotConfigured
    from tracker.gateway.webhooks import configured_livemode
    from tracker.services.stripe_events import retry_inbox as retry

    try:
        gateway = get_gateway(app)
    except NotConfigured:
        gateway = None
    report = retry(
        get_database(app).session, livemode=configured_livemode(app), gateway=gateway, limit=1000
    )
    return report.describe()


def reconcile(app: Flask, stop: threading.Event) -> str:
    """``reconcile``'s path over the last few days of Stripe's events."""
    from tracker.gateway import get_gateway
    from tracker.gateway.webhooks import configured_livemode
    from tracker.services.stripe_events import reconcile as run

    now = utcnow()
    report = run(
        get_database(app).session,
        get_gateway(app),
        since=now - RECONCILE_WINDOW,
        livemode=configured_livemode(app),
        now=now,
    )
    return report.describe()


def expire_pledges(app: Flask, stop: threading.Event, now: datetime | None = None) -> str:
    """Mark card pledges still pending after Checkout's 24 h as expired (offline ones wait)."""
    cutoff = (now or utcnow()) - PLEDGE_EXPIRY
    with _write(app) as session:
        expired = session.execute(
            update(Pledge)
            .where(
                Pledge.status == PledgeStatus.PENDING,
                Pledge.source == PledgeSource.STRIPE,
                Pledge.created_at < cutoff,
            )
            .values(status=PledgeStatus.EXPIRED, updated_at=utcnow())
            .returning(Pledge.id)
        ).all()
        session.commit()
    return f"{len(expired)} pledge(s) expired"


def check_totals(app: Flask, stop: threading.Event) -> str:
    """``check-totals`` without repair; owners of a drifted campaign get an alert."""
    from tracker.notify import messages
    from tracker.services.campaigns import get_campaign
    from tracker.services.ledger import check_totals as check
    from tracker.services.notifications import recipients

    context = wiring.context(app)
    today = utcnow().date().isoformat()
    with _write(app) as session:
        drifts = check(session)
        by_slug: dict[str, list[str]] = {}
        for drift in drifts:
            by_slug.setdefault(drift.campaign_slug, []).append(drift.describe())
        for slug, lines in by_slug.items():
            campaign = get_campaign(session, slug)
            to = recipients(session.get(CampaignNotification, campaign.id))
            if to:
                message = messages.drift_alert(
                    title=campaign.title, lines=tuple(lines), key=f"drift:{campaign.id}:{today}"
                )
                outbox.enqueue(
                    session, message, to, campaign_id=campaign.id, mail_from=context.mail_from
                )
        session.commit()
    if not drifts:
        return "totals match the ledger"
    return f"{len(drifts)} drifted row(s): " + "; ".join(d.describe() for d in drifts)


def _every(seconds: float) -> IntervalTrigger:
    # Anchored in the past so the first run is one interval after start, on every host alike.
    return IntervalTrigger(seconds=seconds, start_date=datetime(2026, 1, 1, tzinfo=UTC))


def fixed_jobs(app: Flask) -> list[JobSpec]:
    """The jobs every installation runs (reconcile only with a Stripe key)."""
    s = settings(app)
    jobs = [
        JobSpec("deliver", _every(s.deliver_seconds), deliver, "deliver the outbox"),
        JobSpec(
            "milestones",
            _every(s.milestone_seconds),
            check_milestones,
            "tier alerts, period reports, thank-you notes",
        ),
        JobSpec(
            "summaries", _every(s.refresh_seconds), send_due_summaries, "summaries due or missed"
        ),
        JobSpec("retry-inbox", _every(s.retry_inbox_seconds), retry_inbox, "retry Stripe events"),
        JobSpec("expire-pledges", _every(s.expire_seconds), expire_pledges, "expire stale pledges"),
        JobSpec(
            "check-totals", _every(s.check_totals_seconds), check_totals, "totals against ledger"
        ),
    ]
    if app.config.get("STRIPE_SECRET_KEY"):
        jobs.append(
            JobSpec(
                "reconcile", _every(s.reconcile_seconds), reconcile, "reconcile Stripe's events"
            )
        )
    return jobs


SummarySignature = tuple[tuple[str, str, int, str], ...]


def summary_signature(session: Session) -> SummarySignature:
    """What the summary jobs depend on; they are rebuilt when it changes."""
    from tracker.services.notifications import notification_rows

    return tuple(
        sorted(
            (campaign.slug, row.summary.value, row.summary_hour, campaign.timezone)
            for campaign, row in notification_rows(session)
            if row.summary is not SummaryCadence.OFF and campaign.status is CampaignStatus.ACTIVE
        )
    )


def summary_jobs(signature: SummarySignature) -> list[JobSpec]:
    """One job per campaign with a summary cadence, firing at its hour in its timezone."""
    return [
        JobSpec(
            f"summary:{slug}",
            CadenceTrigger(Cadence(kind, hour, zone)),
            send_due_summaries,
            f"progress summary of {slug}",
        )
        for slug, kind, hour, zone in signature
    ]
