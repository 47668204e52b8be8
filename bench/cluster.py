"""Benchmark: webhook events/s through nginx on two app hosts against one, and latency.

Runs the cluster scenario of ``tests/cluster`` (network namespaces as root,
else loopback with the reason printed): a one-host baseline with 4 gunicorn
workers, then the storm of 10,000 signed events on two hosts with 2 workers
each (the same 4 in total) under the faults. Reports, from the same run:

- events/s through nginx, two hosts (the sends before the first fault) over
  one host: this machine has two cores, so the ratio shows what the balancer
  and the second host cost, not added capacity (target >= 0.9x);
- p50/p99 webhook latency of one host, of two hosts before the first fault,
  and from the first fault on.

It also fails (exit 1) if the run found a problem with the money.

    .venv/bin/python bench/cluster.py [--seed N] [--events 10000] [--baseline-events 2000]
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
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--baseline-events", type=int, default=2_000)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else secrets.randbelow(1_000_000)
    outcome = run(
        seed,
        events=args.events,
        baseline_events=args.baseline_events,
        connections=args.connections,
    )
    print(
        json.dumps(
            {
                "seed": seed,
                "namespaces": outcome.isolated,
                "one_host_events_per_s": round(outcome.baseline_rate, 1),
                "two_hosts_events_per_s": round(outcome.cluster_rate, 1),
                "ratio": round(outcome.ratio, 3),
                "storm_with_faults_events_per_s": round(outcome.storm_rate, 1),
                "p50_p99_ms_one_host": [round(v) for v in outcome.latency_baseline],
                "p50_p99_ms_two_hosts_no_fault": [round(v) for v in outcome.latency_clean],
                "p50_p99_ms_with_faults": [round(v) for v in outcome.latency_faults],
                "seconds": round(outcome.seconds, 1),
                "problems": outcome.problems,
            }
        )
    )
    return 1 if outcome.problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
