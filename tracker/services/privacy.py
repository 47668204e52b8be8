"""Erasing a donor: their name, e-mail address and messages leave the database; money stays.

What is rewritten (docs/privacy.md):

- the donor's pledges lose name, e-mail and message (amount, status and Stripe
  ids stay: later events about the same money still find their pledge);
- the donor's keys (keyed hashes of the e-mail, or of a name an offline payment
  was booked under) become random tombstones on the ledger, the per-period
  donor sets and the Stripe payments. Each key gets one tombstone everywhere,
  so every distinct-donor count, every total and ``check-totals`` stay as they
  were, while whoever knows the address and the secret can no longer find the
  entries. A later payment from the same address counts as a new donor;
- the inbox's stored Stripe events about the donor's payments are scrubbed of
  every personal field (e-mail, names, billing and shipping details, metadata
  that is not ours) and of the donor's strings; ids, amounts and statuses stay;
- ledger notes and audit details of the donor's entries lose the donor's
  strings and personal fields;
- the address itself is also replaced in every other stored text where it
  occurs (another entry's note, another event's payload, any audit detail).

The erasure is audited with counts only. Independent of Flask: the CLI and the
admin call it alike; it flushes and the caller commits.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Text, cast, func, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from tracker.domain.donors import donor_key, is_keyed, named_donor_key, normalise, tombstone
from tracker.domain.erasure import Needles, personal_strings, scrub_json, scrub_text
from tracker.models import (
    AuditEvent,
    LedgerEntry,
    PeriodDonor,
    Pledge,
    StripeEvent,
    StripePayment,
    utcnow,
)
from tracker.services.donors import secret_of

ACTION = "donor_erased"


class ErasureError(ValueError):
    """An erasure that cannot start (no usable e-mail address); ``str()`` says why."""


@dataclass(frozen=True, slots=True)
class ErasureReport:
    """How many rows an erasure rewrote, by table; no personal data."""

    pledges: int
    payments: int
    ledger_entries: int
    donor_keys: int
    inbox_events: int
    audit_events: int
    audit_id: int

    @property
    def found(self) -> bool:
        """Whether anything in the database concerned the donor."""
        return any(
            (
                self.pledges,
                self.payments,
                self.ledger_entries,
                self.donor_keys,
                self.inbox_events,
                self.audit_events,
            )
        )

    def counts(self) -> dict[str, int]:
        """The counts by name, as the audit record keeps them."""
        return {
            "pledges": self.pledges,
            "payments": self.payments,
            "ledger_entries": self.ledger_entries,
            "donor_keys": self.donor_keys,
            "inbox_events": self.inbox_events,
            "audit_events": self.audit_events,
        }

    def describe(self) -> str:
        """One line for an operator."""
        parts = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in self.counts().items())
        return f"scrubbed {parts} (audit record {self.audit_id})"


def erase_donor(
    session: Session, email: str, *, actor: str, now: datetime | None = None
) -> ErasureReport:
    """Remove the donor with this e-mail address from every stored text; keep every amount.

    :param email: matched after stripping and case folding, as donor keys are.
    :param actor: who asked (``cli:<user>``, an admin's e-mail), for the audit record.
    :param now: when, for the pledges' ``updated_at`` and the audit record.
    :return: what was rewritten, table by table.
    :raise ErasureError: for a blank value or one without ``@``.
    :raise tracker.services.donors.NoDonorKeySecret: for a session without the secret.
    """
    address = normalise(email or "")
    if not address or "@" not in address:
        raise ErasureError("give the donor's e-mail address")
    when = now or utcnow()
    secret = secret_of(session)
    session.flush()

    pledges = _pledges_of(session, address)
    pledge_ids = {p.id for p in pledges}
    names = {p.donor_name for p in pledges if p.donor_name}
    messages = {p.message for p in pledges if p.message}

    payments = _payments_of(session, pledge_ids, donor_key(secret, address))
    stripe_ids = _stripe_ids(pledges, payments)

    # The donor's events first: what Stripe knows of them (a billing name) is
    # scrubbed everywhere else too.
    events = _events_of(session, stripe_ids, address)
    for event, about_donor in events:
        if about_donor:
            names |= personal_strings(_json(event.payload))
    names.discard(address)
    own = Needles.of([address, *names, *messages])
    everywhere = Needles.of([address])

    keys = {donor_key(secret, address)}
    for value in names:
        # Harvested strings: names, and any other address Stripe has for the donor.
        keys.add(donor_key(secret, value) if "@" in value else named_donor_key(secret, value))
    keys |= {p.donor_key for p in payments if is_keyed(p.donor_key)}
    entries = _entries_of(session, pledge_ids, keys, payments)
    keys |= {e.donor_key for e in entries if is_keyed(e.donor_key)}

    inbox = _scrub_events(session, events, own, everywhere)
    notes = _scrub_notes(session, entries, own, everywhere, address)
    mapping = {key: tombstone() for key in keys}
    # A note rewritten on an entry of another key: the ledger only lets an update
    # through with a tombstone, so that key gets one too (everywhere, counts kept).
    mapping.update({old: tombstone() for _, old, _ in notes if old and old not in mapping})
    rekeyed = set(
        session.scalars(select(LedgerEntry.id).where(LedgerEntry.donor_key.in_(list(mapping))))
    )
    moved = _replace_keys(session, mapping)
    for entry_id, old, note in notes:
        session.execute(
            update(LedgerEntry)
            .where(LedgerEntry.id == entry_id)
            .values(note=note, donor_key=mapping[old] if old else tombstone())
            .execution_options(synchronize_session=False)
        )

    for pledge in pledges:
        pledge.donor_name = None
        pledge.donor_email = None
        pledge.message = None
        pledge.updated_at = when
    others = _scrub_other_pledges(session, pledge_ids, everywhere, address, when)
    audits = _scrub_audits(session, {e.id for e in entries}, own, everywhere, address)

    record = AuditEvent(actor=actor, action=ACTION, at=when, details={})
    session.add(record)
    session.flush()
    report = ErasureReport(
        pledges=len(pledges) + others,
        payments=moved["stripe_payments"],
        ledger_entries=len(rekeyed | {entry_id for entry_id, _, _ in notes}),
        donor_keys=moved["keys"],
        inbox_events=inbox,
        audit_events=audits,
        audit_id=record.id,
    )
    record.details = report.counts()
    session.flush()
    # The Core updates above bypassed the loaded objects: reload them when read.
    session.expire_all()
    return report


# ---------------------------------------------------------------------- finding


def _contains(
    column: ColumnElement[Any] | InstrumentedAttribute[Any], needle: str
) -> ColumnElement[bool] | None:
    """A case-insensitive ``LIKE`` for an ASCII needle; None when only a scan is exact.

    SQLite's ``lower()`` folds ASCII only, and JSON text may hold ``\\uXXXX``
    escapes: a non-ASCII address is then looked for row by row in Python.
    """
    if not needle.isascii():
        return None
    return func.lower(cast(column, Text)).contains(needle.lower(), autoescape=True)


def _pledges_of(session: Session, address: str) -> list[Pledge]:
    condition = _contains(Pledge.donor_email, address)
    query = select(Pledge).where(Pledge.donor_email.is_not(None))
    if condition is not None:
        query = query.where(condition)
    return [
        pledge
        for pledge in session.scalars(query.order_by(Pledge.id))
        if pledge.donor_email and normalise(pledge.donor_email) == address
    ]


def _payments_of(session: Session, pledge_ids: set[int], key: str) -> list[StripePayment]:
    conditions: list[ColumnElement[bool]] = [StripePayment.donor_key == key]
    if pledge_ids:
        conditions.append(StripePayment.pledge_id.in_(pledge_ids))
    return list(session.scalars(select(StripePayment).where(or_(*conditions))))


def _stripe_ids(pledges: Iterable[Pledge], payments: Iterable[StripePayment]) -> set[str]:
    ids: set[str | None] = set()
    for pledge in pledges:
        ids |= {
            pledge.stripe_checkout_session_id,
            pledge.stripe_payment_intent_id,
            pledge.stripe_subscription_id,
            pledge.stripe_customer_id,
        }
    for payment in payments:
        ids |= {payment.reference, payment.payment_intent_id, payment.charge_id, payment.invoice_id}
    return {i for i in ids if i}


def _entries_of(
    session: Session, pledge_ids: set[int], keys: set[str], payments: list[StripePayment]
) -> list[LedgerEntry]:
    conditions: list[ColumnElement[bool]] = [LedgerEntry.donor_key.in_(keys)]
    if pledge_ids:
        conditions.append(LedgerEntry.pledge_id.in_(pledge_ids))
    references = {p.reference for p in payments}
    if references:
        conditions.append(LedgerEntry.reference.in_(references))
    return list(session.scalars(select(LedgerEntry).where(or_(*conditions))))


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _events_of(
    session: Session, stripe_ids: set[str], address: str
) -> list[tuple[StripeEvent, bool]]:
    """The inbox events that name the donor's Stripe objects (about the donor) or the address."""
    by_id = [StripeEvent.payload.contains(i, autoescape=True) for i in sorted(stripe_ids)]
    by_address = _contains(StripeEvent.payload, address)
    query = select(StripeEvent).order_by(StripeEvent.id)
    if by_address is not None:
        query = query.where(or_(by_address, *by_id))
    found: list[tuple[StripeEvent, bool]] = []
    for event in session.scalars(query):
        about_donor = any(i in event.payload for i in stripe_ids)
        if about_donor or address in event.payload.casefold():
            found.append((event, about_donor))
    return found


# -------------------------------------------------------------------- rewriting


def _scrub_events(
    session: Session, events: list[tuple[StripeEvent, bool]], own: Needles, everywhere: Needles
) -> int:
    changed = 0
    for event, about_donor in events:
        data = _json(event.payload)
        needles = own if about_donor else everywhere
        if data is None:
            text = scrub_text(event.payload, needles)
        else:
            text = json.dumps(scrub_json(data, needles, about_donor=about_donor))
        error = scrub_text(event.last_error, needles) if event.last_error else event.last_error
        if text != event.payload or error != event.last_error:
            event.payload, event.last_error = text, error
            changed += 1
    session.flush()
    return changed


def _scrub_notes(
    session: Session, entries: list[LedgerEntry], own: Needles, everywhere: Needles, address: str
) -> list[tuple[int, str, str]]:
    """(entry id, its donor key, the note scrubbed) for every note that changes."""
    changes: dict[int, tuple[int, str, str]] = {}
    for entry in entries:
        if entry.note and (note := scrub_text(entry.note, own)) != entry.note:
            changes[entry.id] = (entry.id, entry.donor_key, note)
    condition = _contains(LedgerEntry.note, address)
    query = select(LedgerEntry.id, LedgerEntry.donor_key, LedgerEntry.note).where(
        LedgerEntry.note.is_not(None)
    )
    if condition is not None:
        query = query.where(condition)
    for entry_id, key, text in session.execute(query):
        if entry_id not in changes and text and (note := scrub_text(text, everywhere)) != text:
            changes[entry_id] = (entry_id, key, note)
    return list(changes.values())


def _replace_keys(session: Session, mapping: dict[str, str]) -> dict[str, int]:
    """Give each old key its tombstone on every table that counts donors.

    :return: rows changed per table, and ``keys``: how many old keys were found.
    """
    moved = {"ledger_entries": 0, "period_donors": 0, "stripe_payments": 0, "keys": 0}
    columns = (LedgerEntry.donor_key, PeriodDonor.donor_key, StripePayment.donor_key)
    for old, new in mapping.items():
        hits = 0
        for column in columns:
            result = session.execute(
                update(column.class_)
                .where(column == old)
                .values({column.key: new})
                .execution_options(synchronize_session=False)
            )
            count: int = result.rowcount  # type: ignore[attr-defined]  # UPDATE: a CursorResult
            moved[column.class_.__tablename__] += count
            hits += count
        moved["keys"] += 1 if hits else 0
    return moved


def _scrub_other_pledges(
    session: Session, erased: set[int], needles: Needles, address: str, when: datetime
) -> int:
    """Other pledges whose name or message quotes the address (a gift in someone's name)."""
    conditions = [
        c
        for c in (_contains(Pledge.message, address), _contains(Pledge.donor_name, address))
        if c is not None
    ]
    query = select(Pledge).where(or_(Pledge.message.is_not(None), Pledge.donor_name.is_not(None)))
    if len(conditions) == 2:
        query = query.where(or_(*conditions))
    changed = 0
    for pledge in session.scalars(query):
        if pledge.id in erased:
            continue
        message = scrub_text(pledge.message, needles) if pledge.message else pledge.message
        name = scrub_text(pledge.donor_name, needles) if pledge.donor_name else pledge.donor_name
        if (message, name) != (pledge.message, pledge.donor_name):
            pledge.message, pledge.donor_name, pledge.updated_at = message, name, when
            changed += 1
    session.flush()
    return changed


def _scrub_audits(
    session: Session, entry_ids: set[int], own: Needles, everywhere: Needles, address: str
) -> int:
    conditions: list[ColumnElement[bool]] = []
    if entry_ids:
        conditions.append(AuditEvent.ledger_entry_id.in_(entry_ids))
    by_address = _contains(AuditEvent.details, address)
    query = select(AuditEvent).order_by(AuditEvent.id)
    if by_address is not None:
        query = query.where(or_(by_address, *conditions))
    changed = 0
    for record in session.scalars(query):
        about_donor = record.ledger_entry_id in entry_ids
        scrubbed = scrub_json(
            record.details, own if about_donor else everywhere, about_donor=about_donor
        )
        if scrubbed != record.details:
            record.details = scrubbed
            changed += 1
    session.flush()
    return changed
