"""The ``tracker`` command group and what every command shares.

For whoever writes a command: the group itself (``tracker_cli``, which other
modules attach their commands to), one-line errors, the unit of work each
command runs in, the actor written to the audit trail and ISO instants read
from options. Each command is one transaction: all or nothing.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from zoneinfo import ZoneInfo

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.orm import Session

from tracker.db import get_database
from tracker.domain.ledger import LedgerError
from tracker.domain.money import MoneyError
from tracker.domain.periods import PeriodError
from tracker.domain.progress import TierError
from tracker.services.campaigns import CampaignError, CampaignNotFound

_EXPECTED = (CampaignError, CampaignNotFound, MoneyError, TierError, PeriodError, LedgerError)


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
