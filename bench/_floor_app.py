"""The webhook endpoint's floor: the real app plus routes that do only part of its work.

Served by ``bench/webhook_floor.py`` as ``gunicorn 'bench._floor_app:build()'``, next to
``/livez`` and the real ``POST /webhooks/stripe`` of the same process, to show
where the cost of a webhook is. Each route verifies the delivery exactly as the
real endpoint does (``tracker.gateway.webhooks.verify``), then:

- ``/floor/verify``: nothing else;
- ``/floor/store``: the inbox insert and its commit, through the raw driver;
- ``/floor/apply``: the statements the service runs for a new
  ``payment_intent.succeeded`` that carries only ``tracker_campaign`` (a Payment
  Link payment), through the raw driver (psycopg / sqlite3, no SQLAlchemy), in
  the two transactions the issue asks for: store and commit, then lock the inbox
  row, find the campaign and any pledge holding the PaymentIntent, claim the
  payment, create the pledge and give it to the claim, book the entry, the
  donor, the period totals (with their bound) and the day's totals, take the
  payment's gate (PostgreSQL), look for events waiting on the payment, finish
  the inbox row, commit;
- ``/floor/apply-once``: the same statements in a single transaction.

Not part of the service and never imported by it: the routes skip every check
the service makes in Python (conflicts, currencies, deferred events) and exist
only to measure, but they run every statement the service must run for this
event, in its order, and no other (docs/stripe.md, "what the floor runs"):
the claim before the pledge, because a concurrent event of the same payment
must find the claim and not create a second pledge; the campaign lookup joined
to the pledges, because nothing in the event says it has no pledge of ours; the
payment's gate, because without it a refund deciding to wait for this payment
could miss the booking's look for waiting events
(tests/cluster/test_deferred_wake_race.py). The rows they write are real rows of
the real schema, in the benchmark's throw-away database.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from flask import Blueprint, Flask, Response, current_app, jsonify, request
from sqlalchemy.engine import make_url

from tracker import create_app
from tracker.domain.daily import local_day
from tracker.gateway.webhooks import InvalidWebhook, WebhookEvent, verify
from tracker.models import TOTAL_LIMIT

# The statements, written for psycopg (%s); sqlite3 gets them with ? instead.
_STORE = (
    "INSERT INTO stripe_events (id, type, livemode, api_created_at, payload, status,"
    " attempts, received_at) VALUES (%s, %s, %s, %s, %s, 'received', 0, %s)"
    " ON CONFLICT (id) DO NOTHING RETURNING id"
)
_LOCK_INBOX = "SELECT status, livemode FROM stripe_events WHERE id = %s"
# The campaign, and a pledge of ours that holds the PaymentIntent (none here).
_CAMPAIGN = (
    "SELECT campaigns.id, campaigns.currency, campaigns.period, campaigns.timezone, pledges.id"
    " FROM campaigns LEFT JOIN pledges ON pledges.stripe_payment_intent_id = %s"
    " WHERE campaigns.slug = %s LIMIT 1"
)
_PAYMENT = (
    "INSERT INTO stripe_payments (reference, campaign_id, payment_intent_id,"
    " charge_id, amount, currency, donor_key, refunded, disputed, paid_at, created_at)"
    " VALUES (%s, %s, %s, %s, %s, %s, '', 0, 0, %s, %s) ON CONFLICT DO NOTHING RETURNING id"
)
_PLEDGE = (
    "INSERT INTO pledges (campaign_id, amount, currency, frequency, donor_email, anonymous,"
    " source, status, stripe_payment_intent_id, paid_at, created_at, updated_at)"
    " VALUES (%s, %s, %s, 'one_time', %s, false, 'stripe', 'paid', %s, %s, %s, %s) RETURNING id"
)
_CLAIM_PLEDGE = "UPDATE stripe_payments SET pledge_id = %s, donor_key = %s WHERE id = %s"
_ENTRY = (
    "INSERT INTO ledger_entries (campaign_id, source, reference, kind, amount, currency,"
    " occurred_at, period_key, donor_key, pledge_id, created_at)"
    " VALUES (%s, 'stripe', %s, 'payment', %s, %s, %s, 'all', %s, %s, %s)"
    " ON CONFLICT (source, reference) DO NOTHING RETURNING id"
)
_DONOR = (
    "INSERT INTO period_donors (campaign_id, period_key, donor_key) VALUES (%s, 'all', %s)"
    " ON CONFLICT DO NOTHING RETURNING 1"
)
_TOTALS = (
    "INSERT INTO period_totals (campaign_id, period_key, raised, donors, payments, version,"
    " updated_at) VALUES (%s, 'all', %s, %s, 1, 1, %s) ON CONFLICT (campaign_id, period_key)"
    " DO UPDATE SET raised = period_totals.raised + excluded.raised,"
    " donors = period_totals.donors + excluded.donors,"
    " payments = period_totals.payments + excluded.payments,"
    " version = period_totals.version + 1, updated_at = excluded.updated_at"
    # The service's bound: a total never leaves ±TOTAL_LIMIT (no row back: refused).
    " WHERE period_totals.raised + excluded.raised BETWEEN -%s AND %s RETURNING 1"
)
_DAILY = (
    "INSERT INTO daily_totals (campaign_id, day, raised, payments, gross, refunded, disputed)"
    " VALUES (%s, %s, %s, 1, %s, 0, 0) ON CONFLICT (campaign_id, day) DO UPDATE SET"
    " raised = daily_totals.raised + excluded.raised,"
    " payments = daily_totals.payments + excluded.payments,"
    " gross = daily_totals.gross + excluded.gross,"
    " refunded = daily_totals.refunded + excluded.refunded,"
    " disputed = daily_totals.disputed + excluded.disputed"
)
# The service's gate on the payment's ids (tracker.services.stripe_events.inbox._gate).
_GATE = "SELECT pg_advisory_xact_lock(%s, key) FROM unnest(%s::integer[]) AS key"
_WAITING = (
    "SELECT id, payload FROM stripe_events WHERE status = 'deferred'"
    " AND waiting_for IN (%s, %s) ORDER BY api_created_at, id"
)
_FINISH = (
    "UPDATE stripe_events SET status = 'processed', attempts = attempts + 1,"
    " processed_at = %s WHERE id = %s"
)


_GATE_CLASS = 0x7472


def _gate_key(payment_id: str) -> int:
    # As the service derives a payment id's gate key (a signed 32-bit CRC).
    return zlib.crc32(payment_id.encode()) - (1 << 31)


class _Raw:
    """One raw connection per worker process, with the service's settings."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.sqlite = parsed.get_backend_name() == "sqlite"
        self._conn: Any = None
        self._url = parsed
        self._turn_path = f"{parsed.database}.inbox-lock" if self.sqlite else ""

    def _connect(self) -> Any:
        if self.sqlite:
            conn = sqlite3.connect(self._url.database or "", isolation_level=None)
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            return conn
        return psycopg.connect(
            host=self._url.host,
            port=self._url.port,
            user=self._url.username,
            password=self._url.password,
            dbname=self._url.database,
        )

    def close(self) -> None:
        """Close the connection, if one was opened."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextmanager
    def transaction(self) -> Iterator[Callable[[str, tuple[Any, ...]], Any]]:
        """One write transaction; yields ``run(sql, params) -> cursor``, commits at the end.

        On SQLite the turn is taken with the same ``flock`` the service takes.
        """
        if self._conn is None:
            self._conn = self._connect()
        conn = self._conn
        if self.sqlite:
            fd = os.open(self._turn_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield lambda sql, params: conn.execute(sql.replace("%s", "?"), params)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                # Given back as the service gives it back (closing would too).
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        else:
            with conn.transaction():
                cursor = conn.cursor()
                yield lambda sql, params: cursor.execute(sql, params)


def _raw() -> _Raw:
    raw: _Raw | None = current_app.extensions.get("floor.raw")
    if raw is None:
        raw = _Raw(current_app.config["DATABASE_URL"])
        current_app.extensions["floor.raw"] = raw
    return raw


def _verified() -> WebhookEvent:
    return verify(
        request.get_data(cache=False),
        request.headers.get("Stripe-Signature"),
        current_app.config["STRIPE_WEBHOOK_SECRETS"],
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(raw: _Raw, value: datetime) -> Any:
    # The service stores naive UTC text on SQLite (see UTCDateTime), aware on PostgreSQL.
    return value.strftime("%Y-%m-%d %H:%M:%S.%f") if raw.sqlite else value


def _store(raw: _Raw, run: Callable[[str, tuple[Any, ...]], Any], event: WebhookEvent) -> None:
    run(
        _STORE,
        (
            event.id,
            event.type,
            event.livemode,
            _stamp(raw, event.created),
            event.payload,
            _stamp(raw, _now()),
        ),
    )


def _book(raw: _Raw, run: Callable[[str, tuple[Any, ...]], Any], event: WebhookEvent) -> None:
    obj = event.object
    now = _stamp(raw, _now())
    paid_at = _stamp(raw, event.created)
    intent, charge, amount = obj["id"], obj["latest_charge"], obj["amount_received"]
    email = obj["receipt_email"]
    donor = f"email:{email}"
    run(_LOCK_INBOX + ("" if raw.sqlite else " FOR UPDATE"), (event.id,)).fetchone()
    campaign_id, currency, _period, zone, known = run(
        _CAMPAIGN, (intent, obj["metadata"]["tracker_campaign"])
    ).fetchone()
    assert known is None  # a Payment Link payment: no pledge of ours yet
    (claim,) = run(
        _PAYMENT, (intent, campaign_id, intent, charge, amount, currency, paid_at, now)
    ).fetchone()
    (pledge,) = run(
        _PLEDGE, (campaign_id, amount, currency, email, intent, paid_at, now, now)
    ).fetchone()
    run(_CLAIM_PLEDGE, (pledge, donor, claim))
    run(_ENTRY, (campaign_id, intent, amount, currency, paid_at, donor, pledge, now)).fetchone()
    added = run(_DONOR, (campaign_id, donor)).fetchone()
    counted = run(
        _TOTALS, (campaign_id, amount, 1 if added else 0, now, TOTAL_LIMIT, TOTAL_LIMIT)
    ).fetchone()
    assert counted is not None  # the bench's totals are far from the bound
    run(_DAILY, (campaign_id, local_day(zone, event.created), amount, amount))
    if not raw.sqlite:
        run(_GATE, (_GATE_CLASS, sorted({_gate_key(intent), _gate_key(charge)}))).fetchall()
    run(_WAITING, (intent, charge)).fetchall()
    run(_FINISH, (now, event.id))


floor = Blueprint("floor", __name__, url_prefix="/floor")


@floor.post("/verify")
def verify_only() -> Response:
    """Verify and parse; nothing is written."""
    event = _verified()
    return jsonify(id=event.id)


@floor.post("/store")
def store_only() -> Response:
    """Verify, insert into the inbox, commit."""
    event = _verified()
    raw = _raw()
    with raw.transaction() as run:
        _store(raw, run, event)
    return jsonify(id=event.id)


@floor.post("/apply")
def apply_two() -> Response:
    """Verify, store and commit, then book the payment and commit."""
    event = _verified()
    raw = _raw()
    with raw.transaction() as run:
        _store(raw, run, event)
    with raw.transaction() as run:
        _book(raw, run, event)
    return jsonify(id=event.id)


@floor.post("/apply-once")
def apply_once() -> Response:
    """The same statements as ``/floor/apply`` in one transaction."""
    event = _verified()
    raw = _raw()
    with raw.transaction() as run:
        _store(raw, run, event)
        _book(raw, run, event)
    return jsonify(id=event.id)


def _bad_delivery(exc: InvalidWebhook) -> tuple[Response, int]:
    return jsonify(error=str(exc)), 400


def build(test_config: dict[str, Any] | None = None) -> Flask:
    """The service's app with the floor routes added (``test_config`` as for create_app)."""
    application = create_app(test_config)
    application.register_blueprint(floor)
    application.register_error_handler(InvalidWebhook, _bad_delivery)
    return application
