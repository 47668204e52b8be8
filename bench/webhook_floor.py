"""Benchmark: where a webhook's cost is — the endpoint's floor, against ``/livez``.

Serves the real app with a few extra routes (``bench/_floor_app.py``) that each
do part of the webhook's work, and measures them against ``/livez`` and the
real ``POST /webhooks/stripe`` of the same gunicorn, in the same run,
interleaved round after round (medians reported):

- ``verify``: check the signature and parse the event, nothing else;
- ``store``: that, plus the inbox insert and its commit (raw driver);
- ``apply``: the service's statements for a new Payment Link payment through the
  raw driver (psycopg / sqlite3), no ORM, in the issue's two transactions;
- ``apply-once``: the same statements in one transaction;
- ``service``: the real endpoint.

It answers "how fast could the webhook be on this machine, whatever the Python
around the statements": the ``apply`` line is the ceiling for a synchronous
apply with this schema. docs/stripe.md has the figures.

    .venv/bin/python bench/webhook_floor.py [--db sqlite|postgresql|both] [--seconds 6] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script (``python bench/webhook_floor.py``): make ``bench`` importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._webhook_load import database, lua_script, server, signed_events, wrk
from bench.harness import PG_ADMIN_URL, BenchError, WrkResult, interleave

ROUTES = {
    "verify": "/floor/verify",
    "store": "/floor/store",
    "apply": "/floor/apply",
    "apply-once": "/floor/apply-once",
    "service": "/webhooks/stripe",
}


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def _busy(run: Callable[[], WrkResult], into: list[float]) -> WrkResult:
    """Run ``run`` and note how busy the machine's CPUs were meanwhile (0 to 1)."""
    busy0, total0 = _cpu_times()
    result = run()
    busy1, total1 = _cpu_times()
    into.append((busy1 - busy0) / max(1, total1 - total0))
    return result


def measure(
    kind: str, *, rows: int, seconds: int, rounds: int, workers: int, connections: int
) -> list[dict[str, float | str]]:
    """Seed one database, serve the floor app on it, measure every route in turns."""
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tracker-floor-")))
        script = lua_script(tmp)
        url = stack.enter_context(database(kind, rows, PG_ADMIN_URL))
        base = stack.enter_context(server(url, workers, app="bench._floor_app:build()"))
        wrk(f"{base}/livez", seconds=2, threads=2, connections=connections)
        batches = 0

        def deliveries(path: str) -> WrkResult:
            # Every request a new event: a fresh file of signed events per run.
            nonlocal batches
            batches += 1
            events = tmp / f"events-{batches}.tsv"
            signed_events(events, 1500 * seconds)
            return wrk(
                base,
                seconds=seconds,
                threads=2,
                connections=connections,
                script=script,
                args=[str(events), "2", path],
            )

        plain = {
            "livez": partial(
                wrk, f"{base}/livez", seconds=seconds, threads=2, connections=connections
            ),
            **{name: partial(deliveries, path) for name, path in ROUTES.items()},
        }
        busy: dict[str, list[float]] = {name: [] for name in plain}
        targets = {name: partial(_busy, run, busy[name]) for name, run in plain.items()}
        runs = interleave(targets, rounds)
    live = statistics.median(r.rps for r in runs["livez"])
    results: list[dict[str, float | str]] = []
    for name, measured in runs.items():
        rps = statistics.median(r.rps for r in measured)
        results.append(
            {
                "db": kind,
                "entries": rows,
                "route": name,
                "rps": round(rps),
                "ratio": round(rps / live, 3),
                "rps_rounds": " ".join(str(round(r.rps)) for r in measured),
                # Near 1: the CPUs were the limit, not waiting on a disk or a lock.
                "cpu_busy": round(statistics.median(busy[name]), 2),
                "errors": sum(r.non_2xx + r.errors for r in measured),
            }
        )
    return results


def main() -> int:
    """Run the benchmark and print one JSON line per route and database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--connections", type=int, default=16)
    options = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if options.db == "both" else [options.db]
    failed = False
    for kind in kinds:
        try:
            results = measure(
                kind,
                rows=options.entries,
                seconds=options.seconds,
                rounds=options.rounds,
                workers=options.workers,
                connections=options.connections,
            )
        except BenchError as exc:
            raise SystemExit(f"bench: {exc}") from None
        for result in results:
            print(json.dumps(result), flush=True)
            failed = failed or bool(result["errors"])
    if failed:
        print("SOME REQUESTS FAILED: the figures above do not count", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
