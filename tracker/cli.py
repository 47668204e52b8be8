"""The ``flask --app wsgi tracker ...`` commands. Each is one transaction: all or nothing."""

from __future__ import annotations

import getpass
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.orm import Session

from tracker import migrate
from tracker.config import donor_key_secret
from tracker.db import get_database
from tracker.domain.ledger import LedgerError
from tracker.domain.money import MoneyError, normalize_currency, parse_amount
from tracker.domain.periods import PeriodError, parse_kind
from tracker.domain.progress import TierError
from tracker.models import CampaignStatus
from tracker.services.campaigns import (
    CampaignError,
    CampaignNotFound,
    CampaignSpec,
    create_campaign,
    get_campaign,
    parse_tiers,
    update_campaign,
)
from tracker.services.demo import DEMO_SLUG, seed_demo
from tracker.services.ledger import DailyDrift, Drift, check_daily_totals, check_totals
from tracker.services.offline import add_offline_payment
from tracker.services.stripe_events import Report as InboxReport

_EXPECTED = (CampaignError, CampaignNotFound, MoneyError, TierError, PeriodError, LedgerError)


# Amounts typed on the command line: digits, and a dot before any decimals.
_PLAIN_AMOUNT = re.compile(r"[0-9]+(\.[0-9]+)?")

AMOUNT_PATTERN = click.option(
    "--amount-pattern",
    default=None,
    help="Show amounts with this Babel pattern, e.g. '#,##0 ¤' for '2,811 $' (docs/i18n.md); "
    "'' for the locale's own.",
)


class OneLineError(click.ClickException):
    """Printed as a single ``Error: ...`` line; exit status 2 like a usage error."""

    exit_code = 2


class OneLineCommand(click.Command):
    """A command whose argument errors are one line, without the usage banner."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise OneLineError(f"{ctx.command_path}: {exc.format_message()}") from None


tracker_cli = AppGroup("tracker", help="Manage campaigns, the ledger and the database.")
tracker_cli.command_class = OneLineCommand


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """A write session committed on success and rolled back on any error.

    Expected errors become a one-line message; nothing is written.
    """
    session = get_database(current_app).session(write=True)
    try:
        yield session
        session.commit()
    except _EXPECTED as exc:
        session.rollback()
        raise OneLineError(str(exc)) from None
    except OperationalError as exc:
        session.rollback()
        raise OneLineError(f"database error: {exc.orig}") from None
    except DataError as exc:
        # A value the schema refuses (too long for its column): a checks' backstop.
        session.rollback()
        raise OneLineError(f"refused by the database: {str(exc.orig).splitlines()[0]}") from None
    finally:
        session.close()


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _parse_instant(value: str | None, option: str, zone: str = "UTC") -> datetime | None:
    """An ISO date or date-time; one without an offset is read in ``zone``."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise OneLineError(
            f"{option}: {value!r} is not an ISO date such as 2026-11-12 or 2026-11-12T15:30+01:00"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=ZoneInfo(zone))


@tracker_cli.command("init-db", short_help="Create or migrate the database schema.")
def init_db() -> None:
    """Create or migrate the database schema to the newest revision (safe to re-run)."""
    engine = get_database(current_app).engine
    try:
        before, after = migrate.upgrade(engine, donor_key_secret=donor_key_secret(current_app))
    except OperationalError as exc:
        raise OneLineError(f"database error: {exc.orig}") from None
    if before == after:
        click.echo(f"database already at revision {after}")
    else:
        click.echo(f"database migrated from {before or 'empty'} to {after}")


def _campaign_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--title", required=True, help="Shown on the widget and donate page."),
        click.option("--currency", required=True, help="ISO 4217 code, e.g. USD."),
        click.option(
            "--tiers",
            required=True,
            help="Goals in major units, comma-separated, e.g. 0,2500,5000.",
        ),
        click.option(
            "--period",
            default="none",
            show_default=True,
            help="Reset totals every 'month' or 'week', or never ('none').",
        ),
        click.option(
            "--timezone",
            default="UTC",
            show_default=True,
            help="IANA timezone in which periods start.",
        ),
        click.option(
            "--locale",
            default="en_US",
            show_default=True,
            help="Locale for amounts, e.g. en_US, fr_FR.",
        ),
        click.option(
            "--show-cents/--no-cents",
            default=False,
            show_default=True,
            help="Show minor units in displayed amounts.",
        ),
        click.option("--draft", is_flag=True, help="Create it unpublished."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@tracker_cli.command("create-campaign")
@click.argument("slug")
@_campaign_options
@AMOUNT_PATTERN
def create_campaign_cmd(
    slug: str,
    title: str,
    currency: str,
    tiers: str,
    period: str,
    timezone: str,
    locale: str,
    show_cents: bool,
    draft: bool,
    amount_pattern: str | None,
) -> None:
    """Create campaign SLUG with its tier ladder."""
    with unit_of_work() as session:
        try:
            amounts = parse_tiers(tiers, currency)
        except MoneyError as exc:
            raise CampaignError(str(exc)) from None
        campaign = create_campaign(
            session,
            CampaignSpec(
                slug=slug,
                title=title,
                currency=currency,
                tiers=amounts,
                locale=locale,
                period=parse_kind(period),
                timezone=timezone,
                show_cents=show_cents,
                status=CampaignStatus.DRAFT if draft else CampaignStatus.ACTIVE,
                amount_pattern=amount_pattern,
            ),
        )
        click.echo(f"created campaign {campaign.slug} ({campaign.status.value})")


# Unknown options pass through so "-10" reaches the amount check ("must be positive")
# instead of click's "No such option '-1'".
@tracker_cli.command("add-offline-payment", context_settings={"ignore_unknown_options": True})
@click.argument("slug")
@click.argument("amount")
@click.option("--note", required=True, help="What was received and how.")
@click.option("--donor", default=None, help="Donor name, if known.")
@click.option("--at", "at", default=None, help="When it was received (ISO date); default now.")
@click.option(
    "--reference",
    default=None,
    help="Your own id for it (bank transaction id); re-running with it books nothing.",
)
@click.option(
    "--pledge",
    "pledge_id",
    type=click.IntRange(min=1),
    default=None,
    help="The offline pledge this money pays: marks it paid; booking it again books nothing.",
)
def add_offline_payment_cmd(
    slug: str,
    amount: str,
    note: str,
    donor: str | None,
    at: str | None,
    reference: str | None,
    pledge_id: int | None,
) -> None:
    """Book money received outside Stripe.

    AMOUNT for campaign SLUG is in major units, with a dot for decimals (150 or 150.50).
    """
    with unit_of_work() as session:
        campaign = get_campaign(session, slug)
        # Without an offset, the campaign's local time: "received on 1 December"
        # counts in December where the campaign is.
        when = _parse_instant(at, "--at", campaign.timezone)
        minor = parse_amount(amount, campaign.currency, "en_US")
        if not _PLAIN_AMOUNT.fullmatch(amount.strip()):
            # "1,250" must not become 1250 when an admin meant 1.250 KWD.
            raise MoneyError(f"{amount!r}: use digits and a dot for decimals, no grouping")
        booked = add_offline_payment(
            session,
            slug,
            minor,
            note=note,
            actor=_actor(),
            donor=donor,
            at=when,
            reference=reference,
            pledge_id=pledge_id,
        )
        if booked.new:
            click.echo(f"booked {booked.display} for {slug} (reference {booked.reference})")
        else:
            click.echo(f"reference {booked.reference} was already booked; nothing changed")


# set-campaign's options, each one key of update_campaign's changes. Another
# setting is one more option here and one more key there.
_SET_OPTIONS = [
    click.option("--title", default=None, help="Shown on the widget and donate page."),
    click.option(
        "--status",
        type=click.Choice([s.value for s in CampaignStatus]),
        default=None,
        help="draft (unpublished), active (takes donations) or closed (final figures shown).",
    ),
    click.option("--tiers", default=None, help="The whole ladder, major units, e.g. 0,2500,5000."),
    click.option(
        "--cta",
        default=None,
        help="Call to action on the donate page (≤ 120 characters); '' clears.",
    ),
    click.option("--locale", default=None, help="Locale for amounts, e.g. en_US, fr_FR."),
    click.option("--currency", default=None, help="ISO 4217 code; fixed once money is booked."),
    click.option("--period", default=None, help="month, week or none; fixed once money is booked."),
    click.option("--timezone", default=None, help="IANA timezone; fixed once money is booked."),
    click.option(
        "--presets",
        default=None,
        help="Suggested amounts on the donate page, major units, comma-separated "
        "(e.g. 10,25,50); '' to derive them from the tiers.",
    ),
    click.option(
        "--instructions",
        default=None,
        help="How to pay offline (bank details, address), shown to offline pledgers; '' clears.",
    ),
    AMOUNT_PATTERN,
]


def _set_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_SET_OPTIONS):
        func = option(func)
    return func


def _changes(session: Session, slug: str, given: dict[str, str]) -> dict[str, Any]:
    """The changes of set-campaign's options, parsed (amounts in the campaign's currency)."""
    changes: dict[str, Any] = dict(given)
    if "status" in changes:
        changes["status"] = CampaignStatus(changes["status"])
    if "amount_pattern" in changes:
        changes["amount_pattern"] = changes["amount_pattern"] or None
    if "period" in changes:
        changes["period"] = parse_kind(changes["period"])
    if "currency" in changes:
        changes["currency"] = normalize_currency(changes["currency"])
    if "tiers" in changes:
        currency = changes.get("currency") or get_campaign(session, slug).currency
        changes["tiers"] = parse_tiers(changes["tiers"], currency)
    return changes


def _notify_options(func: Callable[..., Any]) -> Callable[..., Any]:
    from tracker.scheduler.cli import notify_options

    return notify_options(func)


@tracker_cli.command("set-campaign")
@click.argument("slug")
@_set_options
@_notify_options
def set_campaign_cmd(slug: str, **options: Any) -> None:
    """Publish, close or edit a campaign.

    Changes campaign SLUG: its status, title, tiers, call to action, locale and
    donate page settings (each checked as create-campaign checks it and written
    to the audit trail), and who is notified how (docs/scheduler.md).
    """
    from tracker.scheduler.cli import NOTIFY_OPTIONS, apply_notify_options

    notify = {name: options.pop(name) for name in NOTIFY_OPTIONS}
    given = {name: value for name, value in options.items() if value is not None}
    if not given and all(value is None for value in notify.values()):
        names = ", ".join(f"--{name.replace('_', '-')}" for name in [*options, *notify])
        raise OneLineError(f"nothing to change: give one or more of {names}")
    with unit_of_work() as session:
        if given:
            campaign = update_campaign(session, slug, _changes(session, slug, given), _actor())
            parts = [f"status {campaign.status.value}"]
            if "presets" in given:
                parts.append(f"presets {campaign.preset_amounts or 'derived from the tiers'}")
            click.echo(f"updated {slug}: {', '.join(parts)}")
        notified = apply_notify_options(session, slug, notify)
        if notified:
            click.echo(notified)


@tracker_cli.command("demo")
@click.option("--reset-admin", is_flag=True, help="Give admin@example.org a new password.")
@click.option("--url", default=None, help="Base URL printed for the admin sign-in.")
def demo(reset_admin: bool, url: str | None) -> None:
    """Create the demo campaign and its admin; safe to re-run.

    USD, tiers $0 / $2,500 / $5,000, five donors and one partial refund: $2,811
    raised. The owner admin@example.org gets a random password, printed once.
    """
    from tracker.admin.cli import ensure_demo_admin

    with unit_of_work() as session:
        created = seed_demo(session)
    click.echo(f"demo campaign {'created' if created else 'already present'}: {DEMO_SLUG}")
    ensure_demo_admin(reset=reset_admin, base_url=url)


@tracker_cli.command("check-totals", short_help="Check every total against the ledger.")
@click.option("--repair", is_flag=True, help="Rewrite drifted totals from the ledger.")
def check_totals_cmd(repair: bool) -> None:
    """Recompute every total and per-day figure from the ledger; exit 1 if any row drifted."""
    with unit_of_work() as session:
        drifts: list[Drift | DailyDrift] = [*check_totals(session, repair=repair)]
        drifts += check_daily_totals(session, repair=repair)
    if not drifts:
        click.echo("totals match the ledger")
        return
    for drift in drifts:
        click.echo(drift.describe(), err=True)
    if repair:
        click.echo(f"repaired {len(drifts)} totals row(s) from the ledger", err=True)
        return
    raise click.exceptions.Exit(1)


def init_app(app: Flask) -> None:
    """Register the ``tracker`` command group."""
    import tracker.admin.cli  # noqa: F401 -- attaches the admin account commands
    from tracker.ops import cli as _ops  # noqa: F401 -- registers ``backup`` on the group
    from tracker.scheduler import cli as _scheduler_cli  # noqa: F401 -- attaches its commands

    app.cli.add_command(tracker_cli)


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


from tracker import privacy_cli  # noqa: E402, F401 -- registers erase-donor on tracker_cli (after it exists)
