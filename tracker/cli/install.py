"""For whoever installs or tries tracker: ``init-db`` and ``demo``."""

from __future__ import annotations

import click
from flask import current_app
from sqlalchemy.exc import OperationalError

from tracker import migrate
from tracker.cli.core import OneLineError, tracker_cli, unit_of_work
from tracker.config import donor_key_secret
from tracker.db import get_database
from tracker.services.demo import DEMO_SLUG, seed_demo


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
