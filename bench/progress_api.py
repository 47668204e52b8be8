"""Progress API throughput against the app's minimal route, under gunicorn, with wrk.

For each database and ledger size: seed a campaign with that many ledger
entries, serve the app with gunicorn, then alternate wrk runs of ``/livez``
(the baseline: no database, no cache) and ``/api/v1/campaigns/<slug>``.
The figure that counts is the ratio of their median requests/s; the target
is at least 0.9x at every size.

Usage: ``python bench/progress_api.py [--quick] [--db postgresql,sqlite]
[--sizes 10000,1000000] [--duration 2] [--rounds 16] [--workers N]``.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script (``python bench/progress_api.py``): make ``bench`` importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness

TARGET = 0.9
BASELINE = "/livez"


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the result table."""

    db: str
    entries: int
    seed_seconds: float
    baseline_rps: float
    api_rps: float
    ratio: float
    paired_q1: float
    paired_q3: float
    api_p50_ms: float
    api_p99_ms: float
    baseline_p50_ms: float
    baseline_cpu_us: float
    api_cpu_us: float
    cpu_ratio: float
    passed: bool


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _check_document(url: str, seeded: harness.Seeded) -> None:
    """The API must serve the seeded totals before its speed means anything."""
    with urllib.request.urlopen(url, timeout=10) as response:
        document = json.load(response)
    got = (document["raised"], document["payments"], document["donors"])
    want = (seeded.raised, seeded.payments, seeded.donors)
    if got != want:
        raise harness.BenchError(f"API serves {got}, seeded {want}")


def measure(db: str, entries: int, args: argparse.Namespace) -> Row:
    """Seed, serve, and compare the progress API with the baseline for one configuration."""
    with harness.fresh_database(db) as url:
        _say(f"[{db} {entries:,}] seeding ...")
        seeded = harness.seed_campaign(url, entries)
        _say(f"[{db} {entries:,}] seeded in {seeded.seconds:.1f} s; starting gunicorn")
        with harness.gunicorn_server(
            url,
            workers=args.workers,
            worker_class=args.worker_class,
            threads=args.threads,
            env={"API_CACHE_SECONDS": str(args.cache_seconds)},
        ) as server:
            api = server.url(f"/api/v1/campaigns/{seeded.slug}")
            base = server.url(BASELINE)
            _check_document(api, seeded)

            def load(target: str, seconds: float) -> harness.WrkResult:
                return harness.run_wrk(
                    target,
                    duration=seconds,
                    connections=args.connections,
                    threads=1,
                    cpu_clock=server.cpu_seconds,
                )

            # Warm-up: imports, Babel's locale data, connection pools, each worker's cache.
            load(base, 1)
            load(api, 1)
            _say(f"[{db} {entries:,}] measuring {args.rounds} x {args.duration:g} s per route")
            runs = harness.interleave(
                {
                    "baseline": lambda: load(base, args.duration),
                    "api": lambda: load(api, args.duration),
                },
                args.rounds,
            )
    # A wrong answer invalidates the run; a rare socket timeout on a loaded machine
    # does not, but more than one request in a thousand does.
    wrong = [r for rs in runs.values() for r in rs if r.non_2xx]
    if wrong:
        raise harness.BenchError(f"non-2xx answers during the run: {wrong[0]}")
    flaky = [r for rs in runs.values() for r in rs if r.errors * 1000 > r.requests]
    if flaky:
        raise harness.BenchError(f"socket errors during the run: {flaky[0]}")
    base_rps = harness.median([r.rps for r in runs["baseline"]])
    api_rps = harness.median([r.rps for r in runs["api"]])
    # Each API run is paired with the baseline run next to it in time (A B, B A, ...);
    # the median of these paired ratios is the figure, robust to the machine's drift.
    paired = [a.rps / b.rps for a, b in zip(runs["api"], runs["baseline"], strict=True)]
    ratio = harness.median(paired)
    # The same comparison in server CPU time per request: steadier when other
    # processes compete for the cores (they cut requests/s, hardly CPU per request).
    cpu_paired = [
        b.cpu_us_per_request / a.cpu_us_per_request
        for a, b in zip(runs["api"], runs["baseline"], strict=True)
    ]
    row = Row(
        db=db,
        entries=entries,
        seed_seconds=seeded.seconds,
        baseline_rps=base_rps,
        api_rps=api_rps,
        ratio=ratio,
        paired_q1=harness.quartiles(paired)[0],
        paired_q3=harness.quartiles(paired)[1],
        api_p50_ms=harness.median([r.latency_p50_ms for r in runs["api"]]),
        api_p99_ms=harness.median([r.latency_p99_ms for r in runs["api"]]),
        baseline_p50_ms=harness.median([r.latency_p50_ms for r in runs["baseline"]]),
        baseline_cpu_us=harness.median([r.cpu_us_per_request for r in runs["baseline"]]),
        api_cpu_us=harness.median([r.cpu_us_per_request for r in runs["api"]]),
        cpu_ratio=harness.median(cpu_paired),
        passed=ratio >= TARGET,
    )
    _say(f"[{db} {entries:,}] ratio {ratio:.2f} ({'PASS' if row.passed else 'FAIL'})")
    return row


def table(rows: list[Row]) -> str:
    """The result as a Markdown table."""
    lines = [
        "| database | ledger entries | seed (s) | /livez req/s | API req/s | API / livez"
        " | paired IQR | server CPU µs/req livez / API | CPU ratio"
        " | API p50 / p99 (ms) | ≥ 0.9× |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.db} | {r.entries:,} | {r.seed_seconds:.1f} | {r.baseline_rps:,.0f}"
            f" | {r.api_rps:,.0f} | **{r.ratio:.2f}×** | {r.paired_q1:.2f}–{r.paired_q3:.2f}"
            f" | {r.baseline_cpu_us:.0f} / {r.api_cpu_us:.0f} | {r.cpu_ratio:.2f}×"
            f" | {r.api_p50_ms:.2f} / {r.api_p99_ms:.2f} | {'PASS' if r.passed else 'FAIL'} |"
        )
    return "\n".join(lines)


def _csv(kind: type, text: str) -> list:  # type: ignore[type-arg]
    return [kind(part.strip().replace("_", "")) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--quick`` lowers sizes, duration and rounds for a smoke run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=",".join(harness.DATABASES), help="postgresql,sqlite")
    parser.add_argument("--sizes", help="ledger entries, comma-separated (10000,1000000)")
    parser.add_argument("--duration", type=float, help="seconds per wrk run (2)")
    parser.add_argument("--rounds", type=int, help="runs per route, interleaved (16)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--worker-class", default="sync", choices=("sync", "gthread"))
    parser.add_argument("--threads", type=int, default=1, help="per worker (gthread)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument("--cache-seconds", type=float, default=1.0, help="API micro-cache TTL")
    parser.add_argument("--quick", action="store_true", help="10,000 entries, 4 rounds of 2 s")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    # --quick changes the defaults only; options given explicitly still win.
    defaults = ("10000", 2.0, 4) if args.quick else ("10000,1000000", 2.0, 16)
    for name, value in zip(("sizes", "duration", "rounds"), defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.db = _csv(str, args.db)
    args.sizes = _csv(int, args.sizes)
    unknown = set(args.db) - set(harness.DATABASES)
    if unknown:
        parser.error(f"unknown database {', '.join(sorted(unknown))}")
    if args.rounds < 1 or args.duration < 1 or not args.sizes:
        parser.error("need at least one size, one round and 1 s per run")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table; exit 1 if any configuration misses the target."""
    args = parse_args(argv)
    # A SIGTERM (timeout, CI cancel) must unwind through the finally blocks that stop
    # gunicorn and drop the database, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(143))
    began = time.monotonic()
    rows = [measure(db, size, args) for db in args.db for size in args.sizes]
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"\nprogress API vs {BASELINE} -- {when}, {os.cpu_count()} cores,"
        f" Python {platform.python_version()},"
        f" gunicorn {args.worker_class} x{args.workers}"
        f"{f' x{args.threads} threads' if args.worker_class == 'gthread' else ''},"
        f" wrk 1 thread {args.connections} connections, {args.rounds} x {args.duration:g} s"
        f" per route, API cache {args.cache_seconds:g} s; {time.monotonic() - began:.0f} s total\n"
    )
    print(table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload: dict[str, Any] = {
            "when": when,
            "options": {k: str(v) for k, v in vars(args).items()},
            "rows": [asdict(r) for r in rows],
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0 if all(r.passed for r in rows) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except harness.BenchError as exc:
        sys.exit(f"benchmark error: {exc}")
    except KeyboardInterrupt:
        sys.exit(130)
