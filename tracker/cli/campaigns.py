"""For the publisher running campaigns: ``create-campaign`` and ``set-campaign``.

``set-campaign`` also takes the notification options (docs/scheduler.md), from
:mod:`tracker.cli.notifications`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from sqlalchemy.orm import Session

from tracker.cli.core import OneLineError, _actor, tracker_cli, unit_of_work
from tracker.cli.notifications import NOTIFY_OPTIONS, apply_notify_options, notify_options
from tracker.domain.money import MoneyError, normalize_currency
from tracker.domain.periods import parse_kind
from tracker.models import CampaignStatus
from tracker.services.campaigns import (
    CampaignError,
    CampaignSpec,
    create_campaign,
    get_campaign,
    parse_tiers,
    update_campaign,
)

AMOUNT_PATTERN = click.option(
    "--amount-pattern",
    default=None,
    help="Show amounts with this Babel pattern, e.g. '#,##0 ¤' for '2,811 $' (docs/i18n.md); "
    "'' for the locale's own.",
)


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


@tracker_cli.command("set-campaign")
@click.argument("slug")
@_set_options
@notify_options
def set_campaign_cmd(slug: str, **options: Any) -> None:
    """Publish, close or edit a campaign.

    Changes campaign SLUG: its status, title, tiers, call to action, locale and
    donate page settings (each checked as create-campaign checks it and written
    to the audit trail), and who is notified how (docs/scheduler.md).
    """
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
