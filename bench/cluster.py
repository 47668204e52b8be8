"""Benchmark: webhook events/s through nginx on two app hosts against one, and latency.

Runs the cluster scenario of ``tests/cluster`` (network namespaces as root,
else loopback with the reason printed). Throughput first, without faults or
schedulers: one host with 4 gunicorn workers and two hosts with 2 each (the
same 4 in total) are up at once behind the same nginx configuration, each
warmed up by a storm of its own, then measured in interleaved rounds (A B,
B A, …; a ``CHECKPOINT`` before each; the same draw of events on both sides).
Then the storm of 10,000 signed events on two hosts under the faults.
Reports, from the same run:

- events/s through nginx, two hosts over one: the median of the round pairs'
  ratios. This machine has two cores, so the ratio shows what the balancer
  and the second host cost, not added capacity (target >= 0.9x);
- p50/p99 webhook latency of one host and of two hosts (the rounds), and of the
  storm from its first fault on;
- how many events were deferred before the final ``retry-inbox``.

Exit status 1 if the ratio missed its target or the run found a problem
(a total that is not the client's own sum, an event left behind, …).

    .venv/bin/python bench/cluster.py [--quick] [--seed N] [--events 10000]
        [--rounds 5] [--round-events 400]
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script (``python bench/cluster.py``): make ``bench`` and ``tests`` importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.cluster.run import run


def main() -> int:
    """Run once and print the figures (and a JSON line with them)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--events", type=int, default=None, help="storm size (10,000)")
    parser.add_argument("--rounds", type=int, default=None, help="round pairs (5)")
    parser.add_argument("--round-events", type=int, default=None, help="per round (400)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--quick", action="store_true", help="a 2,000-event storm, 3 round pairs of 300"
    )
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else secrets.randbelow(1_000_000)
    quick = (2_000, 3, 300) if args.quick else (10_000, 5, 400)
    outcome = run(
        seed,
        events=args.events or quick[0],
        rounds=args.rounds or quick[1],
        round_events=args.round_events or quick[2],
        connections=args.connections,
        # The report to stderr, as it happens; stdout has only the JSON line.
        out=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(
        json.dumps(
            {
                "seed": seed,
                "namespaces": outcome.isolated,
                "one_host_events_per_s": round(outcome.one_host_rate, 1),
                "two_hosts_events_per_s": round(outcome.two_hosts_rate, 1),
                "ratio": round(outcome.ratio, 3),
                "round_ratios": [round(r, 3) for r in outcome.round_ratios],
                "storm_with_faults_events_per_s": round(outcome.storm_rate, 1),
                "storm_before_first_fault_events_per_s": round(outcome.storm_clean_rate, 1),
                "p50_p99_ms_one_host": [round(v) for v in outcome.latency_one_host],
                "p50_p99_ms_two_hosts_no_fault": [round(v) for v in outcome.latency_two_hosts],
                "p50_p99_ms_with_faults": [round(v) for v in outcome.latency_faults],
                "deferred_before_retry_inbox": outcome.deferred_after_storm,
                "seconds": round(outcome.seconds, 1),
                "problems": outcome.problems,
            }
        )
    )
    # 1, as for every benchmark run by bench/run_all.py: a figure missed (its table
    # shows which, a money problem being one of them).
    return 0 if not outcome.problems and outcome.ratio >= 0.9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
