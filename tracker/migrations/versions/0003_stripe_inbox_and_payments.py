"""The Stripe webhook inbox and the payments it booked.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

Two new tables only (plain CREATE TABLE and indexes), so SQLite needs no
table rebuild: ``stripe_events`` stores every verified event before it is
applied; ``stripe_payments`` maps Stripe's charge, PaymentIntent and invoice
ids to the ledger reference of each payment and keeps its refund high-water
mark and any flag for an admin (a payment in a foreign currency).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("api_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "received",
                "processed",
                "ignored",
                "deferred",
                "failed",
                name="inbox_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("waiting_for", sa.String(length=255), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_events")),
    )
    op.create_index(
        "ix_stripe_events_status_created", "stripe_events", ["status", "api_created_at"]
    )
    op.create_index("ix_stripe_events_waiting_for", "stripe_events", ["waiting_for"])

    op.create_table(
        "stripe_payments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=255), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("pledge_id", sa.Integer(), nullable=True),
        sa.Column("payment_intent_id", sa.String(length=255), nullable=True),
        sa.Column("charge_id", sa.String(length=255), nullable=True),
        sa.Column("invoice_id", sa.String(length=255), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("donor_key", sa.String(length=320), nullable=False),
        sa.Column("refunded", sa.BigInteger(), nullable=False),
        sa.Column("flag", sa.String(length=64), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "amount > 0 AND amount < 1000000000000000",
            name=op.f("ck_stripe_payments_amount_positive"),
        ),
        sa.CheckConstraint("refunded >= 0", name=op.f("ck_stripe_payments_refunded_not_negative")),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_stripe_payments_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(
            ["pledge_id"], ["pledges.id"], name=op.f("fk_stripe_payments_pledge_id_pledges")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_payments")),
        sa.UniqueConstraint("reference", name=op.f("uq_stripe_payments_reference")),
    )
    for name in ("payment_intent_id", "charge_id", "invoice_id"):
        op.create_index(f"ix_stripe_payments_{name}", "stripe_payments", [name], unique=True)


def downgrade() -> None:
    for name in ("payment_intent_id", "charge_id", "invoice_id"):
        op.drop_index(f"ix_stripe_payments_{name}", "stripe_payments")
    op.drop_table("stripe_payments")
    op.drop_index("ix_stripe_events_waiting_for", "stripe_events")
    op.drop_index("ix_stripe_events_status_created", "stripe_events")
    op.drop_table("stripe_events")
