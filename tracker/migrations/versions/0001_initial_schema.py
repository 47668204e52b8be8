"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28

Campaigns and tiers, pledges, the append-only ledger, per-period totals with
their donor sets, and the audit trail. Triggers make the ledger append-only
on both databases: a correction is a new entry, never an edit.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("locale", sa.String(length=32), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "active",
                "closed",
                name="campaign_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("show_cents", sa.Boolean(), nullable=False),
        sa.Column(
            "period",
            sa.Enum(
                "none",
                "month",
                "week",
                name="period_kind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "ends_at IS NULL OR starts_at IS NULL OR ends_at > starts_at",
            name=op.f("ck_campaigns_ends_after_start"),
        ),
        sa.CheckConstraint("length(slug) > 0", name=op.f("ck_campaigns_slug_not_empty")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
        sa.UniqueConstraint("slug", name=op.f("uq_campaigns_slug")),
    )
    op.create_table(
        "period_donors",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("period_key", sa.String(length=16), nullable=False),
        sa.Column("donor_key", sa.String(length=320), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_period_donors_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "campaign_id", "period_key", "donor_key", name=op.f("pk_period_donors")
        ),
    )
    op.create_table(
        "period_totals",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("period_key", sa.String(length=16), nullable=False),
        sa.Column("raised", sa.BigInteger(), nullable=False),
        sa.Column("donors", sa.Integer(), nullable=False),
        sa.Column("payments", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "donors >= 0 AND payments >= 0 AND donors <= payments",
            name=op.f("ck_period_totals_counts_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_period_totals_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "period_key", name=op.f("pk_period_totals")),
    )
    op.create_table(
        "pledges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "frequency",
            sa.Enum(
                "one_time",
                "monthly",
                name="pledge_frequency",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("donor_name", sa.String(length=200), nullable=True),
        sa.Column("donor_email", sa.String(length=320), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("anonymous", sa.Boolean(), nullable=False),
        sa.Column(
            "source",
            sa.Enum(
                "stripe",
                "offline",
                name="pledge_source",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "paid",
                "failed",
                "expired",
                "canceled",
                name="pledge_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "amount > 0 AND amount < 1000000000000000", name=op.f("ck_pledges_amount_positive")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_pledges_campaign_id_campaigns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pledges")),
    )
    with op.batch_alter_table("pledges", schema=None) as batch_op:
        batch_op.create_index("ix_pledges_campaign_status", ["campaign_id", "status"], unique=False)

    op.create_table(
        "tiers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("label", sa.String(length=80), nullable=True),
        sa.CheckConstraint(
            "amount >= 0 AND amount < 1000000000000000", name=op.f("ck_tiers_amount_range")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_tiers_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tiers")),
        sa.UniqueConstraint("campaign_id", "amount", name="uq_tiers_campaign_amount"),
        sa.UniqueConstraint("campaign_id", "position", name="uq_tiers_campaign_position"),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column(
            "source",
            sa.Enum(
                "stripe",
                "offline",
                "demo",
                name="entry_source",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("reference", sa.String(length=255), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "payment",
                "refund",
                "dispute_lost",
                "dispute_won",
                name="entry_kind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_key", sa.String(length=16), nullable=False),
        sa.Column("donor_key", sa.String(length=320), nullable=False),
        sa.Column("pledge_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(kind IN ('payment', 'dispute_won') AND amount > 0)"
            " OR (kind IN ('refund', 'dispute_lost') AND amount < 0)",
            name=op.f("ck_ledger_entries_amount_sign"),
        ),
        sa.CheckConstraint(
            "amount <> 0 AND amount > -1000000000000000 AND amount < 1000000000000000",
            name=op.f("ck_ledger_entries_amount_range"),
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_ledger_entries_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(
            ["pledge_id"], ["pledges.id"], name=op.f("fk_ledger_entries_pledge_id_pledges")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
        sa.UniqueConstraint("source", "reference", name="uq_ledger_entries_source_reference"),
    )
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ledger_entries_campaign_period", ["campaign_id", "period_key"], unique=False
        )
    _append_only_ledger()

    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column(
            "ledger_entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_audit_events_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(
            ["ledger_entry_id"],
            ["ledger_entries.id"],
            name=op.f("fk_audit_events_ledger_entry_id_ledger_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )


def _append_only_ledger() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION ledger_entries_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'ledger entries are append-only';
            END;
            $$ LANGUAGE plpgsql
        """)
        op.execute("""
            CREATE TRIGGER ledger_entries_append_only
            BEFORE UPDATE OR DELETE ON ledger_entries
            FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only()
        """)
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(f"""
                CREATE TRIGGER ledger_entries_no_{action.lower()}
                BEFORE {action} ON ledger_entries
                BEGIN
                    SELECT RAISE(ABORT, 'ledger entries are append-only');
                END
            """)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER ledger_entries_append_only ON ledger_entries")
        op.execute("DROP FUNCTION ledger_entries_append_only()")
    op.drop_table("audit_events")
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_entries_campaign_period")

    op.drop_table("ledger_entries")
    op.drop_table("tiers")
    with op.batch_alter_table("pledges", schema=None) as batch_op:
        batch_op.drop_index("ix_pledges_campaign_status")

    op.drop_table("pledges")
    op.drop_table("period_totals")
    op.drop_table("period_donors")
    op.drop_table("campaigns")
