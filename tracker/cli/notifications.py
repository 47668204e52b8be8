"""``set-campaign``'s notification options: who is told what, and how often.

Kept beside the command that takes them rather than with the scheduler that acts
on them: :mod:`tracker.scheduler.cli` imports :mod:`tracker.cli`, which loads
``set-campaign``, so the options living there made a cycle (importing
``tracker.scheduler.cli`` first failed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from flask import current_app
from sqlalchemy.orm import Session

from tracker.notify import wiring
from tracker.services.notifications import NotificationChanges, set_notifications

# The parameter names notify_options adds, which set-campaign hands on as one dict.
NOTIFY_OPTIONS = ("notify_email", "notify_chat", "summary", "summary_hour", "thank_you")


def notify_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The notification options, for ``set-campaign``."""
    options = [
        click.option(
            "--notify-email",
            default=None,
            help="Who gets summaries and alerts: addresses, comma-separated; '' clears.",
        ),
        click.option("--notify-chat", default=None, help="Slack/Discord webhook URL; '' clears."),
        click.option(
            "--summary",
            type=click.Choice(["daily", "weekly", "monthly", "off"]),
            default=None,
            help="How often a progress summary is sent.",
        ),
        click.option(
            "--summary-hour",
            type=click.IntRange(0, 23),
            default=None,
            help="At which hour of the campaign's timezone (default 8).",
        ),
        click.option(
            "--thank-you/--no-thank-you",
            default=None,
            help="E-mail donors a thank-you after their payment is booked (default off).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def apply_notify_options(session: Session, slug: str, options: dict[str, Any]) -> str | None:
    """Apply the notification options given to ``set-campaign``; None if there were none.

    :return: one line describing the settings now.
    """
    changes = NotificationChanges(
        emails=options.get("notify_email"),
        chat_url=options.get("notify_chat"),
        summary=options.get("summary"),
        summary_hour=options.get("summary_hour"),
        thank_you=options.get("thank_you"),
    )
    if changes == NotificationChanges():
        return None
    row = set_notifications(session, slug, changes, wiring.chat_policy(current_app))
    chat = "a chat webhook" if row.chat_url else "no chat"
    return (
        f"notifications of {slug}: {row.emails or 'no e-mail'}, {chat}, "
        f"summary {row.summary.value} at {row.summary_hour:02d}:00, "
        f"thank-you {'on' if row.thank_you else 'off'}"
    )
