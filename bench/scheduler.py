"""The scheduler's cost per campaign: a summary run and the milestone check, at two ledger sizes.

For each size: 1,000 campaigns share the ledger (10,000 or 1,000,000 entries in
all, seeded in bulk), each notifying one owner. Measured, per campaign:

- a summary run in steady state (each campaign has had a summary before, as on
  any day but the first): what a daily summary costs;
- the milestone check when no campaign has new entries (the cost of a quiet
  campaign: one comparison with its totals row's version);
- the milestone check after one new payment in every campaign.

The figures that count are ratios measured in the same run: summary cost at
the large size over the small one (target ≤ 1.2: flat in the ledger's size),
and the quiet check over the busy one (a quiet campaign costs next to nothing).

Usage: ``python bench/scheduler.py [--db sqlite|postgresql] [--campaigns 1000]
[--sizes 10000,1000000]``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness
from tracker.db import Database
from tracker.domain.ledger import EntryKind, EntrySource
from tracker.notify import milestones
from tracker.notify.chat import ChatPolicy
from tracker.notify.context import Context
from tracker.notify.summaries import send_summary_now
from tracker.services.campaigns import get_campaign
from tracker.services.ledger import record_entry
from tracker.services.notifications import NotificationChanges, set_notifications

TARGET = 1.2
CONTEXT = Context(mail_from="bench@example.org")


def _seed(url: str, campaigns: int, entries: int) -> list[str]:
    slugs = [f"c{n:04d}" for n in range(campaigns)]
    for slug in slugs:
        harness.seed_campaign(url, entries // campaigns, slug=slug, verify=False)
    database = Database(url)
    try:
        with database.session() as session:
            for slug in slugs:
                set_notifications(
                    session, slug, NotificationChanges(emails="owner@example.org"), ChatPolicy()
                )
            session.commit()
    finally:
        database.dispose()
    return slugs


def _summaries(database: Database, slugs: list[str], at: datetime) -> float:
    began = time.perf_counter()
    with database.session() as session:
        for slug in slugs:
            send_summary_now(session, get_campaign(session, slug), at, CONTEXT)
        session.commit()
    return time.perf_counter() - began


def _check(database: Database) -> float:
    began = time.perf_counter()
    with database.session() as session:
        milestones.check(session, CONTEXT)
        session.commit()
    return time.perf_counter() - began


def _one_payment_each(database: Database, slugs: list[str], tag: str) -> None:
    with database.session() as session:
        for slug in slugs:
            record_entry(
                session,
                get_campaign(session, slug),
                source=EntrySource.OFFLINE,
                reference=f"bench-{tag}-{slug}",
                kind=EntryKind.PAYMENT,
                amount=2500,
                currency="USD",
                occurred_at=datetime.now(UTC),
            )
        session.commit()


def measure(kind: str, campaigns: int, entries: int) -> dict[str, float]:
    """Seconds per campaign for each measured step, on a fresh database."""
    with harness.fresh_database(kind) as url:
        began = time.perf_counter()
        slugs = _seed(url, campaigns, entries)
        print(f"  seeded {entries:,} entries in {time.perf_counter() - began:.0f} s", flush=True)
        database = Database(url)
        try:
            _summaries(database, slugs, datetime(2030, 1, 1, 8, tzinfo=UTC))  # the first
            _one_payment_each(database, slugs, "a")
            summary = _summaries(database, slugs, datetime(2030, 1, 2, 8, tzinfo=UTC))
            _check(database)  # takes in the payments above
            quiet = min(_check(database) for _ in range(5))
            _one_payment_each(database, slugs, "b")
            busy = _check(database)
        finally:
            database.dispose()
    return {
        "summary": summary / campaigns,
        "quiet": quiet / campaigns,
        "busy": busy / campaigns,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="sqlite", choices=harness.DATABASES)
    parser.add_argument("--campaigns", type=int, default=1000)
    parser.add_argument("--sizes", default="10000,1000000")
    args = parser.parse_args()
    small, large = (int(s) for s in args.sizes.split(","))
    results = {}
    for size in (small, large):
        print(f"{args.db}: {args.campaigns:,} campaigns, {size:,} entries", flush=True)
        results[size] = measure(args.db, args.campaigns, size)
        for name, seconds in results[size].items():
            print(f"  {name:<8} {seconds * 1e6:9.0f} µs per campaign")
    flat = results[large]["summary"] / results[small]["summary"]
    quiet = results[large]["quiet"] / results[large]["busy"]
    print(
        f"summary per campaign, {large:,} over {small:,} entries: {flat:.2f}x (target ≤ {TARGET})"
    )
    check = results[large]["quiet"] / results[small]["quiet"]
    print(f"quiet milestone check, {large:,} over {small:,} entries: {check:.2f}x")
    print(f"quiet over busy milestone check: {quiet:.2f}x")
    return 0 if flat <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
