"""Money that arrives outside Stripe (bank transfers, cash), booked by an admin, audited."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from tracker.domain.ledger import EntryKind, EntrySource, LedgerError
from tracker.domain.money import format_money
from tracker.models import AuditEvent, utcnow
from tracker.services.campaigns import get_campaign
from tracker.services.ledger import record_entry

MAX_NOTE = 500


@dataclass(frozen=True, slots=True)
class OfflinePayment:
    """What :func:`add_offline_payment` booked; ``new`` is False for a repeated reference."""

    new: bool
    reference: str
    entry_id: int | None
    display: str


def add_offline_payment(
    session: Session,
    slug: str,
    amount: int,
    *,
    note: str,
    actor: str,
    donor: str | None = None,
    at: datetime | None = None,
    reference: str | None = None,
) -> OfflinePayment:
    """Book a payment received outside Stripe and record who booked it. The caller commits.

    ``reference`` makes a re-run of the same import harmless; without it each call
    books a new payment under a fresh id.

    :raise CampaignNotFound: for an unknown slug.
    :raise LedgerError: for a bad amount, an empty or over-long note, or a future date.
    """
    campaign = get_campaign(session, slug)
    note = (note or "").strip()
    if not note or len(note) > MAX_NOTE:
        raise LedgerError(
            f"a note of 1 to {MAX_NOTE} characters is required (what was received, and how)"
        )
    when = at or utcnow()
    if when > utcnow():
        raise LedgerError("the payment date is in the future")
    donor = (donor or "").strip() or None
    ref = (reference or "").strip() or f"offline-{uuid.uuid4().hex}"
    result = record_entry(
        session,
        campaign,
        source=EntrySource.OFFLINE,
        reference=ref,
        kind=EntryKind.PAYMENT,
        amount=amount,
        currency=campaign.currency,
        occurred_at=when,
        donor_key=f"name:{donor.casefold()}" if donor else None,
        note=note,
    )
    display = format_money(amount, campaign.currency, campaign.locale, cents=True)
    if result.new:
        session.add(
            AuditEvent(
                actor=actor,
                action="offline_payment",
                campaign_id=campaign.id,
                ledger_entry_id=result.entry_id,
                details={
                    "amount": amount,
                    "currency": campaign.currency,
                    "note": note,
                    "donor": donor,
                    "occurred_at": when.isoformat(),
                    "reference": ref,
                },
            )
        )
        session.flush()
    return OfflinePayment(result.new, ref, result.entry_id, display)
