"""Helpers of ``bench/webhooks.py``: seeding a large ledger with payments and inbox
rows, and signed events replayed by a wrk script. Databases, gunicorn and wrk
come from :mod:`harness`, shared by every benchmark here.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import stripe
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench import harness
from tracker.db import Database
from tracker.domain.periods import PeriodKind
from tracker.services.campaigns import CampaignSpec, create_campaign

SECRET = "whsec_bench_" + "b" * 32
SLUG = "bench"

# wrk gives each thread its own slice of the pre-signed requests, so no event id
# is sent twice while the file lasts (a repeat would only measure the fast
# duplicate path).
_LUA = r"""
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
local reqs = {}
local idx = 0
function init(args)
  local nthreads = tonumber(args[2])
  local path = args[3] or "/webhooks/stripe"
  local i = 0
  for line in io.lines(args[1]) do
    if i % nthreads == tid then
      local sig, body = line:match("^([^\t]+)\t(.*)$")
      reqs[#reqs + 1] = wrk.format("POST", path,
        {["Stripe-Signature"] = sig, ["Content-Type"] = "application/json"}, body)
    end
    i = i + 1
  end
end
function request()
  idx = idx % #reqs + 1
  return reqs[idx]
end
"""


def _seed_sql(dialect: str, rows: int) -> list[str]:
    """Statements that add ``rows`` ledger entries, donors, payments and inbox rows.

    Built from constants and an int only (no outside input), hence the S608 waivers.
    """
    if dialect == "postgresql":
        series = f"generate_series(1, {rows}) AS s(n)"
        now = "now()"
        cat = "'{0}' || n"
    else:
        series = (
            f"(WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < {rows})"  # noqa: S608
            " SELECT n FROM c)"
        )
        now = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
        cat = "'{0}' || n"
    return [
        "INSERT INTO ledger_entries (campaign_id, source, reference, kind, amount, currency,"  # noqa: S608
        " occurred_at, period_key, donor_key, created_at)"
        f" SELECT 1, 'offline', {cat.format('seed-')}, 'payment', 100, 'USD', {now}, 'all',"
        f" {cat.format('donor-')}, {now} FROM {series}",
        "INSERT INTO period_donors (campaign_id, period_key, donor_key)"  # noqa: S608
        f" SELECT 1, 'all', {cat.format('donor-')} FROM {series}",
        "INSERT INTO stripe_payments (reference, campaign_id, payment_intent_id, charge_id,"  # noqa: S608
        " amount, currency, donor_key, refunded, paid_at, created_at)"
        f" SELECT {cat.format('pi_seed')}, 1, {cat.format('pi_seed')}, {cat.format('ch_seed')},"
        f" 100, 'USD', {cat.format('donor-')}, 0, {now}, {now} FROM {series}",
        "INSERT INTO stripe_events (id, type, livemode, api_created_at, payload, status,"  # noqa: S608
        " attempts, received_at, processed_at)"
        f" SELECT {cat.format('evt_seed')}, 'payment_intent.succeeded', false, {now}, '{{}}',"
        f" 'processed', 1, {now}, {now} FROM {series}",
        f"INSERT INTO period_totals (campaign_id, period_key, raised, donors, payments, version,"  # noqa: S608
        f" updated_at) VALUES (1, 'all', {rows * 100}, {rows}, {rows}, 1, {now})",
    ]


@contextmanager
def database(kind: str, rows: int, pg_admin_url: str) -> Iterator[str]:
    """A fresh, migrated database with campaign ``bench`` and ``rows`` entries; its URL."""
    with harness.fresh_database(kind, pg_admin_url=pg_admin_url) as url:
        db = Database(url)
        try:
            with db.session() as session:
                create_campaign(
                    session,
                    CampaignSpec(
                        slug=SLUG,
                        title="Bench",
                        currency="USD",
                        tiers=[0, 10**12],
                        period=PeriodKind.NONE,
                    ),
                )
                session.commit()
            with db.engine.begin() as conn:
                for statement in _seed_sql(db.dialect, rows):
                    conn.execute(text(statement))
            # Settle the seed before measuring: fresh statistics, and the seed's WAL
            # written back (else its checkpoint lands inside the measurement).
            if db.dialect == "sqlite":
                db.dispose()
                raw = sqlite3.connect(make_url(url).database or "", isolation_level=None)
                raw.execute("ANALYZE")
                raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                raw.close()
            else:
                with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.exec_driver_sql("VACUUM ANALYZE")
                    conn.exec_driver_sql("CHECKPOINT")
        finally:
            db.dispose()
        yield url


def signed_events(path: Path, count: int) -> None:
    """Write ``count`` distinct signed ``payment_intent.succeeded`` deliveries to ``path``."""
    now = int(time.time())
    with path.open("w") as out:
        for n in range(count):
            payload = json.dumps(
                {
                    "id": f"evt_bench_{secrets.token_hex(8)}_{n}",
                    "object": "event",
                    "created": now,
                    "livemode": False,
                    "type": "payment_intent.succeeded",
                    "data": {
                        "object": {
                            "id": f"pi_bench_{secrets.token_hex(8)}_{n}",
                            "object": "payment_intent",
                            "amount": 1000,
                            "amount_received": 1000,
                            "currency": "usd",
                            "invoice": None,
                            "latest_charge": f"ch_bench_{secrets.token_hex(8)}_{n}",
                            "livemode": False,
                            "metadata": {"tracker_campaign": SLUG},
                            "receipt_email": f"donor{n}@example.org",
                            "status": "succeeded",
                        }
                    },
                }
            )
            header = stripe.WebhookSignature.generate_signature_header(payload, SECRET, now)
            out.write(f"{header}\t{payload}\n")


def wrk(
    url: str,
    *,
    seconds: int,
    threads: int,
    connections: int,
    script: Path | None = None,
    args: list[str] | None = None,
) -> harness.WrkResult:
    """One wrk run on ``url`` (with ``script`` and its ``args``, if given)."""
    return harness.run_wrk(
        url,
        duration=seconds,
        threads=threads,
        connections=connections,
        timeout=10,
        script=script,
        script_args=args or (),
    )


@contextmanager
def server(url: str, workers: int, app: str = "wsgi:app") -> Iterator[str]:
    """gunicorn serving ``app`` on ``url``'s database; yields its base URL."""
    env = {
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "STRIPE_SECRET_KEY": "sk_test_" + "k" * 24,
        # Nothing listens there: no event of the benchmark needs the Stripe API.
        "STRIPE_API_BASE": "http://127.0.0.1:9",
    }
    with harness.gunicorn_server(url, workers=workers, env=env, app=app) as running:
        yield running.base_url


def lua_script(directory: Path) -> Path:
    """The wrk script that replays pre-signed deliveries, written into ``directory``."""
    path = directory / "webhooks.lua"
    path.write_text(_LUA)
    return path
