"""Database models (SQLAlchemy 2, typed). Behaviour lives in services, not here.

The schema itself is created by the Alembic migrations in
``tracker/migrations``; these classes must stay in step with them (a test
compares the two on both databases).

One module per concern; every name is importable from ``tracker.models``:

- :mod:`tracker.models.base`: the declarative base, its naming convention, amount bounds;
- :mod:`tracker.models.columns`: column types alike on both databases;
- :mod:`tracker.models.campaigns`: campaigns and their tiers;
- :mod:`tracker.models.pledges`: pledges and the Stripe payments matched to them;
- :mod:`tracker.models.ledger`: the ledger and the totals kept with it;
- :mod:`tracker.models.admin`: admins and the audit trail;
- :mod:`tracker.models.inbox`: the Stripe webhook inbox;
- :mod:`tracker.models.outbox`: campaign notifications and the outbox.

Importing this package imports every module, so ``Base.metadata`` holds every
table (the migrations' ``env.py`` and the schema test rely on that).
"""

from __future__ import annotations

from tracker.models.admin import AdminRole, AdminUser, AuditEvent
from tracker.models.base import AMOUNT_LIMIT, NAMING, TOTAL_LIMIT, Base, utcnow
from tracker.models.campaigns import Campaign, CampaignStatus, Tier
from tracker.models.columns import UTCDateTime, integer_only, str_enum
from tracker.models.inbox import InboxStatus, StripeEvent
from tracker.models.ledger import DailyTotal, LedgerEntry, PeriodDonor, PeriodTotal
from tracker.models.outbox import (
    CampaignNotification,
    OutboxChannel,
    OutboxMessage,
    OutboxStatus,
    SummaryCadence,
)
from tracker.models.pledges import (
    Pledge,
    PledgeFrequency,
    PledgeSource,
    PledgeStatus,
    StripePayment,
)

__all__ = [
    "AMOUNT_LIMIT",
    "NAMING",
    "TOTAL_LIMIT",
    "AdminRole",
    "AdminUser",
    "AuditEvent",
    "Base",
    "Campaign",
    "CampaignNotification",
    "CampaignStatus",
    "DailyTotal",
    "InboxStatus",
    "LedgerEntry",
    "OutboxChannel",
    "OutboxMessage",
    "OutboxStatus",
    "PeriodDonor",
    "PeriodTotal",
    "Pledge",
    "PledgeFrequency",
    "PledgeSource",
    "PledgeStatus",
    "StripeEvent",
    "StripePayment",
    "SummaryCadence",
    "Tier",
    "UTCDateTime",
    "integer_only",
    "str_enum",
    "utcnow",
]
