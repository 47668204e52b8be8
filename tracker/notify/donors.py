"""Messages to donors, through the same outbox: offline payment instructions, thank-you notes."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from tracker.domain.money import format_money
from tracker.models import Campaign, LedgerEntry, OutboxMessage, Pledge, StripePayment
from tracker.notify import messages
from tracker.notify.context import Context
from tracker.notify.outbox import Recipients, enqueue


def enqueue_offline_instructions(
    session: Session, pledge: Pledge, campaign: Campaign, context: Context
) -> int:
    """Write the "how to pay" e-mail of an offline pledge, once per pledge. Flushes only."""
    if not pledge.donor_email:
        return 0
    message = messages.offline_instructions(
        title=campaign.title,
        amount=format_money(pledge.amount, campaign.currency, campaign.locale, cents=True),
        pledge_id=pledge.id,
        instructions=campaign.payment_instructions,
        key=f"offline-instructions:{pledge.id}",
        url=context.url(f"/donate/{campaign.slug}"),
        locale=campaign.locale,
    )
    return enqueue(
        session,
        message,
        Recipients((pledge.donor_email,)),
        campaign_id=campaign.id,
        mail_from=context.mail_from,
    )


def refunded_veto(session: Session, row: OutboxMessage) -> str | None:
    """Cancel a thank-you whose payment was refunded (in part or whole) before it left."""
    if row.ledger_entry_id is None:
        return None
    reference = session.scalar(
        select(LedgerEntry.reference).where(LedgerEntry.id == row.ledger_entry_id)
    )
    if reference is None:
        return None
    refunded = session.scalar(
        select(StripePayment.refunded).where(StripePayment.reference == reference)
    )
    if refunded:
        return "the payment was refunded before the thank-you was sent"
    return None
