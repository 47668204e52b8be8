"""Bounds on every stored amount and total, dispute withdrawals, dead inbox events.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

- ``period_totals.raised`` stays within ±10**18 (entries are below 10**15 each,
  so no accepted entry can take a total out of a 64-bit integer);
- on SQLite, where a column holds whatever it is given and an integer
  overflow silently becomes a float, every amount and total must be stored as
  an integer (``typeof(...) = 'integer'``);
- ``stripe_payments.disputed``: what disputes hold withdrawn from the payment
  now; refunds and disputes together never exceed the payment;
- ``stripe_events``: status ``dead`` (given up after too many attempts) and
  ``next_attempt_at`` (the growing wait between automatic retries).

SQLite cannot add a CHECK constraint to a table: ``period_totals``,
``stripe_payments`` and ``stripe_events`` are rebuilt (batch mode; no table
refers to them and they carry no triggers). The ledger is not rebuilt: audit
events refer to it (dropping it under enforced foreign keys fails) and its
append-only triggers would go with it, so a trigger refuses a non-integer
amount there instead.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TOTAL_LIMIT = 10**18
_OLD_STATUSES = ("received", "processed", "ignored", "deferred", "failed")
_NEW_STATUSES = (*_OLD_STATUSES, "dead")
_LEDGER_INTEGER = "ledger_entries_amount_integer"


def _status(values: tuple[str, ...]) -> sa.Enum:
    return sa.Enum(
        *values, name="inbox_status", native_enum=False, create_constraint=True, length=16
    )


def _integer(column: str) -> str:
    return f"typeof({column}) = 'integer'"


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        # PostgreSQL's BIGINT holds integers only; SQLite's column holds anything.
        # A trigger, not a CHECK: adding a CHECK rebuilds the table, and the ledger
        # is referred to by audit events (a rebuild under enforced foreign keys
        # fails) and guarded by triggers of its own. UPDATE is refused already.
        op.execute(f"""
            CREATE TRIGGER {_LEDGER_INTEGER}
            BEFORE INSERT ON ledger_entries
            WHEN typeof(NEW.amount) != 'integer'
            BEGIN
                SELECT RAISE(ABORT, 'ledger amounts are integers');
            END
        """)

    with op.batch_alter_table("period_totals") as batch:
        batch.create_check_constraint(
            op.f("ck_period_totals_raised_range"),
            f"raised >= -{TOTAL_LIMIT} AND raised <= {TOTAL_LIMIT}",
        )
        if sqlite:
            batch.create_check_constraint(
                op.f("ck_period_totals_counts_integer"),
                " AND ".join(_integer(c) for c in ("raised", "donors", "payments", "version")),
            )

    with op.batch_alter_table("stripe_payments") as batch:
        batch.add_column(sa.Column("disputed", sa.BigInteger(), nullable=False, server_default="0"))
        batch.create_check_constraint(
            op.f("ck_stripe_payments_holds"), "disputed >= 0 AND refunded + disputed <= amount"
        )
        if sqlite:
            batch.create_check_constraint(
                op.f("ck_stripe_payments_amounts_integer"),
                " AND ".join(_integer(c) for c in ("amount", "refunded", "disputed")),
            )

    with op.batch_alter_table("stripe_events") as batch:
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch.alter_column(
            "status",
            existing_type=_status(_OLD_STATUSES),
            type_=_status(_NEW_STATUSES),
            existing_nullable=False,
        )


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.execute("UPDATE stripe_events SET status = 'failed' WHERE status = 'dead'")
    with op.batch_alter_table("stripe_events") as batch:
        batch.alter_column(
            "status",
            existing_type=_status(_NEW_STATUSES),
            type_=_status(_OLD_STATUSES),
            existing_nullable=False,
        )
        batch.drop_column("next_attempt_at")
    with op.batch_alter_table("stripe_payments") as batch:
        if sqlite:
            batch.drop_constraint(op.f("ck_stripe_payments_amounts_integer"), type_="check")
        batch.drop_constraint(op.f("ck_stripe_payments_holds"), type_="check")
        batch.drop_column("disputed")
    with op.batch_alter_table("period_totals") as batch:
        if sqlite:
            batch.drop_constraint(op.f("ck_period_totals_counts_integer"), type_="check")
        batch.drop_constraint(op.f("ck_period_totals_raised_range"), type_="check")
    if sqlite:
        op.execute(f"DROP TRIGGER {_LEDGER_INTEGER}")
