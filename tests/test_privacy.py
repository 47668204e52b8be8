"""Erasing a donor: afterwards their name, address and messages are nowhere in the database,
while every amount, total, donor count and ``check-totals`` is exactly as before.

The donor is seeded through the real paths, on SQLite and PostgreSQL: the donate
page's pledge paid by signed Checkout and PaymentIntent webhooks and partly
refunded (the refund's charge carries billing details), an offline pledge
settled by an admin, an offline payment booked under the donor's name, and a
Payment Link subscription invoice.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests import factories
from tests.stripe_helpers import (
    T0,
    charge,
    checkout_session,
    deliver_ok,
    event,
    invoice,
    metadata,
    new_id,
    payment_intent,
    read_session,
    webhook_app,
)
from tracker.db import Database, get_database
from tracker.domain.donors import derive_secret
from tracker.domain.periods import PeriodKind
from tracker.models import (
    AuditEvent,
    Base,
    LedgerEntry,
    PeriodTotal,
    Pledge,
    PledgeFrequency,
    PledgeSource,
    StripeEvent,
)
from tracker.services.donors import email_key
from tracker.services.ledger import check_totals
from tracker.services.offline import add_offline_payment
from tracker.services.pledges import PledgeInput, attach_checkout_session, create_pledge
from tracker.services.privacy import ErasureError, erase_donor

EMAIL = "Ada.Lovelace@Example.org"
NAME = "Ada Lovelace"
CARD_NAME = "A. Lovelace"
MESSAGE = "For the printing press of the analytical engine"
OFFLINE_MESSAGE = "Cheque in the post, with love"
STREET = "12 St James's Square"
# Everything that must be gone, matched case-insensitively.
PERSONAL = (EMAIL, NAME, CARD_NAME, "Lovelace", MESSAGE, OFFLINE_MESSAGE, STREET)
OTHER_EMAIL = "bob@example.org"
OTHER_NAME = "Bob Builder"
BEFORE_TODAY = datetime(2024, 3, 5, 12, tzinfo=UTC)


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    application = webhook_app(db_url)
    yield application
    application.extensions["tracker.db"].dispose()


@pytest.fixture
def database(app: Flask) -> Database:
    return get_database(app)


@pytest.fixture
def session(database: Database) -> Iterator[Session]:
    """A read-mode session: SQLite writers (the app) are never blocked by it."""
    yield from read_session(database)


def _pledge(database: Database, email: str, name: str, message: str, source: PledgeSource) -> int:
    with database.session() as s:
        data = PledgeInput(
            amount=2500, frequency=PledgeFrequency.ONE_TIME, email=email, name=name, message=message
        )
        pledge = create_pledge(s, "fund", data, source=source)
        if source is PledgeSource.STRIPE:
            attach_checkout_session(s, pledge.id, new_id("cs_test"))
        s.commit()
        return pledge.id


def _checkout_payment(
    client: FlaskClient, database: Database, pledge_id: int, email: str, name: str
) -> list[str]:
    """The donate page's pledge paid in Checkout; returns the raw events Stripe sent."""
    with database.session() as s:
        session_id = s.get_one(Pledge, pledge_id).stripe_checkout_session_id
    intent, ch = new_id("pi"), new_id("ch")
    completed = checkout_session(
        meta=metadata("fund", pledge_id), session_id=session_id, payment_intent=intent, email=email
    )
    completed["customer_details"]["name"] = name
    succeeded = payment_intent(meta=metadata("fund", pledge_id), intent_id=intent, charge_id=ch)
    succeeded["receipt_email"] = email
    refunded = charge(charge_id=ch, intent_id=intent, refunded=500)
    refunded["receipt_email"] = email
    refunded["billing_details"] = {
        "name": CARD_NAME if email == EMAIL else name,
        "email": email,
        "phone": "+44 20 7946 0000",
        "address": {"line1": STREET if email == EMAIL else "1 Main St", "city": "London"},
    }
    payloads = [
        event("checkout.session.completed", completed, created=T0),
        event("payment_intent.succeeded", succeeded, created=T0 + 1),
        event("charge.refunded", refunded, created=T0 + 60),
    ]
    for payload in payloads:
        assert deliver_ok(client, payload)["status"] == "processed"
    return payloads


def _payment_link_invoice(client: FlaskClient) -> str:
    obj = invoice(meta=metadata("fund"), subscription=new_id("sub"), amount=1500)
    obj.update(customer=new_id("cus"), customer_email=EMAIL.upper(), customer_name=NAME)
    payload = event("invoice.paid", obj, created=T0 + 120)
    assert deliver_ok(client, payload)["status"] == "processed"
    return payload


@pytest.fixture
def seeded(app: Flask, client: FlaskClient, database: Database) -> dict[str, Any]:
    with database.session() as s:
        factories.campaign(s, period=PeriodKind.MONTH)
    ada = _pledge(database, EMAIL, NAME, MESSAGE, PledgeSource.STRIPE)
    ada_events = _checkout_payment(client, database, ada, EMAIL.lower(), NAME)
    bob = _pledge(database, OTHER_EMAIL, OTHER_NAME, "Keep going", PledgeSource.STRIPE)
    _checkout_payment(client, database, bob, OTHER_EMAIL, OTHER_NAME)
    offline = _pledge(database, f"  {EMAIL.upper()} ", NAME, OFFLINE_MESSAGE, PledgeSource.OFFLINE)
    invoice_event = _payment_link_invoice(client)
    with database.session() as s:
        add_offline_payment(
            s, "fund", 4000, note=f"cheque from {NAME}", actor="cli:test",
            pledge_id=offline, at=BEFORE_TODAY,
        )  # fmt: skip
        add_offline_payment(
            s, "fund", 700, note="cash at the fair", actor="cli:test", donor=NAME, at=BEFORE_TODAY
        )
        # Someone else's transfer whose note quotes the donor's address.
        add_offline_payment(
            s, "fund", 300, note=f"gift on behalf of {EMAIL.lower()}", actor="cli:test",
            donor=OTHER_NAME, at=BEFORE_TODAY,
        )  # fmt: skip
        s.commit()
    return {"events": ada_events, "invoice": invoice_event}


def _texts(session: Session) -> list[str]:
    """Every text value of every table, JSON columns and inbox payloads as their text."""
    session.rollback()
    found: list[str] = []
    for table in Base.metadata.sorted_tables:
        for row in session.execute(select(table)):
            for value in row:
                if isinstance(value, str):
                    found.append(value)
                    if value.startswith("{"):
                        # JSON text, with any \\u escapes read back.
                        with contextlib.suppress(ValueError):
                            found.append(json.dumps(json.loads(value), ensure_ascii=False))
                elif isinstance(value, dict | list):
                    found.append(json.dumps(value, ensure_ascii=False))
    session.rollback()
    return found


def _leaks(session: Session, needles: tuple[str, ...]) -> list[tuple[str, str]]:
    return [
        (needle, text[:120])
        for text in _texts(session)
        for needle in needles
        if needle.casefold() in text.casefold()
    ]


def _money_state(client: FlaskClient, session: Session, runner: FlaskCliRunner) -> dict[str, Any]:
    """Everything that must not move: totals rows, the ledger's money, check-totals, the API."""
    session.rollback()
    state = {
        "totals": [
            (t.campaign_id, t.period_key, t.raised, t.donors, t.payments, t.version, t.updated_at)
            for t in session.scalars(select(PeriodTotal).order_by(PeriodTotal.period_key))
        ],
        "ledger": [
            (
                e.id,
                e.source,
                e.reference,
                e.kind,
                e.amount,
                e.currency,
                e.occurred_at,
                e.period_key,
                e.pledge_id,
                e.created_at,
            )
            for e in session.scalars(select(LedgerEntry).order_by(LedgerEntry.id))
        ],
        "drift": check_totals(session),
        "pledges": [
            (p.id, p.amount, p.status, p.frequency, p.source, p.paid_at)
            for p in session.scalars(select(Pledge).order_by(Pledge.id))
        ],
    }
    session.rollback()
    state["check_totals"] = runner.invoke(args=["tracker", "check-totals"]).output
    state["api"] = client.get("/api/v1/campaigns/fund").get_data()
    return state


def test_an_erased_donor_is_nowhere_and_no_figure_moves(
    app: Flask, client: FlaskClient, session: Session, seeded: dict[str, Any]
) -> None:
    runner = app.test_cli_runner()
    assert _leaks(session, PERSONAL), "the seed should hold the donor's data"
    before = _money_state(client, session, runner)
    assert before["drift"] == [] and before["check_totals"] == "totals match the ledger\n"
    assert len(before["totals"]) == 2  # this month's Stripe money, and the offline one

    result = runner.invoke(args=["tracker", "erase-donor", EMAIL.upper(), "--yes"])
    assert result.exit_code == 0, result.output
    assert "scrubbed 3 pledges" in result.output
    assert "Ada" not in result.output and "@" not in result.output

    assert _leaks(session, PERSONAL) == []
    assert _money_state(client, session, runner) == before
    # Nor the keyed hash of the address: whoever knows it and the secret finds nothing.
    assert email_key(session, EMAIL) not in "\n".join(_texts(session))
    # The other donor is untouched, apart from the address their note quoted.
    texts = "\n".join(_texts(session))
    assert OTHER_EMAIL in texts and OTHER_NAME in texts and "gift on behalf of" in texts
    # Audited without the personal data.
    record = session.scalars(select(AuditEvent).where(AuditEvent.action == "donor_erased")).one()
    assert record.actor.startswith("cli") and record.details["pledges"] == 3
    assert record.details["inbox_events"] == 4
    session.rollback()


def test_a_redelivered_event_brings_nothing_back_and_counts_nothing_twice(
    app: Flask, client: FlaskClient, session: Session, seeded: dict[str, Any]
) -> None:
    runner = app.test_cli_runner()
    with get_database(app).session() as s:
        erase_donor(s, EMAIL, actor="admin@example.org")
        s.commit()
    after = _money_state(client, session, runner)
    for payload in [*seeded["events"], seeded["invoice"]]:
        # Stripe sends the same event again, personal data and all (a new signature).
        answer = deliver_ok(client, payload)
        assert answer["duplicate"] is True and answer["status"] == "processed"
    assert _leaks(session, PERSONAL) == []
    assert _money_state(client, session, runner) == after
    stored = session.get_one(StripeEvent, json.loads(seeded["events"][0])["id"])
    obj = json.loads(stored.payload)["data"]["object"]
    # The scrubbed copy still says what the ledger needs.
    assert obj["customer_details"] is None and obj["metadata"]["tracker_campaign"] == "fund"
    assert obj["payment_intent"].startswith("pi_") and obj["amount_total"] == 2500
    session.rollback()


def test_the_command_asks_first(
    app: Flask, client: FlaskClient, session: Session, seeded: dict[str, Any]
) -> None:
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["tracker", "erase-donor", EMAIL], input="n\n")
    assert refused.exit_code == 1 and "Aborted" in refused.output
    assert _leaks(session, (EMAIL,))
    accepted = runner.invoke(args=["tracker", "erase-donor", EMAIL], input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert _leaks(session, (EMAIL,)) == []


def test_an_unknown_address_changes_nothing_but_is_audited(
    app: Flask, client: FlaskClient, session: Session, seeded: dict[str, Any]
) -> None:
    runner = app.test_cli_runner()
    before = _texts(session)
    result = runner.invoke(args=["tracker", "erase-donor", "nobody@example.org", "--yes"])
    assert result.exit_code == 0 and "nothing stored concerned that address" in result.output
    after = _texts(session)
    # Only the erasure's own audit record is new.
    assert len(after) == len(before) + 3  # its actor, action and counts
    assert not _leaks(session, ("nobody",))


@pytest.mark.parametrize("value", ["", "   ", "not-an-address"])
def test_a_value_that_is_no_address_is_refused(app: Flask, value: str) -> None:
    result = app.test_cli_runner().invoke(args=["tracker", "erase-donor", value, "--yes"])
    assert result.exit_code == 2 and "e-mail address" in result.output
    with get_database(app).session() as s:
        assert s.scalars(select(AuditEvent)).all() == []
        with pytest.raises(ErasureError):
            erase_donor(s, value, actor="test")


def test_rotating_the_donor_key_secret_moves_no_stored_count(db_url: str) -> None:
    def book(database: Database, at: datetime) -> None:
        with database.session() as s:
            data = PledgeInput(amount=1000, frequency=PledgeFrequency.ONE_TIME, email=EMAIL)
            pledge = create_pledge(s, "fund", data, source=PledgeSource.OFFLINE)
            add_offline_payment(
                s, "fund", 1000, note="transfer", actor="t", pledge_id=pledge.id, at=at
            )
            s.commit()

    def totals(database: Database) -> list[tuple[str, int, int, int]]:
        with database.session() as s:
            assert check_totals(s) == []
            rows = s.scalars(select(PeriodTotal).order_by(PeriodTotal.period_key))
            return [(t.period_key, t.raised, t.donors, t.payments) for t in rows]

    march, april = BEFORE_TODAY, BEFORE_TODAY.replace(month=4)
    old = Database(db_url, donor_key_secret=derive_secret("old-" + "o" * 40))
    with old.session() as s:
        factories.campaign(s, period=PeriodKind.MONTH)
    book(old, march)
    book(old, march)
    assert totals(old) == [("2024-03", 2000, 1, 2)]
    old.dispose()

    new = Database(db_url, donor_key_secret=derive_secret("new-" + "n" * 40))
    # Stored keys stay as they are: every past count and check-totals agree.
    assert totals(new) == [("2024-03", 2000, 1, 2)]
    book(new, april)
    assert totals(new)[1] == ("2024-04", 1000, 1, 1)
    # The one consequence: the same donor paying again into a period that counted
    # them under the old secret counts as a second donor there.
    book(new, march)
    assert totals(new)[0] == ("2024-03", 3000, 2, 3)
    new.dispose()
