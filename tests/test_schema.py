"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tracker import migrate
from tracker.db import Database
from tracker.models import Base


def test_migrations_match_the_models(database: Database) -> None:
    with database.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    assert migrate.current_revision(database.engine) == migrate.head_revision()


def test_upgrade_is_idempotent(database: Database) -> None:
    before, after = migrate.upgrade(database.engine)
    assert before == after == migrate.head_revision()
