"""The ``flask --app wsgi tracker ...`` commands. Each is one transaction: all or nothing.

The commands are grouped by who runs them:

- :mod:`tracker.cli.core`: the ``tracker`` group (``tracker_cli``) and what every
  command shares (one-line errors, the unit of work, the audit actor);
- :mod:`tracker.cli.install`: installing and trying it (``init-db``, ``demo``);
- :mod:`tracker.cli.campaigns`: running campaigns (``create-campaign``, ``set-campaign``),
  with the notification options of :mod:`tracker.cli.notifications`;
- :mod:`tracker.cli.money`: the books (``add-offline-payment``, ``check-totals``);
- :mod:`tracker.cli.inbox`: the Stripe inbox (``retry-inbox``, ``reconcile``);
- :mod:`tracker.cli.privacy`: donors' privacy requests (``erase-donor``).

Other packages attach their own commands to the same group when the app starts
(:func:`init_app`): the admin accounts (:mod:`tracker.admin.cli`), ``backup``
(:mod:`tracker.ops.cli`) and the scheduler (:mod:`tracker.scheduler.cli`).
"""

from __future__ import annotations

from flask import Flask

# Imported for their side effect: each registers its commands on tracker_cli.
from tracker.cli import campaigns, inbox, install, money, privacy  # noqa: F401
from tracker.cli.core import (
    OneLineCommand,
    OneLineError,
    _actor,
    _parse_instant,
    tracker_cli,
    unit_of_work,
)

__all__ = [
    "OneLineCommand",
    "OneLineError",
    "_actor",
    "_parse_instant",
    "init_app",
    "tracker_cli",
    "unit_of_work",
]


def init_app(app: Flask) -> None:
    """Register the ``tracker`` command group."""
    import tracker.admin.cli  # noqa: F401 -- attaches the admin account commands
    from tracker.ops import cli as _ops  # noqa: F401 -- registers ``backup`` on the group
    from tracker.scheduler import cli as _scheduler_cli  # noqa: F401 -- attaches its commands

    app.cli.add_command(tracker_cli)
