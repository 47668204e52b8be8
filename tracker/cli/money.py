"""For whoever keeps the books: offline money (``add-offline-payment``) and ``check-totals``."""

from __future__ import annotations

import re

import click

from tracker.cli.core import _actor, _parse_instant, tracker_cli, unit_of_work
from tracker.domain.money import MoneyError, parse_amount
from tracker.services.campaigns import get_campaign
from tracker.services.ledger import DailyDrift, Drift, check_daily_totals, check_totals
from tracker.services.offline import add_offline_payment

# Amounts typed on the command line: digits, and a dot before any decimals.
_PLAIN_AMOUNT = re.compile(r"[0-9]+(\.[0-9]+)?")


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
