"""The demo campaign a newcomer sees first: 2,811 $ raised of a 0 / 2,500 / 5,000 $ ladder."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from tracker.domain.ledger import EntryKind, EntrySource
from tracker.services.campaigns import CampaignNotFound, CampaignSpec, create_campaign, get_campaign
from tracker.services.ledger import record_entry

DEMO_SLUG = "demo"

# (reference, kind, cents, donor, day of November 2026). Net: 2,900 $ paid, 89 $ refunded.
_MOVEMENTS = (
    ("demo-pay-1", EntryKind.PAYMENT, 100_000, "alice", 2),
    ("demo-pay-2", EntryKind.PAYMENT, 50_000, "bob", 5),
    ("demo-pay-3", EntryKind.PAYMENT, 75_000, "chen", 9),
    ("demo-pay-4", EntryKind.PAYMENT, 25_000, "dana", 14),
    ("demo-pay-5", EntryKind.PAYMENT, 40_000, "eve", 20),
    ("demo-refund-5", EntryKind.REFUND, 8_900, "eve", 21),
)


def seed_demo(session: Session) -> bool:
    """Create the demo campaign and its payments if missing. Idempotent; the caller commits.

    :return: True if anything was created.
    """
    try:
        campaign = get_campaign(session, DEMO_SLUG)
        created = False
    except CampaignNotFound:
        campaign = create_campaign(
            session,
            CampaignSpec(
                slug=DEMO_SLUG,
                title="Keep independent journalism free",
                currency="USD",
                tiers=[0, 250_000, 500_000],
                locale="en_US",
            ),
        )
        created = True
    for reference, kind, cents, donor, day in _MOVEMENTS:
        result = record_entry(
            session,
            campaign,
            source=EntrySource.DEMO,
            reference=reference,
            kind=kind,
            amount=cents,
            currency="USD",
            occurred_at=datetime(2026, 11, day, 12, tzinfo=UTC),
            # Invented donors: a readable key, no secret needed, nothing personal.
            donor_key=f"demo:{donor}",
            note="demo data",
        )
        created = created or result.new
    return created
