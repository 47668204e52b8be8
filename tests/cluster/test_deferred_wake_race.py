"""The refund left ``deferred`` after the cluster storm: two transactions that miss each other.

A refund that finds no booked payment is marked ``deferred``; the transaction
that books the payment then applies the deferred events waiting for it
(``_wake``). On PostgreSQL (READ COMMITTED) the two can run at the same time
and neither sees the other's uncommitted work:

- the refund's transaction looked for the payment before the payment's
  transaction committed, so it defers;
- the payment's transaction looked for deferred events before the refund's
  committed: it saw the refund still ``received`` (first delivery), or
  skipped it because a duplicate delivery held its row (``SKIP LOCKED``).

Both commit, and the refund waits for the next ``retry-inbox`` with its money
missing from the total (5 of 9 cluster storms ended with one such event).

Each case below drives the two transactions by hand, in the order that loses
the refund, with the real service functions and two sessions on PostgreSQL: no
sleeps, no hooks into private functions. The second transaction runs in a
thread because a correct fix must make one of the two wait for the other; the
main thread commits the first as soon as the second has finished or is seen
waiting on a lock (``pg_locks``), whichever happens, so the test passes with a
fix whichever of the two it makes wait.

They failed (every case) before the fix described in :data:`RACE`
(``_gate`` in ``tracker/services/stripe_events/inbox.py``); with it the cluster's
fault-free rounds end with no event deferred (they left 2 to 5 without it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tests import factories
from tests.conftest import DONOR_KEY_SECRET, _empty_postgresql
from tests.stripe_helpers import charge, event, metadata, new_id, payment_intent
from tracker.db import Database
from tracker.models import InboxStatus, LedgerEntry, PeriodTotal, StripeEvent
from tracker.services.stripe_events import parse_event, process_event, store_event

RACE = (
    "deferred-wake race: the refund's transaction defers (it cannot see the payment's "
    "uncommitted booking) while the payment's transaction looks for deferred events "
    "before the refund's deferral is committed (the row is still 'received', or held by "
    "a duplicate delivery and skipped by SKIP LOCKED); nothing serialises the two, so the "
    "refund stays deferred until the next retry-inbox. Fixed: stripe_events.inbox._wake "
    "and the deferral in _run take a transaction advisory lock on the awaited id"
)
PAID, REFUNDED = 1000, 300


@pytest.fixture
def database(pg_server_url: str) -> Iterator[Database]:
    """The PostgreSQL test database alone: the race needs two concurrent writers."""
    database = Database(pg_server_url, donor_key_secret=DONOR_KEY_SECRET)
    try:
        yield database
    finally:
        database.dispose()
        _empty_postgresql(pg_server_url)


def _events(database: Database) -> tuple[str, str]:
    """A campaign, a payment and its partial refund, both stored (``received``)."""
    with database.session() as setup:
        factories.campaign(setup)
    intent, ch = new_id("pi"), new_id("ch")
    paid = event(
        "payment_intent.succeeded",
        payment_intent(meta=metadata(), amount=PAID, intent_id=intent, charge_id=ch),
    )
    refund = event(
        "charge.refunded", charge(charge_id=ch, intent_id=intent, amount=PAID, refunded=REFUNDED)
    )
    ids = []
    with database.session() as session:
        for payload in (paid, refund):
            parsed = parse_event(payload)
            assert store_event(session, parsed)
            ids.append(parsed.id)
        session.commit()
    return ids[0], ids[1]


def _apply(session: Session, event_id: str) -> InboxStatus:
    """One delivery's application transaction, up to (not including) its commit."""
    return process_event(session, event_id, livemode=False)


def _waiting_on_a_lock(database: Database, pid: int) -> bool:
    with database.engine.connect() as conn:
        return bool(
            conn.execute(
                text("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = :pid AND NOT granted)"),
                {"pid": pid},
            ).scalar()
        )


def _interleave(database: Database, first: str, second: str) -> dict[str, object]:
    """Apply ``first`` (uncommitted), then ``second`` in another session and thread.

    ``first`` is committed once ``second`` has committed or waits on a lock.
    Returns what each application said (or raised).
    """
    outcome: dict[str, object] = {}
    pid: list[int] = []
    started = threading.Event()

    def run_second() -> None:
        with database.session() as session:
            try:
                pid.append(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
                started.set()
                outcome[second] = _apply(session, second)
                session.commit()
            except Exception as exc:  # reported by the caller's assertions
                outcome[second] = f"{type(exc).__name__}: {exc}"
                started.set()

    with database.session() as session:
        outcome[first] = _apply(session, first)
        thread = threading.Thread(target=run_second, daemon=True)
        thread.start()
        try:
            assert started.wait(30), "the second session never started"
            # Wait for a state, not for a time: the second transaction is over, or it
            # waits for a lock the first holds (what a fix would make it do).
            while thread.is_alive() and not (pid and _waiting_on_a_lock(database, pid[0])):
                thread.join(0.005)
        finally:
            session.commit()
    thread.join(30)
    assert not thread.is_alive(), "the second transaction did not finish after the first's commit"
    return outcome


def _assert_refund_applied(database: Database, refund_id: str) -> None:
    with database.session(write=False) as session:
        status = session.scalar(select(StripeEvent.status).where(StripeEvent.id == refund_id))
        entries = sorted(session.scalars(select(LedgerEntry.amount)).all())
        raised = session.scalar(select(PeriodTotal.raised))
    assert (status, entries, raised) == (
        InboxStatus.PROCESSED,
        [-REFUNDED, PAID],
        PAID - REFUNDED,
    )


def _deliver_alone(database: Database, event_id: str) -> InboxStatus:
    with database.session() as session:
        status = _apply(session, event_id)
        session.commit()
    return status


Case = Callable[[Database, str, str], dict[str, object]]


def _refund_first(database: Database, payment: str, refund: str) -> dict[str, object]:
    # The refund's first delivery defers; before it commits, the payment is booked
    # and looks for deferred events: the refund's row still says 'received'.
    return _interleave(database, refund, payment)


def _duplicate_refund_first(database: Database, payment: str, refund: str) -> dict[str, object]:
    # The refund was deferred (committed); a duplicate delivery of it, on another
    # worker, holds its row and defers it again while the payment is booked: the
    # payment's wake-up skips the locked row (SKIP LOCKED).
    assert _deliver_alone(database, refund) is InboxStatus.DEFERRED
    return _interleave(database, refund, payment)


def _payment_first(database: Database, payment: str, refund: str) -> dict[str, object]:
    # The payment is booked and finds nothing deferred (the refund is 'received');
    # before it commits, the refund looks for its payment, does not see it, defers.
    return _interleave(database, payment, refund)


@pytest.mark.parametrize(
    "case",
    [_refund_first, _duplicate_refund_first, _payment_first],
    ids=["refund-first", "duplicate-refund-first", "payment-first"],
)
def test_a_refund_racing_its_payment_is_applied_when_the_payment_is_booked(
    database: Database, case: Case
) -> None:
    payment, refund = _events(database)
    outcome = case(database, payment, refund)
    assert outcome[payment] is InboxStatus.PROCESSED, outcome
    _assert_refund_applied(database, refund)


def test_the_same_two_events_one_after_the_other_settle_without_a_retry(
    database: Database,
) -> None:
    # The control: the refund deferred and committed before the payment is booked
    # is woken by the payment's transaction; so the cases above, without the gate,
    # fail because of the interleaving alone, not because of the events.
    payment, refund = _events(database)
    assert _deliver_alone(database, refund) is InboxStatus.DEFERRED
    assert _deliver_alone(database, payment) is InboxStatus.PROCESSED
    _assert_refund_applied(database, refund)
