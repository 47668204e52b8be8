"""Every benchmark in bench/, one table: ``make bench`` (``python bench/run_all.py``).

Runs each benchmark script as it is (its own process, its own databases and
servers), reads the figures it reports (``--json`` files or JSON lines), and
prints one Markdown table: each figure of the README's performance section,
its target, PASS or FAIL, and the ratios measured within the run. Every
figure is a ratio against a baseline measured in the same run, as each
benchmark's docstring explains.

    python bench/run_all.py            # the full set, about 25 minutes on 2 cores
                                       # (plus the scheduler's, 10-40 minutes of seeding)
    python bench/run_all.py --quick    # smaller sizes, fewer and shorter rounds, ~10 minutes
    python bench/run_all.py --json     # the figures as one JSON document instead
    python bench/run_all.py --only embed,webhooks

Exit status 1 when a figure misses its target or a benchmark fails to run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent


@dataclass(frozen=True, slots=True)
class Figure:
    """One line of the table: what was measured, the ratio, its target, and the detail."""

    benchmark: str
    figure: str
    ratio: float
    target: float
    detail: str
    # Latency and memory figures are ceilings (ratio <= target), the rest floors.
    at_most: bool = False
    unit: str = "×"

    @property
    def passed(self) -> bool:
        """Whether the ratio meets the target (at least it, or at most it for a ceiling)."""
        return self.ratio <= self.target if self.at_most else self.ratio >= self.target


@dataclass(frozen=True, slots=True)
class Benchmark:
    """A script, its arguments (full and quick), and how to read its figures."""

    name: str
    script: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    # (the JSON file it wrote or None, its stdout) -> figures
    read: Callable[[Path | None, str], list[Figure]]
    writes_json: bool


def _json_lines(stdout: str) -> list[dict[str, Any]]:
    rows = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            rows.append(json.loads(line))
    return rows


def _size(entries: object) -> str:
    number = int(str(entries))
    return f"{number // 1_000_000}M" if number >= 1_000_000 else f"{number // 1000}k"


def read_progress(path: Path | None, _stdout: str) -> list[Figure]:
    """bench/progress_api.py's ``--json``: the API against /livez per database and size."""
    assert path is not None
    return [
        Figure(
            "progress_api",
            f"progress API / livez, {row['db']}, {_size(row['entries'])} entries",
            row["ratio"],
            0.9,
            f"{row['api_rps']:,.0f} vs {row['baseline_rps']:,.0f} req/s; "
            f"paired IQR {row['paired_q1']:.2f}-{row['paired_q3']:.2f}; "
            f"server CPU ratio {row['cpu_ratio']:.2f}",
        )
        for row in json.loads(path.read_text())["rows"]
    ]


def read_embed(path: Path | None, _stdout: str) -> list[Figure]:
    """bench/embed.py's ``--json``: the embeds behind gunicorn and behind nginx's cache."""
    assert path is not None
    document = json.loads(path.read_text())
    figures = []
    for behind, baseline, target in (
        ("gunicorn", "livez", 0.9),
        ("nginx", "nginx static file", 0.8),
    ):
        for row in document.get(behind, []):
            figures.append(
                Figure(
                    "embed",
                    f"{row['route']} behind {behind} / {baseline}, "
                    f"{_size(document['entries'])} entries",
                    row["ratio"],
                    target,
                    f"{row['rps']:,} vs {row['baseline_rps']:,} req/s; runs {row['spread']}",
                )
            )
    return figures


def read_webhooks(_path: Path | None, stdout: str) -> list[Figure]:
    """bench/webhooks.py's JSON lines: events/s against /livez, and flatness across sizes."""
    rows = _json_lines(stdout)
    figures = [
        Figure(
            "webhooks",
            f"webhook events / livez, {row['db']}, {_size(row['entries'])} entries",
            row["ratio"],
            0.3,
            f"{row['webhook_rps']:,} events/s vs {row['livez_rps']:,} req/s; "
            f"rounds {row['webhook_rps_rounds']}",
        )
        for row in rows
    ]
    for db in dict.fromkeys(row["db"] for row in rows):
        mine = [row for row in rows if row["db"] == db]
        if len(mine) >= 2:
            small, large = mine[0], mine[-1]
            figures.append(
                Figure(
                    "webhooks",
                    f"webhook events/s at {_size(large['entries'])} / at "
                    f"{_size(small['entries'])} entries, {db}",
                    round(large["webhook_rps"] / small["webhook_rps"], 3),
                    0.9,
                    f"{large['webhook_rps']:,} vs {small['webhook_rps']:,} events/s "
                    "(no slower, within 10 % noise)",
                )
            )
    return figures


def read_floor(_path: Path | None, stdout: str) -> list[Figure]:
    """bench/webhook_floor.py's JSON lines: the endpoint against its raw-driver floor."""
    rows = _json_lines(stdout)
    figures = []
    for db in dict.fromkeys(row["db"] for row in rows):
        mine = {row["route"]: row for row in rows if row["db"] == db}
        if "service" not in mine or "apply" not in mine:
            continue
        service, floor = mine["service"], mine["apply"]
        steps = ", ".join(f"{name} {row['ratio']:.3f}" for name, row in mine.items())
        figures.append(
            Figure(
                "webhook_floor",
                f"webhook endpoint / raw-driver floor, {db}, {_size(service['entries'])} entries",
                round(service["rps"] / floor["rps"], 3),
                0.8,
                f"{service['rps']:,} vs {floor['rps']:,} req/s; each / livez: {steps}",
            )
        )
    return figures


def read_admin(path: Path | None, _stdout: str) -> list[Figure]:
    """bench/admin.py's ``--json``: each page flat in the ledger's size and near /livez,
    and the CSV export's memory."""
    assert path is not None
    document = json.loads(path.read_text())
    figures = []
    for row in document["pages"]:
        small, large = _size(row["small"]), _size(row["large"])
        figures.append(
            Figure(
                "admin",
                f"admin {row['page']} p50 at {large} / at {small} entries, {row['db']}",
                row["flat"],
                1.2,
                f"{row['p50_large_ms']:.1f} vs {row['p50_small_ms']:.1f} ms; over each "
                f"server's /livez {row.get('flat_vs_livez', float('nan')):.2f}×",
                at_most=True,
            )
        )
        worse = max(row["vs_livez_small"], row["vs_livez_large"])
        figures.append(
            Figure(
                "admin",
                f"admin {row['page']} p50 / livez p50, {row['db']} (worse of {small}, {large})",
                worse,
                15,
                f"{row['vs_livez_small']:.1f}× at {small} "
                f"({row['p50_small_ms']:.1f} vs {row['livez_small_ms']:.2f} ms), "
                f"{row['vs_livez_large']:.1f}× at {large} "
                f"({row['p50_large_ms']:.1f} vs {row['livez_large_ms']:.2f} ms)",
                at_most=True,
            )
        )
    for export in document["csv"]:
        figures.append(
            Figure(
                "admin",
                f"admin CSV export of {_size(export['entries'])} rows, worker RSS growth, "
                f"{export['db']}",
                export["rss_growth_mb"],
                50,
                f"{export['rows_per_s']:,} rows/s; {export['megabytes']} MB "
                f"in {export['seconds']} s",
                at_most=True,
                unit=" MB",
            )
        )
    return figures


def read_scheduler(_path: Path | None, stdout: str) -> list[Figure]:
    """bench/scheduler.py's JSON lines: summary and milestone check per campaign, two sizes.

    Its own ratios are "large over small" (≤ 1.2 is flat); the table's are
    "higher is better", so they appear inverted: small-size cost over
    large-size cost, at least 1 / 1.2.
    """
    figures = []
    for row in _json_lines(stdout):
        small, large, db = _size(row["small"]), _size(row["large"]), row["db"]
        per = row["per_campaign_us"]
        at_small, at_large = per[str(row["small"])], per[str(row["large"])]
        for step, name in (("summary", "summary run"), ("quiet", "quiet milestone check")):
            figures.append(
                Figure(
                    "scheduler",
                    f"{name} per campaign, cost at {small} / at {large} entries, {db}",
                    round(1 / row[f"{step}_growth"], 3),
                    0.83,
                    f"{at_small[step]:,.0f} vs {at_large[step]:,.0f} µs per campaign "
                    f"({row['campaigns']:,} campaigns; {large} within 1.2× of {small})",
                )
            )
        figures.append(
            Figure(
                "scheduler",
                f"milestone check, campaign with a new entry / quiet one, {large} entries, {db}",
                round(1 / row["quiet_over_busy"], 1),
                10,
                f"{at_large['busy']:,.0f} vs {at_large['quiet']:,.0f} µs per campaign "
                "(a quiet campaign costs under a tenth)",
            )
        )
    return figures


def read_cluster(_path: Path | None, stdout: str) -> list[Figure]:
    """bench/cluster.py's JSON line: two hosts against one, and whether the money held."""
    row = [r for r in _json_lines(stdout) if "round_ratios" in r][-1]
    where = "network namespaces" if row["namespaces"] else "loopback fallback (not root)"
    ratios = " ".join(f"{r:.2f}" for r in row["round_ratios"])
    problems = row["problems"]
    return [
        Figure(
            "cluster",
            "webhook events/s through nginx, two hosts x 2 workers / one host x 4",
            row["ratio"],
            0.9,
            f"{row['two_hosts_events_per_s']:,} vs {row['one_host_events_per_s']:,} events/s "
            f"(medians); round pairs {ratios}; {where}",
        ),
        Figure(
            "cluster",
            "storm under faults: every total exact, nothing left in the inbox",
            0.0 if problems else 1.0,
            1.0,
            (f"{len(problems)} problem(s): " + "; ".join(problems))[:300]
            if problems
            else f"{row['deferred_before_retry_inbox']} deferred before the final "
            f"retry-inbox; {row['storm_with_faults_events_per_s']:,} events/s with faults",
        ),
    ]


BENCHMARKS = (
    Benchmark("progress_api", "progress_api.py", (), ("--quick",), read_progress, writes_json=True),
    Benchmark(
        "embed",
        "embed.py",
        (),
        ("--entries", "10000", "--rounds", "3", "--seconds", "1"),
        read_embed,
        writes_json=True,
    ),
    Benchmark(
        "webhooks",
        "webhooks.py",
        (),
        ("--sizes", "10000,100000", "--seconds", "3", "--rounds", "1"),
        read_webhooks,
        writes_json=False,
    ),
    Benchmark(
        "webhook_floor",
        "webhook_floor.py",
        (),
        ("--seconds", "3", "--rounds", "1"),
        read_floor,
        writes_json=False,
    ),
    Benchmark("admin", "admin.py", (), ("--quick",), read_admin, writes_json=True),
    Benchmark(
        "scheduler",
        "scheduler.py",
        (),
        ("--campaigns", "100", "--sizes", "1000,100000", "--rounds", "2"),
        read_scheduler,
        writes_json=False,
    ),
    # Needs root for its network namespaces (else loopback, said in the table) and
    # redis-server; a few minutes in full, about two with --quick.
    Benchmark("cluster", "cluster.py", (), ("--quick",), read_cluster, writes_json=False),
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one benchmark script did: its figures, or why it gave none."""

    name: str
    seconds: float
    figures: list[Figure]
    error: str | None


def run(benchmark: Benchmark, quick: bool, workdir: Path) -> Outcome:
    """Run one benchmark script to the end and read its figures."""
    args = list(benchmark.quick if quick else benchmark.full)
    path = workdir / f"{benchmark.name}.json" if benchmark.writes_json else None
    if path is not None:
        args += ["--json", str(path)]
    command = [sys.executable, str(BENCH / benchmark.script), *args]
    print(f"run_all: {' '.join(command[1:])}", file=sys.stderr, flush=True)
    began = time.monotonic()
    # Progress lines go to our stderr as they come; stdout is what we read.
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    seconds = time.monotonic() - began
    reason: str | None = None
    try:
        figures = benchmark.read(path, done.stdout)
    except (OSError, ValueError, KeyError, AssertionError, ZeroDivisionError) as exc:
        figures, reason = [], f"could not read its figures ({type(exc).__name__}: {exc})"
    # Exit 1 is a missed target, which the table shows; anything else is a failure.
    if done.returncode not in (0, 1) or (not figures and reason is None):
        reason = reason or f"exited with status {done.returncode} and no figures"
    return Outcome(benchmark.name, seconds, figures, reason)


def table(outcomes: list[Outcome]) -> str:
    """The Markdown table of every figure, then one line per benchmark that failed to run."""
    lines = [
        "| benchmark | figure | ratio | target | result | measured in the run |",
        "|---|---|---:|---:|:---:|---|",
    ]
    for outcome in outcomes:
        for f in outcome.figures:
            verdict = "PASS" if f.passed else "**FAIL**"
            bound = "≤" if f.at_most else "≥"
            lines.append(
                f"| {f.benchmark} | {f.figure} | **{f.ratio:.2f}{f.unit}** "
                f"| {bound} {f.target:g}{f.unit} | {verdict} | {f.detail} |"
            )
    for outcome in outcomes:
        if outcome.error:
            lines.append(f"| {outcome.name} | — | — | — | **ERROR** | {outcome.error} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks, print the table (or ``--json``); 1 if any figure misses."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short versions (~7 minutes)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead")
    parser.add_argument(
        "--only",
        help="comma-separated subset of: " + ", ".join(b.name for b in BENCHMARKS),
    )
    options = parser.parse_args(argv)
    chosen = list(BENCHMARKS)
    if options.only:
        wanted = {name.strip() for name in options.only.split(",")}
        unknown = wanted - {b.name for b in BENCHMARKS}
        if unknown:
            parser.error(f"unknown benchmark {', '.join(sorted(unknown))}")
        chosen = [b for b in BENCHMARKS if b.name in wanted]
    began = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="tracker-bench-all-") as workdir:
        outcomes = [run(b, options.quick, Path(workdir)) for b in chosen]
    took = (datetime.now(UTC) - began).total_seconds()
    ok = all(not o.error and all(f.passed for f in o.figures) for o in outcomes)
    if options.json:
        document = {
            "when": began.isoformat(timespec="seconds"),
            "quick": options.quick,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "seconds": round(took),
            "passed": ok,
            "benchmarks": [
                {
                    "name": o.name,
                    "seconds": round(o.seconds),
                    "error": o.error,
                    "figures": [{**asdict(f), "passed": f.passed} for f in o.figures],
                }
                for o in outcomes
            ],
        }
        print(json.dumps(document, indent=2))
    else:
        kind = "quick run" if options.quick else "full run"
        print(
            f"\n`make bench` ({kind}), {began:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, {took / 60:.0f} min\n"
        )
        print(table(outcomes))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
