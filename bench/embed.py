"""Benchmark of the embed routes: ``python bench/embed.py`` (about five minutes).

Needs PostgreSQL (``TRACKER_TEST_PG_URL`` or the local server), gunicorn (a
dependency), and nginx + wrk from Debian. Everything runs on loopback and stops
at the end; the database it creates is dropped.

1. gunicorn (``--workers``, sync) on a database of 1,000,000 ledger entries:
   requests per second of the JSON API, the iframe page and the SVG, each against
   ``/livez`` (the app's minimal route) measured in the same run. Target >= 0.9x.
2. The same three behind nginx caching per our Cache-Control, each against nginx
   serving a static file of the iframe page's size. Target >= 0.8x.

Figures are printed as a Markdown table and saved in ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script (``python bench/embed.py``): make ``bench`` importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _embed_harness as eh
from bench import harness

ROUTES = {
    "JSON API": f"/api/v1/campaigns/{eh.SLUG}",
    "iframe page": f"/embed/{eh.SLUG}",
    "SVG image": f"/campaigns/{eh.SLUG}/progress.svg",
}


def rps(url: str, args: argparse.Namespace) -> float:
    """Requests per second of one wrk run on ``url``.

    :raise harness.BenchError: if any response was not 2xx/3xx or the run failed.
    """
    result = harness.run_wrk(
        url,
        duration=args.seconds,
        connections=args.connections,
        cpu=args.wrk_cpu,
    )
    if result.non_2xx or result.errors:
        raise harness.BenchError(
            f"{result.non_2xx} error responses and {result.errors} socket errors from {url}"
        )
    return result.rps


def measure(
    base: str, paths: dict[str, str], baseline: str, args: argparse.Namespace
) -> list[dict[str, object]]:
    """Each path against ``baseline``, alternating B R B R ... B.

    Each route run is compared with the mean of the baseline runs just before and
    after it, and the ratio reported is the median of those paired ratios: on a
    shared machine the load changes from one run to the next, and pairing
    neighbours cancels most of it where a ratio of overall medians would not.
    """
    rows = []
    for name, path in paths.items():
        values: list[float] = []
        references = [rps(base + baseline, args)]
        for _ in range(args.rounds):
            values.append(rps(base + path, args))
            references.append(rps(base + baseline, args))
        # references has one run more than values: each value sits between two of them.
        around = zip(values, references, references[1:], strict=False)
        paired = [v / ((a + b) / 2) for v, a, b in around]
        ratio = round(statistics.median(paired), 2)
        value, reference = statistics.median(values), statistics.median(references)
        row = {"route": name, "path": path, "rps": round(value), "baseline_rps": round(reference)}
        spread = f"{min(paired):.2f}-{max(paired):.2f}"
        rows.append(
            {**row, "ratio": ratio, "spread": spread, "runs": values, "baseline_runs": references}
        )
        print(
            f"bench: {name:12} {value:8.0f} req/s vs {reference:8.0f} ({ratio}x, runs {spread})",
            file=sys.stderr,
        )
    return rows


def measure_proxy(app: str, args: argparse.Namespace) -> list[dict[str, object]]:
    """The three routes through nginx's cache, against nginx serving the iframe page as a file."""
    with urllib.request.urlopen(app + ROUTES["iframe page"], timeout=5) as response:
        page = response.read()
    with eh.nginx(app, {"embed.html": page}, args.server_cpu) as proxy:
        for path in ROUTES.values():
            urllib.request.urlopen(proxy + path, timeout=5).read()
        return measure(proxy, ROUTES, "/static/embed.html", args)


def table(title: str, baseline: str, rows: list[dict[str, object]], target: float) -> str:
    """A Markdown table of ``rows``."""
    lines = [f"**{title}** (baseline: {baseline}, target ≥ {target}×)", ""]
    lines += ["| route | req/s | baseline req/s | ratio | per-run ratios |"]
    lines += ["| --- | ---: | ---: | ---: | --- |"]
    for row in rows:
        lines.append(
            f"| {row['route']} | {row['rps']:,} | {row['baseline_rps']:,} | {row['ratio']}× "
            f"| {row['spread']} |"
        )
    return "\n".join(lines)


def main() -> int:
    """Run both comparisons and print the tables; exit 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=2, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=9, help="wrk runs per route")
    parser.add_argument(
        "--pin", metavar="SERVER:WRK", help="CPU lists for taskset, e.g. 0:1 (default: no pinning)"
    )
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--only",
        choices=["gunicorn", "nginx"],
        help="run one of the two comparisons (default: both)",
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--pg-url", default=harness.PG_ADMIN_URL)
    parser.add_argument(
        "--json", type=Path, help="write the results here (default: bench/results/)"
    )
    args = parser.parse_args()
    args.server_cpu, args.wrk_cpu = args.pin.split(":") if args.pin else (None, None)
    try:
        return run(args)
    except harness.BenchError as exc:
        raise SystemExit(f"bench: {exc}") from None


def run(args: argparse.Namespace) -> int:
    """Both comparisons as ``args`` say; print the tables; 1 if a target is missed."""
    harness.need("wrk")
    if args.only != "gunicorn":
        harness.need("nginx")
    results: dict[str, object] = {
        "when": datetime.now(UTC).isoformat(),
        "entries": args.entries,
        "workers": args.workers,
        "cpus": os.cpu_count(),
        "seconds": args.seconds,
        "rounds": args.rounds,
        "connections": args.connections,
        "pin": args.pin,
    }
    with harness.fresh_database("postgresql", pg_admin_url=args.pg_url) as url:
        started = time.monotonic()
        seeded = harness.seed_campaign(url, args.entries, slug=eh.SLUG)
        print(f"bench: seeded {seeded.entries:,} ledger entries", file=sys.stderr)
        results["seed_seconds"] = round(time.monotonic() - started, 1)
        with harness.gunicorn_server(url, workers=args.workers, cpu=args.server_cpu) as server:
            app = server.base_url
            for path in ROUTES.values():  # warm every worker's process cache
                for _ in range(args.workers * 2):
                    urllib.request.urlopen(app + path, timeout=5).read()
            direct = [] if args.only == "nginx" else measure(app, ROUTES, "/livez", args)
            if args.only == "gunicorn":
                proxied: list[dict[str, object]] = []
            else:
                proxied = measure_proxy(app, args)
    results["gunicorn"] = direct
    results["nginx"] = proxied
    if direct:
        print(table("gunicorn", "/livez", direct, 0.9))
        print()
    if proxied:
        print(table("nginx (proxy_cache per Cache-Control)", "nginx static file", proxied, 0.8))
    out = Path(__file__).resolve().parent / "results"
    target = args.json or out / f"embed-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=2))
    missed = [r for r in direct if _ratio(r) < 0.9] + [r for r in proxied if _ratio(r) < 0.8]
    return 1 if missed else 0


def _ratio(row: dict[str, object]) -> float:
    value = row["ratio"]
    assert isinstance(value, float)
    return value


if __name__ == "__main__":
    raise SystemExit(main())
