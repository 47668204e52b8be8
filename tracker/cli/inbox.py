"""For the operator of the Stripe inbox: ``retry-inbox`` and ``reconcile``."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from flask import current_app
from sqlalchemy.exc import OperationalError

from tracker.cli.core import OneLineError, _parse_instant, tracker_cli
from tracker.db import get_database
from tracker.services.stripe_events import Report as InboxReport

# --- Stripe inbox: retry and reconciliation -----------------------------------------


def _print_inbox_report(report: InboxReport) -> None:
    """Print what an inbox run did; exit 1 if any event is left failed or was given up."""
    click.echo(report.describe())
    for error in report.errors:
        click.echo(error, err=True)
    if report.statuses.get("failed") or report.dead:
        raise click.exceptions.Exit(1)


@tracker_cli.command("retry-inbox", short_help="Apply again the Stripe events left over.")
@click.option("--limit", default=1000, show_default=True, help="At most this many events.")
@click.option("--dead", is_flag=True, help="List the events given up (dead), with their errors.")
@click.option(
    "--event",
    "event_ids",
    multiple=True,
    metavar="EVENT_ID",
    help="Retry this event now, even if dead or waiting (repeatable).",
)
def retry_inbox_cmd(limit: int, dead: bool, event_ids: tuple[str, ...]) -> None:
    """Apply again the Stripe events left received, failed or deferred in the inbox.

    A failed event waits a growing delay between automatic retries and is given
    up (dead) after TRACKER_INBOX_MAX_ATTEMPTS; --dead lists those, --event retries
    one by hand.
    """
    from tracker.gateway import get_gateway
    from tracker.gateway.client import NotConfigured
    from tracker.gateway.webhooks import configured_livemode
    from tracker.models import InboxStatus
    from tracker.services.stripe_events import RetryPolicy, inbox_events, retry_inbox

    database = get_database(current_app)
    if dead and not event_ids:
        with database.session(write=False) as session:
            for row in inbox_events(session, [InboxStatus.DEAD]):
                error = (row.last_error or "").splitlines()[0] if row.last_error else ""
                click.echo(f"{row.id}\t{row.type}\t{row.attempts} attempts\t{error}")
        return
    try:
        gateway = get_gateway()
    except NotConfigured:
        gateway = None  # deferred events then wait for their payment's own event
    try:
        report = retry_inbox(
            database.session,
            livemode=configured_livemode(),
            gateway=gateway,
            limit=limit,
            policy=RetryPolicy.from_config(current_app.config),
            event_ids=event_ids or None,
        )
    except OperationalError as exc:
        raise OneLineError(f"database error: {exc.orig}") from None
    _print_inbox_report(report)


@tracker_cli.command("reconcile", short_help="Recover missed webhooks from Stripe's list.")
@click.option(
    "--since",
    default=None,
    help="List Stripe events from this ISO date on (default and earliest: 30 days ago).",
)
def reconcile_cmd(since: str | None) -> None:
    """Feed the events Stripe lists through the inbox: recovers missed webhooks, idempotent."""
    from datetime import timedelta

    from tracker.gateway import GatewayError, get_gateway
    from tracker.gateway.events import RETENTION_DAYS
    from tracker.gateway.webhooks import configured_livemode
    from tracker.services.stripe_events import reconcile

    now = datetime.now(UTC)
    earliest = now - timedelta(days=RETENTION_DAYS)
    start = _parse_instant(since, "--since") or earliest
    if start < earliest:
        click.echo(
            f"Stripe keeps {RETENTION_DAYS} days of events: starting from {earliest:%Y-%m-%d}"
        )
    try:
        gateway = get_gateway()
        report = reconcile(
            get_database(current_app).session,
            gateway,
            since=start,
            livemode=configured_livemode(),
            now=now,
        )
    except GatewayError as exc:
        raise OneLineError(str(exc)) from None
    except OperationalError as exc:
        raise OneLineError(f"database error: {exc.orig}") from None
    _print_inbox_report(report)
