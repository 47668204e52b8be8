"""The scheduler's outbox and each campaign's notification settings.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

New tables only, so SQLite needs no table rebuild: ``outbox_messages`` holds
every outgoing message under a unique key until it is delivered;
``campaign_notifications`` holds a campaign's recipients, chat webhook and
summary cadence, and what the scheduler last checked for it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def upgrade() -> None:
    op.create_table(
        "campaign_notifications",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("emails", sa.Text(), server_default="", nullable=False),
        sa.Column("chat_url", sa.String(length=500), nullable=True),
        sa.Column(
            "summary", _enum("summary_cadence", "off", "daily", "weekly", "monthly"), nullable=False
        ),
        sa.Column("summary_hour", sa.Integer(), nullable=False),
        sa.Column("thank_you", sa.Boolean(), nullable=False),
        sa.Column("checked_period", sa.String(length=16), nullable=True),
        sa.Column("checked_version", sa.Integer(), nullable=True),
        sa.Column("checked_raised", sa.BigInteger(), nullable=True),
        sa.Column("thanked_entry_id", sa.BigInteger(), nullable=True),
        sa.Column("summary_fired_on", sa.String(length=10), nullable=True),
        sa.Column("last_summary_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_summary_period", sa.String(length=16), nullable=True),
        sa.Column("last_summary_raised", sa.BigInteger(), nullable=True),
        sa.Column("last_summary_entry_id", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "summary_hour >= 0 AND summary_hour <= 23",
            name=op.f("ck_campaign_notifications_summary_hour_range"),
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_notifications_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_campaign_notifications")),
    )
    op.create_table(
        "outbox_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("channel", _enum("outbox_channel", "email", "chat"), nullable=False),
        sa.Column("recipient", sa.String(length=500), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=True),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("ledger_entry_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "status",
            _enum("outbox_status", "pending", "sent", "failed", "logged", "canceled"),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_outbox_messages_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_messages")),
        sa.UniqueConstraint("key", name=op.f("uq_outbox_messages_key")),
        sa.UniqueConstraint("message_id", name=op.f("uq_outbox_messages_message_id")),
    )
    op.create_index("ix_outbox_messages_campaign_id", "outbox_messages", ["campaign_id"])
    op.create_index(
        "ix_outbox_messages_status_next", "outbox_messages", ["status", "next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_messages_status_next", "outbox_messages")
    op.drop_index("ix_outbox_messages_campaign_id", "outbox_messages")
    op.drop_table("outbox_messages")
    op.drop_table("campaign_notifications")
