"""Corrections: money is never edited or deleted, a mistake is answered by a new entry.

A **reversal** books the opposite of one manual entry, naming it
(``corrects_entry_id``), under the reference ``reversal-<id>``: the unique
``(source, reference)`` makes a second reversal of the same entry book
nothing. It counts at the reversed entry's instant, so the period and day
that held the mistake come out right. An **adjustment** books a manual
amount up or down with a required reason. Stripe's entries cannot be
reversed by hand: refund them in Stripe and the webhook books the refund.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from tracker.domain.ledger import EntryKind, EntrySource, LedgerError
from tracker.domain.money import format_money
from tracker.models import LedgerEntry, utcnow
from tracker.services.audit import audit
from tracker.services.campaigns import get_campaign
from tracker.services.ledger import record_entry

MAX_REASON = 500


class CorrectionError(LedgerError):
    """A correction that cannot be booked; ``str()`` says why."""


@dataclass(frozen=True, slots=True)
class Correction:
    """What was booked: ``new`` is False when it had been booked before (nothing changed)."""

    new: bool
    entry_id: int | None
    display: str


def _reason(reason: str) -> str:
    text = (reason or "").strip()
    if not text or len(text) > MAX_REASON:
        raise CorrectionError(f"a reason of 1 to {MAX_REASON} characters is required")
    return text


def reversible(entry: LedgerEntry) -> str | None:
    """Why ``entry`` cannot be reversed by hand, or None if it can."""
    if entry.source is EntrySource.STRIPE:
        return (
            "Stripe entries are corrected in Stripe: refund the payment there, the webhook books it"
        )
    if entry.source is not EntrySource.OFFLINE:
        return "only manual entries can be reversed"
    if entry.reference.startswith("reversal-"):
        return "a reversal cannot itself be reversed: book an adjustment"
    return None


def reverse_entry(
    session: Session,
    slug: str,
    entry_id: int,
    *,
    reason: str,
    actor: str,
    address: str | None = None,
) -> Correction:
    """Book the opposite of manual entry ``entry_id`` of ``slug``, once. The caller commits.

    :raise CampaignNotFound: for an unknown slug.
    :raise CorrectionError: for an entry of another campaign, a Stripe entry, a reversal,
        or a missing reason.
    """
    campaign = get_campaign(session, slug)
    why = _reason(reason)
    entry = session.get(LedgerEntry, entry_id)
    if entry is None or entry.campaign_id != campaign.id:
        raise CorrectionError(f"campaign {slug} has no entry #{entry_id}")
    refusal = reversible(entry)
    if refusal:
        raise CorrectionError(refusal)
    kind = EntryKind.CORRECTION_MINUS if entry.amount > 0 else EntryKind.CORRECTION_PLUS
    result = record_entry(
        session,
        campaign,
        source=EntrySource.OFFLINE,
        reference=f"reversal-{entry.id}",
        kind=kind,
        amount=abs(entry.amount),
        currency=campaign.currency,
        occurred_at=entry.occurred_at,
        donor_key=entry.donor_key,
        note=f"reversal of #{entry.id}: {why}",
        corrects_entry_id=entry.id,
    )
    display = format_money(-entry.amount, campaign.currency, campaign.locale, cents=True)
    if result.new:
        audit(
            session,
            actor=actor,
            action="reversal",
            campaign_id=campaign.id,
            ledger_entry_id=result.entry_id,
            details={"reverses": entry.id, "amount": -entry.amount, "reason": why},
            address=address,
        )
    return Correction(result.new, result.entry_id, display)


def adjust(
    session: Session,
    slug: str,
    amount: int,
    *,
    up: bool,
    reason: str,
    actor: str,
    token: str,
    at: datetime | None = None,
    address: str | None = None,
) -> Correction:
    """Book a manual adjustment of ``amount`` minor units, up or down. The caller commits.

    ``token`` comes from the form that asked for it: submitting that form twice
    books once (reference ``adjustment-<token>``).

    :raise CampaignNotFound: for an unknown slug.
    :raise CorrectionError: for a missing reason or a future date.
    :raise LedgerError: for a bad amount.
    """
    campaign = get_campaign(session, slug)
    why = _reason(reason)
    when = at or utcnow()
    if when > utcnow():
        raise CorrectionError("the adjustment's date is in the future")
    kind = EntryKind.CORRECTION_PLUS if up else EntryKind.CORRECTION_MINUS
    result = record_entry(
        session,
        campaign,
        source=EntrySource.OFFLINE,
        reference=f"adjustment-{token}",
        kind=kind,
        amount=amount,
        currency=campaign.currency,
        occurred_at=when,
        note=f"adjustment: {why}",
    )
    signed = amount if up else -amount
    if result.new:
        audit(
            session,
            actor=actor,
            action="adjustment",
            campaign_id=campaign.id,
            ledger_entry_id=result.entry_id,
            details={"amount": signed, "reason": why, "occurred_at": when.isoformat()},
            address=address,
        )
    return Correction(
        result.new,
        result.entry_id,
        format_money(signed, campaign.currency, campaign.locale, cents=True),
    )
