"""Money that arrives outside Stripe (bank transfers, cash), booked by an admin, audited."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from tracker.domain.ledger import EntryKind, EntrySource, LedgerError
from tracker.domain.money import format_money
from tracker.domain.stripe_rules import PLEDGE_MOVES_FROM
from tracker.models import AuditEvent, Pledge, PledgeStatus, utcnow
from tracker.services.campaigns import get_campaign
from tracker.services.donors import email_key, name_key
from tracker.services.ledger import record_entry

MAX_NOTE = 500
# The longest name the donate page takes; audit details keep it as typed.
MAX_DONOR = 200
# Older dates are typing mistakes; the period arithmetic also ends at year 1.
EARLIEST_YEAR = 1970


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
    pledge_id: int | None = None,
    address: str | None = None,
) -> OfflinePayment:
    """Book a payment received outside Stripe and record who booked it. The caller commits.

    ``reference`` makes a re-run of the same import harmless; without it each call
    books a new payment under a fresh id. With ``pledge_id`` the money settles that
    pledge (of this campaign): it is marked paid, counts under its donor, and the
    reference defaults to ``pledge-<id>``, so booking the same pledge twice books
    nothing (give a ``reference`` per transfer when it was paid in several).
    ``address`` is the client address when an admin books it over HTTP.

    :raise CampaignNotFound: for an unknown slug.
    :raise LedgerError: for a bad amount, an empty or over-long note, a future date,
        or a pledge that is not this campaign's.
    """
    campaign = get_campaign(session, slug)
    pledge: Pledge | None = None
    if pledge_id is not None:
        pledge = session.get(Pledge, pledge_id)
        if pledge is None or pledge.campaign_id != campaign.id:
            raise LedgerError(f"campaign {slug} has no pledge {pledge_id}")
    note = (note or "").strip()
    if not note or len(note) > MAX_NOTE:
        raise LedgerError(
            f"a note of 1 to {MAX_NOTE} characters is required (what was received, and how)"
        )
    when = at or utcnow()
    if when > utcnow():
        raise LedgerError("the payment date is in the future")
    if when.year < EARLIEST_YEAR:
        raise LedgerError(f"the payment date is before {EARLIEST_YEAR}")
    donor = (donor or "").strip() or None
    if donor and len(donor) > MAX_DONOR:
        raise LedgerError(f"a donor name has at most {MAX_DONOR} characters")
    default = f"pledge-{pledge.id}" if pledge is not None else f"offline-{uuid.uuid4().hex}"
    ref = (reference or "").strip() or default
    # Keyed hashes, never the name or address itself (docs/privacy.md).
    if donor:
        donor_key: str | None = name_key(session, donor)
    elif pledge is not None and pledge.donor_email and pledge.donor_email.strip():
        # The same key a card payment of this donor counts under.
        donor_key = email_key(session, pledge.donor_email)
    else:
        donor_key = f"pledge:{pledge.id}" if pledge is not None else None
    result = record_entry(
        session,
        campaign,
        source=EntrySource.OFFLINE,
        reference=ref,
        kind=EntryKind.PAYMENT,
        amount=amount,
        currency=campaign.currency,
        occurred_at=when,
        donor_key=donor_key,
        pledge_id=pledge.id if pledge is not None else None,
        note=note,
    )
    if result.new and pledge is not None:
        allowed = PLEDGE_MOVES_FROM[PledgeStatus.PAID.value]
        session.execute(
            update(Pledge)
            .where(Pledge.id == pledge.id, Pledge.status.in_([PledgeStatus(a) for a in allowed]))
            .values(status=PledgeStatus.PAID, paid_at=when, updated_at=utcnow())
            .execution_options(synchronize_session=False)
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
                    "pledge": pledge.id if pledge is not None else None,
                },
                address=address,
            )
        )
        session.flush()
    return OfflinePayment(result.new, ref, result.entry_id, display)
