"""``flask --app wsgi tracker backup PATH``: a consistent backup while the service runs."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app

from tracker.cli import OneLineError, tracker_cli
from tracker.ops.backup import BackupError, backup


@tracker_cli.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def backup_cmd(path: Path) -> None:
    """Back the database up to PATH, a new file.

    SQLite's online backup API, or pg_dump's custom format on PostgreSQL; the
    service may keep running meanwhile.
    """
    try:
        done = backup(current_app.config["DATABASE_URL"], path)
    except BackupError as exc:
        raise OneLineError(str(exc)) from None
    click.echo(f"backed up the {done.dialect} database to {done.path} ({done.size:,} bytes)")
    click.echo(f"restore: {done.restore}")
