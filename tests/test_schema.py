"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import re
from pathlib import Path

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


def test_revision_0006_rebuilds_tables_keeping_rows_and_the_ledger_append_only(
    database: Database,
) -> None:
    # SQLite rebuilds tables to add CHECKs: with rows in them (and audit events
    # referring to the ledger) the upgrade must keep every row and every trigger.
    import pytest
    from alembic import command
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from tests import factories
    from tracker.models import AuditEvent

    with database.session() as session:
        factories.campaign(session)
        entry = factories.pay(session, "fund", "pi_1", 1_000)
        session.add(AuditEvent(actor="test", action="offline", ledger_entry_id=entry.entry_id))
        session.commit()
    with database.engine.connect() as conn:
        config = migrate._config()
        config.attributes["connection"] = conn
        command.downgrade(config, "0003")
        conn.commit()
    assert migrate.upgrade(database.engine) == ("0003", migrate.head_revision())
    with database.engine.connect() as conn:
        assert conn.execute(text("SELECT sum(amount) FROM ledger_entries")).scalar() == 1_000
        assert conn.execute(text("SELECT count(*) FROM audit_events")).scalar() == 1
        assert conn.execute(text("SELECT disputed FROM stripe_payments")).all() == []
        for statement in ("UPDATE ledger_entries SET amount = 2", "DELETE FROM ledger_entries"):
            with pytest.raises(DBAPIError, match="append-only"):
                conn.execute(text(statement))
            conn.rollback()


# SQL that reads the database server's clock (PostgreSQL's and SQLite's spellings).
SERVER_CLOCK = re.compile(
    r"func\.(now|current_\w+|localtime\w*|date|julianday|strftime|date_trunc)\b"
    r"|current_(timestamp|date|time)|localtimestamp|date_trunc|\w+_timestamp\(|['\"]now['\"]",
    re.IGNORECASE,
)


def test_no_statement_reads_the_database_servers_clock() -> None:
    # Every instant comes from Python (utcnow(), the scheduler's clock) and reaches
    # the database as a parameter: that is what lets the moved clocks of `make test`
    # run on SQLite only (tests/conftest.py), and what keeps two hosts whose database
    # clock differs from theirs in agreement.
    root = Path(__file__).resolve().parent.parent / "tracker"
    found = [
        f"{path.relative_to(root)}:{number}: {line.strip()}"
        for path in sorted(root.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if SERVER_CLOCK.search(line)
    ]
    assert not found, "\n".join(found)


def test_revision_0010_builds_its_ledger_index_without_holding_off_writes(
    database: Database,
) -> None:
    # A plain CREATE INDEX on a big ledger would stop every webhook's booking until
    # it is built; PostgreSQL builds these CONCURRENTLY, outside a transaction.
    from alembic import command
    from sqlalchemy import event

    with database.engine.connect() as conn:
        config = migrate._config()
        config.attributes["connection"] = conn
        command.downgrade(config, "0009")
        conn.commit()
    sent: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        sent.append(" ".join(statement.split()))

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        assert migrate.upgrade(database.engine) == ("0009", migrate.head_revision())
    finally:
        event.remove(database.engine, "before_cursor_execute", record)
    indexes = [s for s in sent if s.startswith(("CREATE INDEX", "DROP INDEX"))]
    assert len(indexes) == 3, sent
    concurrently = database.engine.dialect.name == "postgresql"
    assert all(("CONCURRENTLY" in s) == concurrently for s in indexes), indexes
    with database.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
