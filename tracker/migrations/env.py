"""Alembic environment: runs on the connection ``tracker.migrate`` hands over.

Run through ``flask --app wsgi tracker init-db``; for authoring a revision,
``alembic -c tracker/migrations/alembic.ini revision -m "..."`` with
``TRACKER_DATABASE_URL`` set.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from tracker.db import make_engine
from tracker.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = os.environ.get("TRACKER_DATABASE_URL", "sqlite:///instance/tracker.sqlite3")
    engine = make_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline SQL generation is not supported; run init-db against a database")
run_migrations_online()
