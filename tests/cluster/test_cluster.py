"""Two app hosts, one PostgreSQL, a storm of 10,000 signed webhooks, real faults.

The whole scenario is :func:`tests.cluster.run.run`; this test fails on any
problem it reports (a total that is not the client's own sum, drift,
an inbox event left behind, a widget that lags, a fault that did not fire).
Its output (``pytest -s`` or the failure report) has the seed, the plan, the
faults and when they fired: ``CLUSTER_SEED=<seed>`` replays it.

Network namespaces need root: outside CI the test falls back to loopback and
says so; under ``CI=true`` (root) the namespaces are required.
"""

from __future__ import annotations

import os
import secrets

import pytest

from bench import harness
from tests.cluster import services
from tests.cluster.run import run
from tests.conftest import IN_CI, missing_service

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def _programs_missing() -> list[str]:
    missing = []
    for program in ("nginx", "redis-server"):
        try:
            harness.need(program)
        except harness.BenchError:
            missing.append(program)
    try:
        services.postgres_bindir()
    except services.ServiceError:
        missing.append("postgresql (initdb, pg_ctl)")
    return missing


def test_storm_of_webhooks_on_two_hosts_under_faults_loses_and_doubles_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = _programs_missing()
    if missing:
        missing_service("cluster programs", ", ".join(missing) + " not installed")
    seed = int(os.environ.get("CLUSTER_SEED") or secrets.randbelow(1_000_000))
    events = int(os.environ.get("CLUSTER_EVENTS") or 10_000)
    if IN_CI and events < 10_000:
        pytest.fail("CI runs the full storm of 10,000 events", pytrace=False)
    with capsys.disabled():
        print(f"\n--- cluster test, seed {seed} (CLUSTER_SEED={seed} replays it)")
        outcome = run(seed, events=events, require_namespaces=IN_CI)
    if not outcome.isolated:
        print("NOTE: loopback fallback, not network namespaces (see the output above)")
    assert outcome.problems == [], f"seed {seed}: " + "; ".join(outcome.problems)
