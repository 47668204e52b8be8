"""Admin account commands: ``create-admin``, ``list-admins``, ``remove-admin``.

Attached to the ``tracker`` group (``flask --app wsgi tracker create-admin ...``).
"""

from __future__ import annotations

import secrets
import sys

import click
from flask import current_app

from tracker.cli import OneLineError, _actor, tracker_cli, unit_of_work
from tracker.models import AdminRole
from tracker.services.admins import (
    AdminError,
    check_password_rules,
    find_admin,
    list_admins,
    remove_admin,
    save_admin,
)

DEMO_ADMIN = "admin@example.org"


def _read_password() -> str:
    """One line from standard input when it is not a terminal, else prompted twice."""
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    first: str = click.prompt("Password", hide_input=True)
    second: str = click.prompt("Repeat it", hide_input=True)
    if first != second:
        raise OneLineError("the two passwords differ; nothing changed")
    return first


@tracker_cli.command("create-admin")
@click.argument("email")
@click.option(
    "--role",
    type=click.Choice([r.value for r in AdminRole]),
    default=None,
    help="owner (everything) or viewer (reads only); default owner, or unchanged on a reset.",
)
def create_admin_cmd(email: str, role: str | None) -> None:
    """Create admin EMAIL, or give it a new password.

    A new password for an existing admin also signs it out everywhere.

    The password is read from standard input when it is not a terminal (one
    line), otherwise prompted twice without echo; at least 12 characters.
    """
    password = _read_password()
    try:
        check_password_rules(password)
    except AdminError as exc:
        raise OneLineError(str(exc)) from None
    with unit_of_work() as session:
        try:
            saved = save_admin(
                session, email, password, role=AdminRole(role) if role else None, actor=_actor()
            )
        except AdminError as exc:
            raise OneLineError(str(exc)) from None
        what = "created" if saved.created else "new password set (signed out everywhere) for"
        click.echo(f"{what} admin {saved.admin.email} ({saved.admin.role.value})")


@tracker_cli.command("list-admins")
def list_admins_cmd() -> None:
    """List the admins: e-mail, role, last sign-in."""
    with unit_of_work() as session:
        admins = list_admins(session)
        if not admins:
            click.echo("no admins yet: flask --app wsgi tracker create-admin EMAIL")
        for admin in admins:
            last = admin.last_sign_in_at.isoformat() if admin.last_sign_in_at else "never"
            click.echo(f"{admin.email}\t{admin.role.value}\tlast sign-in {last}")


@tracker_cli.command("remove-admin")
@click.argument("email")
def remove_admin_cmd(email: str) -> None:
    """Remove admin EMAIL; their open sessions end at once."""
    with unit_of_work() as session:
        try:
            remove_admin(session, email, actor=_actor())
        except AdminError as exc:
            raise OneLineError(str(exc)) from None
    click.echo(f"removed admin {email.strip().lower()}")


def ensure_demo_admin(*, reset: bool, base_url: str | None) -> None:
    """Create the demo owner with a random password and print it once (``tracker demo``).

    An existing demo admin keeps its password unless ``reset``.
    """
    base = (base_url or current_app.config.get("PUBLIC_URL") or "http://127.0.0.1:5000").rstrip("/")
    with unit_of_work() as session:
        if find_admin(session, DEMO_ADMIN) is not None and not reset:
            click.echo(
                f"demo admin {DEMO_ADMIN} already present (its password was printed when it "
                "was created; flask --app wsgi tracker demo --reset-admin prints a new one)"
            )
            return
        password = secrets.token_urlsafe(12)
        save_admin(session, DEMO_ADMIN, password, role=AdminRole.OWNER, actor=_actor())
    click.echo(f"admin sign-in   {base}/admin/login")
    click.echo(f"  e-mail        {DEMO_ADMIN}")
    click.echo(f"  password      {password}   (shown once)")
