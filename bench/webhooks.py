"""Benchmark: signed Stripe webhook events per second through gunicorn, against ``/livez``.

For each database (SQLite, PostgreSQL) and each ledger size (10,000 and
1,000,000 entries, with as many payments and inbox rows), this seeds a fresh
database, starts gunicorn, measures the minimal route ``/livez`` and then
``POST /webhooks/stripe`` with distinct, validly signed
``payment_intent.succeeded`` events — the full path: verify, store and commit,
then claim the payment, create its pledge, book the entry and its totals, and
commit — all with wrk on loopback, in the same run. Targets: webhooks >= 0.3 times
``/livez``, and no slower at 1,000,000 entries than at 10,000.

    .venv/bin/python bench/webhooks.py [--db sqlite|postgresql|both] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _webhook_load import database, lua_script, server, signed_events, wrk

PG_ADMIN_URL = os.environ.get("TRACKER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def run(kind: str, rows: int, *, seconds: int, workers: int, connections: int) -> dict[str, float]:
    """Seed, serve and measure one database at one size; the figures as a dict."""
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="tracker-bench-") as tmp,
        database(kind, rows, PG_ADMIN_URL) as url,
    ):
        seeded = time.monotonic() - started
        events = Path(tmp) / "events.tsv"
        # Far more than a run can send, so every request is a new event.
        signed_events(events, 4000 * seconds)
        script = lua_script(Path(tmp))
        with server(url, workers) as base:
            # Warm up both routes (imports, connection pools) before measuring.
            wrk(f"{base}/livez", seconds=2, threads=2, connections=connections)
            livez = wrk(f"{base}/livez", seconds=seconds, threads=2, connections=connections)
            hooks = wrk(
                base,
                seconds=seconds,
                threads=2,
                connections=connections,
                script=script,
                args=[str(events), "2"],
            )
    return {
        "db": kind,  # type: ignore[dict-item]
        "entries": rows,
        "seed_s": round(seeded, 1),
        "livez_rps": round(livez.rps),
        "webhook_rps": round(hooks.rps),
        "ratio": round(hooks.rps / livez.rps, 3),
        "webhook_errors": hooks.bad,
        "livez_errors": livez.bad,
    }


def main() -> int:
    """Run the benchmark and print one JSON line per measurement, then a verdict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--sizes", default="10000,1000000", help="Ledger sizes to compare, comma-separated."
    )
    options = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if options.db == "both" else [options.db]
    sizes = [int(s) for s in options.sizes.split(",")]
    results = []
    for kind in kinds:
        for rows in sizes:
            result = run(
                kind,
                rows,
                seconds=options.seconds,
                workers=options.workers,
                connections=options.connections,
            )
            print(json.dumps(result), flush=True)
            results.append(result)
    ok = True
    for kind in kinds:
        mine = [r for r in results if r["db"] == kind]
        for r in mine:
            if r["ratio"] < 0.3 or r["webhook_errors"]:
                ok = False
        if len(mine) >= 2:
            small, large = mine[0], mine[-1]
            # "No slower" within measurement noise (10 %).
            if large["webhook_rps"] < 0.9 * small["webhook_rps"]:
                ok = False
    print("PASS" if ok else "BELOW TARGET")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
