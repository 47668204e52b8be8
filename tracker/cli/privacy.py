"""For whoever answers donors' privacy requests: ``flask --app wsgi tracker erase-donor EMAIL``."""

from __future__ import annotations

import click

from tracker.cli.core import OneLineError, _actor, tracker_cli, unit_of_work
from tracker.services.privacy import ErasureError, erase_donor


@tracker_cli.command("erase-donor")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Erase without asking for confirmation.")
def erase_donor_cmd(email: str, yes: bool) -> None:
    """Erase a donor's name, e-mail and messages.

    Removes the personal data of the donor EMAIL from the whole database.
    Amounts, totals and donor counts stay as they are. Stripe keeps its own
    copy: delete the customer there too (docs/privacy.md).
    """
    if not yes:
        click.confirm(
            "Erase this donor's name, address and messages everywhere? This cannot be undone.",
            abort=True,
        )
    with unit_of_work() as session:
        try:
            report = erase_donor(session, email, actor=_actor())
        except ErasureError as exc:
            raise OneLineError(str(exc)) from None
    if not report.found:
        click.echo(f"nothing stored concerned that address (audit record {report.audit_id})")
        return
    click.echo(report.describe())
