"""The scheduler's cost per campaign: a summary run and the milestone check, at two ledger sizes.

For each size: 1,000 campaigns share the ledger (10,000 or 1,000,000 entries in
all, seeded in bulk), each notifying one owner. Both databases are seeded
first, then measured in turns (small, large, large, small, ...), so a change
of the machine's load hits both sizes alike. Measured, per campaign, each
round:

- a summary run in steady state (each campaign has had a summary before, as on
  any day but the first): what a daily summary costs;
- the milestone check when no campaign has new entries (the cost of a quiet
  campaign: one comparison with its totals row's version);
- the milestone check after one new payment in every campaign.

The figures that count are ratios measured in the same run, medians over the
rounds: summary cost at the large size over the small one (target ≤ 1.2: flat
in the ledger's size), and the quiet check over the busy one (a quiet campaign
costs next to nothing).

Usage: ``python bench/scheduler.py [--db sqlite,postgresql] [--campaigns 1000]
[--sizes 10000,1000000] [--rounds 3]``; one JSON line per database on stdout
(read by bench/run_all.py), progress on stderr. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _seed(url: str, campaigns: int, entries: int) -> list[str]:
    slugs = [f"c{n:04d}" for n in range(campaigns)]
    for slug in slugs:
        harness.seed_campaign(url, entries // campaigns, slug=slug, verify=False, analyze=False)
    database = Database(url)
    try:
        with database.session() as session:
            for slug in slugs:
                set_notifications(
                    session, slug, NotificationChanges(emails="owner@example.org"), ChatPolicy()
                )
            session.commit()
        with database.engine.connect() as conn:
            # Once, after the last campaign: what autovacuum would have done by now.
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
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


def _round(database: Database, slugs: list[str], day: int) -> dict[str, float]:
    """One measurement of each step on one database, seconds per campaign."""
    _one_payment_each(database, slugs, f"{day}a")
    summary = _summaries(database, slugs, datetime(2030, 1, 1, 8, tzinfo=UTC) + timedelta(day))
    _check(database)  # takes in the payments above
    quiet = min(_check(database) for _ in range(3))
    _one_payment_each(database, slugs, f"{day}b")
    busy = _check(database)
    n = len(slugs)
    return {"summary": summary / n, "quiet": quiet / n, "busy": busy / n}


def measure(kind: str, campaigns: int, sizes: tuple[int, int], rounds: int) -> dict[str, Any]:
    """Seed both sizes, measure them in turns; medians in seconds per campaign, and ratios."""
    small, large = sizes
    with harness.fresh_database(kind) as small_url, harness.fresh_database(kind) as large_url:
        urls = {small: small_url, large: large_url}
        slugs: dict[int, list[str]] = {}
        for size, url in urls.items():
            began = time.perf_counter()
            slugs[size] = _seed(url, campaigns, size)
            _progress(f"  {kind}: seeded {size:,} entries in {time.perf_counter() - began:.0f} s")
        databases = {size: Database(url) for size, url in urls.items()}
        samples: dict[int, list[dict[str, float]]] = {small: [], large: []}
        try:
            for size in sizes:  # the first summary of every campaign (reads its period once)
                _summaries(databases[size], slugs[size], datetime(2030, 1, 1, 8, tzinfo=UTC))
            for day in range(1, rounds + 1):
                order = sizes if day % 2 else sizes[::-1]
                for size in order:
                    samples[size].append(_round(databases[size], slugs[size], day))
                    row = samples[size][-1]
                    _progress(
                        f"  {kind} round {day}, {size:,} entries: "
                        + ", ".join(f"{k} {v * 1e6:,.0f} µs" for k, v in row.items())
                    )
        finally:
            for database in databases.values():
                database.dispose()
    med = {
        size: {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        for size, rows in samples.items()
    }
    return {
        "db": kind,
        "campaigns": campaigns,
        "small": small,
        "large": large,
        "rounds": rounds,
        "per_campaign_us": {
            str(size): {k: round(v * 1e6, 1) for k, v in m.items()} for size, m in med.items()
        },
        # Large over small: ≤ 1.2 is flat in the ledger's size.
        "summary_growth": round(med[large]["summary"] / med[small]["summary"], 3),
        "quiet_growth": round(med[large]["quiet"] / med[small]["quiet"], 3),
        "busy_growth": round(med[large]["busy"] / med[small]["busy"], 3),
        # What a campaign without new entries costs, as a fraction of one with one.
        "quiet_over_busy": round(med[large]["quiet"] / med[large]["busy"], 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--campaigns", type=int, default=1000)
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    small, large = (int(s) for s in args.sizes.split(","))
    kinds = [k.strip() for k in args.db.split(",")]
    for kind in kinds:
        if kind not in harness.DATABASES:
            parser.error(f"unknown database {kind!r}")
    ok = True
    for kind in kinds:
        _progress(f"{kind}: {args.campaigns:,} campaigns, {small:,} and {large:,} entries")
        result = measure(kind, args.campaigns, (small, large), args.rounds)
        print(json.dumps(result), flush=True)
        _progress(
            f"{kind}: summary per campaign, {large:,} over {small:,} entries: "
            f"{result['summary_growth']:.2f}x (target ≤ {TARGET}); quiet check "
            f"{result['quiet_growth']:.2f}x; quiet over busy {result['quiet_over_busy']:.3f}x"
        )
        ok = ok and result["summary_growth"] <= TARGET
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
