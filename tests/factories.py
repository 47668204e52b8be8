"""Row factories for tests: the shortest way to a campaign and its money."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from tracker.domain.ledger import EntryKind, EntrySource
from tracker.models import Campaign
from tracker.services.campaigns import CampaignSpec, create_campaign, get_campaign
from tracker.services.ledger import Recorded, record_entry


def campaign(session: Session, slug: str = "fund", **fields: Any) -> Campaign:
    """Create and commit a USD campaign with tiers 0 / 2,500 / 5,000 $ unless told otherwise."""
    spec = CampaignSpec(
        slug=slug,
        title=fields.pop("title", "Fund us"),
        currency=fields.pop("currency", "USD"),
        tiers=fields.pop("tiers", [0, 250_000, 500_000]),
        **fields,
    )
    created = create_campaign(session, spec)
    session.commit()
    return created


def pay(
    session: Session,
    slug: str,
    reference: str,
    amount: int,
    *,
    kind: EntryKind = EntryKind.PAYMENT,
    at: datetime | None = None,
    donor: str | None = None,
    source: EntrySource = EntrySource.OFFLINE,
    commit: bool = True,
) -> Recorded:
    """Record one movement on campaign ``slug`` and commit."""
    target = get_campaign(session, slug)
    result = record_entry(
        session,
        target,
        source=source,
        reference=reference,
        kind=kind,
        amount=amount,
        currency=target.currency,
        occurred_at=at or datetime(2026, 11, 20, 12, tzinfo=UTC),
        donor_key=donor,
    )
    if commit:
        session.commit()
    return result
