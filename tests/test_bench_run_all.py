"""bench/run_all.py reads each benchmark's own output into one table (no benchmark runs here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import run_all


def test_each_benchmarks_output_becomes_figures_with_their_targets(tmp_path: Path) -> None:
    progress = tmp_path / "progress.json"
    progress.write_text(
        json.dumps(
            {
                "rows": [
                    {
                        "db": "sqlite",
                        "entries": 10000,
                        "ratio": 0.91,
                        "api_rps": 3865.2,
                        "baseline_rps": 4247.0,
                        "paired_q1": 0.89,
                        "paired_q3": 0.93,
                        "cpu_ratio": 0.9,
                    }
                ]
            }
        )
    )
    embed = tmp_path / "embed.json"
    row = {"route": "SVG image", "rps": 90, "baseline_rps": 100, "spread": "0.8-0.9"}
    embed.write_text(
        json.dumps(
            {
                "entries": 1_000_000,
                "gunicorn": [{**row, "ratio": 0.89}],
                "nginx": [{**row, "ratio": 0.81}],
            }
        )
    )
    hooks = "\n".join(
        [
            "bench: warming up",
            json.dumps(
                {
                    "db": "postgresql",
                    "entries": 10000,
                    "ratio": 0.072,
                    "webhook_rps": 252,
                    "livez_rps": 3478,
                    "webhook_rps_rounds": "250 252",
                }
            ),
            json.dumps(
                {
                    "db": "postgresql",
                    "entries": 1000000,
                    "ratio": 0.072,
                    "webhook_rps": 277,
                    "livez_rps": 3838,
                    "webhook_rps_rounds": "270 277",
                }
            ),
            "PASS",
        ]
    )
    floor = "\n".join(
        json.dumps(
            {"db": "sqlite", "entries": 10000, "route": name, "rps": rps, "ratio": rps / 1000}
        )
        for name, rps in (("livez", 1000), ("apply", 300), ("service", 250))
    )
    figures = [
        *run_all.read_progress(progress, ""),
        *run_all.read_embed(embed, ""),
        *run_all.read_webhooks(None, hooks),
        *run_all.read_floor(None, floor),
    ]
    verdicts = {(f.figure, f.target): f.passed for f in figures}
    assert verdicts == {
        ("progress API / livez, sqlite, 10k entries", 0.9): True,
        ("SVG image behind gunicorn / livez, 1M entries", 0.9): False,
        ("SVG image behind nginx / nginx static file, 1M entries", 0.8): True,
        ("webhook events / livez, postgresql, 10k entries", 0.3): False,
        ("webhook events / livez, postgresql, 1M entries", 0.3): False,
        ("webhook events/s at 1M / at 10k entries, postgresql", 0.9): True,
        ("webhook endpoint / raw-driver floor, sqlite, 10k entries", 0.8): True,
    }
    floor_figure = figures[-1]
    assert floor_figure.ratio == 0.833
    text = run_all.table([run_all.Outcome("all", 1.0, figures, None)])
    assert text.count("| PASS |") == 4 and text.count("| **FAIL** |") == 3


def test_the_scheduler_benchmark_reads_as_higher_is_better_figures() -> None:
    line = {
        "db": "postgresql",
        "campaigns": 1000,
        "small": 10000,
        "large": 1000000,
        "rounds": 3,
        "per_campaign_us": {
            "10000": {"summary": 3000.0, "quiet": 50.0, "busy": 900.0},
            "1000000": {"summary": 3300.0, "quiet": 60.0, "busy": 1000.0},
        },
        "summary_growth": 1.1,
        "quiet_growth": 1.25,
        "busy_growth": 1.111,
        "quiet_over_busy": 0.06,
    }
    figures = run_all.read_scheduler(None, "seeding...\n" + json.dumps(line) + "\n")
    verdicts = {f.figure: (f.ratio, f.passed) for f in figures}
    assert verdicts == {
        "summary run per campaign, cost at 10k / at 1M entries, postgresql": (0.909, True),
        "quiet milestone check per campaign, cost at 10k / at 1M entries, postgresql": (
            0.8,
            False,
        ),
        "milestone check, campaign with a new entry / quiet one, 1M entries, postgresql": (
            16.7,
            True,
        ),
    }
    assert "scheduler" in {b.name for b in run_all.BENCHMARKS}


def test_a_benchmark_that_crashes_is_an_error_row_and_a_failure(tmp_path: Path) -> None:
    crash = tmp_path / "crash.py"
    crash.write_text("import sys; print('half a line'); sys.exit(2)\n")
    benchmark = run_all.Benchmark(
        "crash", str(crash), (), (), run_all.read_webhooks, writes_json=False
    )
    outcome = run_all.run(benchmark, quick=False, workdir=tmp_path)
    assert outcome.figures == [] and outcome.error
    assert "status 2" in outcome.error
    assert "**ERROR**" in run_all.table([outcome])


def test_json_is_one_document_with_every_figure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "fake.py"
    line = {"db": "sqlite", "entries": 10000, "route": "apply", "rps": 100, "ratio": 0.3}
    service = {**line, "route": "service", "rps": 90, "ratio": 0.27}
    script.write_text(
        f"print({json.dumps(json.dumps(line))}); print({json.dumps(json.dumps(service))})\n"
    )
    fake = run_all.Benchmark("fake", str(script), (), (), run_all.read_floor, writes_json=False)
    monkeypatch.setattr(run_all, "BENCHMARKS", (fake,))
    assert run_all.main(["--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["passed"] is True and document["quick"] is False
    (figure,) = document["benchmarks"][0]["figures"]
    assert (figure["ratio"], figure["target"], figure["passed"]) == (0.9, 0.8, True)


def test_admin_figures_are_ceilings_flatness_livez_and_csv_memory(tmp_path: Path) -> None:
    page = {
        "db": "sqlite",
        "page": "dashboard",
        "small": 10000,
        "large": 1000000,
        "p50_small_ms": 10.0,
        "p50_large_ms": 11.0,
        "flat": 1.1,
        "livez_small_ms": 1.0,
        "livez_large_ms": 0.5,
        "vs_livez_small": 10.0,
        "vs_livez_large": 22.0,
    }
    slow = {**page, "page": "campaign", "flat": 1.3, "vs_livez_small": 3.0, "vs_livez_large": 4.0}
    export = {
        "db": "sqlite",
        "entries": 1000000,
        "rows_per_s": 20000,
        "megabytes": 80.0,
        "seconds": 50.0,
        "rss_growth_mb": 12.5,
    }
    path = tmp_path / "admin.json"
    path.write_text(json.dumps({"pages": [page, slow], "csv": [export]}))
    figures = run_all.read_admin(path, "")
    verdicts = {f.figure: (f.ratio, f.passed) for f in figures}
    assert verdicts == {
        "admin dashboard p50 at 1M / at 10k entries, sqlite": (1.1, True),
        # The worse of the two sizes counts: 22x at 1M misses the 15x ceiling.
        "admin dashboard p50 / livez p50, sqlite (worse of 10k, 1M)": (22.0, False),
        "admin campaign p50 at 1M / at 10k entries, sqlite": (1.3, False),
        "admin campaign p50 / livez p50, sqlite (worse of 10k, 1M)": (4.0, True),
        "admin CSV export of 1M rows, worker RSS growth, sqlite": (12.5, True),
    }
    text = run_all.table([run_all.Outcome("admin", 1.0, figures, None)])
    assert "| ≤ 1.2× |" in text and "| ≤ 50 MB |" in text and "**12.50 MB**" in text
    assert text.count("| PASS |") == 3 and text.count("| **FAIL** |") == 2
    assert "admin" in {b.name for b in run_all.BENCHMARKS}


def _cluster_line(**changes: object) -> str:
    row: dict[str, object] = {
        "seed": 7,
        "namespaces": True,
        "one_host_events_per_s": 120.0,
        "two_hosts_events_per_s": 114.0,
        "ratio": 0.95,
        "round_ratios": [0.93, 0.95, 1.01],
        "storm_with_faults_events_per_s": 98.5,
        "storm_before_first_fault_events_per_s": 110.0,
        "p50_p99_ms_one_host": [200, 600],
        "p50_p99_ms_two_hosts_no_fault": [210, 640],
        "p50_p99_ms_with_faults": [230, 1400],
        "deferred_before_retry_inbox": 1,
        "seconds": 150.0,
        "problems": [],
    }
    row.update(changes)
    return "\n".join(["storm seed 7: 2,000 deliveries", json.dumps(row)])


def test_the_cluster_benchmark_is_run_quick_and_read_with_its_target() -> None:
    (cluster,) = [b for b in run_all.BENCHMARKS if b.name == "cluster"]
    assert (cluster.script, cluster.quick) == ("cluster.py", ("--quick",))
    throughput, money = run_all.read_cluster(None, _cluster_line())
    assert (throughput.ratio, throughput.target, throughput.passed) == (0.95, 0.9, True)
    assert "0.93 0.95 1.01" in throughput.detail and "namespaces" in throughput.detail
    assert money.passed and "1 deferred" in money.detail

    slow, broken = run_all.read_cluster(
        None, _cluster_line(ratio=0.69, problems=["storm usd-news: stored (1, 1)"])
    )
    assert not slow.passed and not broken.passed
    assert "usd-news" in broken.detail
    text = run_all.table([run_all.Outcome("cluster", 1.0, [slow, broken], None)])
    assert text.count("| **FAIL** |") == 2
