"""Commands of the scheduler and the outbox: ``scheduler``, ``jobs``, ``outbox``, ``send-summary``.

``set-campaign``'s notification options live with that command, in
:mod:`tracker.cli.notifications`: this module imports :mod:`tracker.cli`, so
nothing that package loads may import this one.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import click
from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from tracker.cli import OneLineError, tracker_cli, unit_of_work
from tracker.db import get_database
from tracker.models import OutboxMessage, OutboxStatus
from tracker.notify import outbox, wiring
from tracker.notify.donors import refunded_veto
from tracker.notify.summaries import send_summary_now
from tracker.services.campaigns import get_campaign


def _not_ours(record: logging.LogRecord) -> bool:
    # The app's own handler (tracker.ops.logs) already writes the tracker.* lines.
    return not record.name.startswith("tracker")


def _configure_logging() -> None:
    # Other libraries' lines (APScheduler's warnings) go to stderr too; ours once.
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_not_ours)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[handler],
    )
    # Our own job lines say start, outcome and duration; APScheduler's repeat them.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


@tracker_cli.command("scheduler")
def scheduler_cmd() -> None:
    """Run the scheduler process.

    Summaries, milestone alerts, outbox delivery and the maintenance jobs.

    Any number may run; one leads (see docs/scheduler.md). Stops cleanly on SIGTERM/SIGINT.
    """
    from tracker.scheduler.process import SchedulerProcess

    _configure_logging()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    code = SchedulerProcess(app).run()
    raise click.exceptions.Exit(code)


@tracker_cli.command("jobs")
def jobs_cmd() -> None:
    """List the scheduler's jobs and its leader.

    Each job with its next run time, and which process leads.
    """
    from tracker.scheduler import jobs
    from tracker.scheduler.leader import holder_for

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    with get_database(app).session(write=False) as session:
        specs = jobs.fixed_jobs(app) + jobs.summary_jobs(jobs.summary_signature(session))
    width = max(len(spec.id) for spec in specs)
    for spec in specs:
        upcoming = spec.trigger.get_next_fire_time(None, now)
        when = upcoming.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if upcoming else "never"
        click.echo(f"{spec.id:<{width}}  next {when}  ({spec.trigger}) {spec.description}")
    try:
        holder = holder_for(app.config["DATABASE_URL"])
    except Exception as exc:
        raise OneLineError(f"cannot tell who leads: {exc}") from None
    click.echo(f"leader: {holder or 'none (no scheduler process is running)'}")


@tracker_cli.command("outbox")
@click.option(
    "--status",
    type=click.Choice([s.value for s in OutboxStatus]),
    default=None,
    help="Only messages with this status.",
)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
def outbox_cmd(status: str | None, limit: int) -> None:
    """List the newest outgoing messages.

    Summaries, alerts and donor e-mails, with their state.
    """
    with get_database(current_app).session(write=False) as session:
        counts = outbox.count_by_status(session)
        rows = outbox.list_messages(
            session, None if status is None else [OutboxStatus(status)], limit
        )
    summary = ", ".join(f"{name} {count}" for name, count in sorted(counts.items()))
    click.echo(f"outbox: {summary or 'empty'}")
    for row in rows:
        error = f"  last error: {row.last_error}" if row.last_error else ""
        click.echo(
            f"#{row.id} {row.status.value:<8} {row.kind:<9} {row.channel.value:<5} "
            f"{row.recipient}  {row.created_at:%Y-%m-%d %H:%M}Z  tries {row.attempts}  "
            f"{row.subject}{error}"
        )


@tracker_cli.command("send-summary")
@click.argument("slug")
@click.option("--dry-run", is_flag=True, help="Print the text body; write and send nothing.")
def send_summary_cmd(slug: str, dry_run: bool) -> None:
    """Send SLUG's progress summary now.

    It goes through the outbox like a scheduled one, under a key of its own.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    session: Session
    with unit_of_work() as session:
        campaign = get_campaign(session, slug)
        message, created = send_summary_now(session, campaign, now, wiring.context(app))
        if dry_run:
            session.rollback()
            click.echo(f"Subject: {message.subject}\n")
            click.echo(message.text, nl=False)
            return
        ids = list(
            session.scalars(
                select(OutboxMessage.id).where(OutboxMessage.key.startswith(message.key + "|"))
            )
        )
    if not created:
        raise OneLineError(
            f"{slug} has no recipients: set them with set-campaign {slug} --notify-email ..."
        )
    _configure_logging()
    report = outbox.deliver(
        get_database(app).session,
        wiring.transports(app),
        policy=wiring.policy(app),
        ids=ids,
        veto=refunded_veto,
    )
    click.echo(f"summary of {slug} written for {created} recipient(s): {report.describe()}")
