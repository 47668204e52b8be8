"""The admin: accounts, per-day totals, corrections and the audit's client address.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

``admin_users`` holds who may sign in. ``daily_totals`` is an aggregate per
(campaign, local day) kept in the ledger's transaction, backfilled here from
the existing entries (in Python: SQLite cannot convert to a campaign's
timezone). ``ledger_entries.corrects_entry_id`` and ``audit_events.address``
are plain ADD COLUMNs.

Corrections get their own kinds, ``correction_plus`` and ``correction_minus``
(the sign still follows the kind), so the ledger's two CHECK constraints on
``kind`` change. PostgreSQL alters them in place. SQLite keeps CHECKs in the
table's DDL, so the ledger is rebuilt, and other tables' foreign keys keep
naming ``ledger_entries``: it is copied aside, dropped and created
again under the new DDL (taken from the current one, so columns added by
other revisions survive), with foreign keys deferred to the commit instead
of ``PRAGMA foreign_keys=OFF`` (impossible inside the migration's
transaction); its indexes and append-only triggers are recreated from their
own saved SQL.
"""

from __future__ import annotations

from datetime import UTC

import sqlalchemy as sa
from alembic import op

from tracker.domain.daily import fold_day, local_day
from tracker.domain.ledger import EntryKind

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_OLD_KINDS = "kind IN ('payment', 'refund', 'dispute_lost', 'dispute_won')"
_NEW_KINDS = (
    "kind IN ('payment', 'refund', 'dispute_lost', 'dispute_won', "
    "'correction_plus', 'correction_minus')"
)
_OLD_SIGN = (
    "(kind IN ('payment', 'dispute_won') AND amount > 0)"
    " OR (kind IN ('refund', 'dispute_lost') AND amount < 0)"
)
_NEW_SIGN = (
    "(kind IN ('payment', 'dispute_won', 'correction_plus') AND amount > 0)"
    " OR (kind IN ('refund', 'dispute_lost', 'correction_minus') AND amount < 0)"
)


def _ledger_checks(kinds: str, sign: str, old_kinds: str, old_sign: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE ledger_entries"
            " DROP CONSTRAINT ck_ledger_entries_entry_kind,"
            " DROP CONSTRAINT ck_ledger_entries_amount_sign,"
            f" ADD CONSTRAINT ck_ledger_entries_entry_kind CHECK ({kinds}),"
            f" ADD CONSTRAINT ck_ledger_entries_amount_sign CHECK ({sign})"
        )
        return
    ddl = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'ledger_entries'"
    ).scalar_one()
    for old, new in ((old_kinds, kinds), (old_sign, sign)):
        if old not in ddl:
            raise RuntimeError("the ledger's CHECK constraints are not the expected ones")
        ddl = ddl.replace(old, new)
    extras = (
        bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'ledger_entries'"
            " AND type IN ('index', 'trigger') AND sql IS NOT NULL ORDER BY type"
        )
        .scalars()
        .all()
    )
    # Rows referencing the ledger (audit records) are orphans between the DROP
    # and the re-insert: deferred, they are checked at commit, when every
    # entry is back under its own id.
    op.execute("PRAGMA defer_foreign_keys = ON")
    op.execute("CREATE TEMP TABLE ledger_entries_copy AS SELECT * FROM ledger_entries")
    # Dropping a table drops its triggers first, so the append-only ones do not fire.
    op.execute("DROP TABLE ledger_entries")
    op.execute(ddl)
    op.execute("INSERT INTO ledger_entries SELECT * FROM ledger_entries_copy")
    op.execute("DROP TABLE ledger_entries_copy")
    for statement in extras:
        op.execute(statement)


def upgrade() -> None:
    op.create_table(
        "admin_users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "owner",
                "viewer",
                name="admin_role",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("session_nonce", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_sign_in_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_users")),
        sa.UniqueConstraint("email", name=op.f("uq_admin_users_email")),
    )
    op.create_table(
        "daily_totals",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("raised", sa.BigInteger(), nullable=False),
        sa.Column("payments", sa.Integer(), nullable=False),
        sa.Column("gross", sa.BigInteger(), nullable=False),
        sa.Column("refunded", sa.BigInteger(), nullable=False),
        sa.Column("disputed", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_daily_totals_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "day", name=op.f("pk_daily_totals")),
    )
    op.add_column("ledger_entries", sa.Column("corrects_entry_id", _ID, nullable=True))
    op.create_index("ix_ledger_entries_corrects_entry_id", "ledger_entries", ["corrects_entry_id"])
    op.create_index(
        "ix_ledger_entries_campaign_occurred",
        "ledger_entries",
        ["campaign_id", "occurred_at", "id"],
    )
    op.add_column("audit_events", sa.Column("address", sa.String(length=64), nullable=True))
    _ledger_checks(_NEW_KINDS, _NEW_SIGN, _OLD_KINDS, _OLD_SIGN)
    _backfill_daily_totals()


def _backfill_daily_totals() -> None:
    bind = op.get_bind()
    campaigns = sa.table("campaigns", sa.column("id"), sa.column("timezone"))
    ledger = sa.table(
        "ledger_entries",
        sa.column("campaign_id"),
        sa.column("occurred_at", sa.DateTime(timezone=True)),
        sa.column("kind"),
        sa.column("amount"),
    )
    zones = {cid: tz for cid, tz in bind.execute(sa.select(campaigns.c.id, campaigns.c.timezone))}
    acc: dict[tuple[int, str], list[int]] = {}
    rows = bind.execute(
        sa.select(
            ledger.c.campaign_id, ledger.c.occurred_at, ledger.c.kind, ledger.c.amount
        ).execution_options(yield_per=10_000)
    )
    for cid, at, kind, amount in rows:
        # SQLite hands back naive UTC values (the models' UTCDateTime stores them so).
        instant = at if at.tzinfo else at.replace(tzinfo=UTC)
        day = local_day(zones[cid], instant)
        fold_day(acc.setdefault((cid, day), [0, 0, 0, 0, 0]), EntryKind(kind), int(amount))
    names = ("raised", "payments", "gross", "refunded", "disputed")
    daily = sa.table(
        "daily_totals", sa.column("campaign_id"), sa.column("day"), *map(sa.column, names)
    )
    batch = [
        {"campaign_id": cid, "day": day, **dict(zip(names, row, strict=True))}
        for (cid, day), row in acc.items()
    ]
    if batch:
        op.bulk_insert(daily, batch)


def downgrade() -> None:
    # Refused by the old CHECKs (an error, nothing lost) while corrections exist.
    _ledger_checks(_OLD_KINDS, _OLD_SIGN, _NEW_KINDS, _NEW_SIGN)
    op.drop_index("ix_ledger_entries_campaign_occurred", "ledger_entries")
    op.drop_index("ix_ledger_entries_corrects_entry_id", "ledger_entries")
    # Plain DROP COLUMN (SQLite >= 3.35 has it): a batch rebuild of the ledger
    # would drop its append-only triggers.
    op.execute("ALTER TABLE ledger_entries DROP COLUMN corrects_entry_id")
    op.execute("ALTER TABLE audit_events DROP COLUMN address")
    op.drop_table("daily_totals")
    op.drop_table("admin_users")
