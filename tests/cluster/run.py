"""One run of the cluster: throughput rounds, storm under faults, checks, figures.

Shared by ``tests/cluster/test_cluster.py`` (which asserts that the run found
no problem) and ``bench/cluster.py`` (which prints the figures). The order:

1. the network, PostgreSQL and Redis of the run; the campaigns of every storm;
2. throughput, without faults or schedulers: one host with 4 gunicorn workers
   (A) and two hosts with 2 each (B, the same 4 in total), both up at once
   behind nginx with the same configuration; each gets an unmeasured warm-up
   storm, then ``ANALYZE``; then rounds A B, B A, A B, … each a fresh storm of
   the same draw (same event mix and order, its own ids), each preceded by a
   ``CHECKPOINT``. The ratio is the median of the rounds' B/A ratios: a load
   burst from elsewhere on the machine hits one round pair, not one side;
3. the storm: two hosts of 2 workers each behind nginx (with the schedulers),
   with the faults fired at moments drawn from the seed once a quarter of the
   sends are out;
4. the checks: one ``retry-inbox`` (an event deferred behind its payment
   waits for it; how many were deferred is printed), then the widget through
   nginx shows the final totals within 5 s, nothing left received, failed or
   deferred, every total exactly the client's own sum, ``check-totals`` clean,
   and (with the scheduler) one milestone message per tier crossed.
"""

from __future__ import annotations

import contextlib
import random
import statistics
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.cluster import scheduler as sched
from tests.cluster import services
from tests.cluster.cluster import (
    DONATE_LIMIT,
    Faults,
    Frontend,
    Infrastructure,
    frontend,
    infrastructure,
)
from tests.cluster.storm import Plan, SendReport, expected_by_payment, plan, send

WIDGET_DEADLINE = 5.0


@dataclass(slots=True)
class Outcome:
    """What a run measured and every problem it found (empty: all guarantees held)."""

    seed: int
    problems: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    # Throughput rounds (no fault): events/s of each round, one host (A) and two (B).
    one_host_rounds: list[float] = field(default_factory=list)
    two_hosts_rounds: list[float] = field(default_factory=list)
    storm_rate: float = float("nan")
    storm_clean_rate: float = float("nan")
    latency_one_host: tuple[float, float] = (float("nan"), float("nan"))
    latency_two_hosts: tuple[float, float] = (float("nan"), float("nan"))
    latency_faults: tuple[float, float] = (float("nan"), float("nan"))
    deferred_after_rounds: int = 0
    deferred_after_storm: int = 0
    widget_seconds: float = float("nan")
    seconds: float = 0.0
    isolated: bool = False
    scheduler: bool = False

    @property
    def round_ratios(self) -> list[float]:
        """Each round pair's two-hosts / one-host events/s."""
        return [b / a for a, b in zip(self.one_host_rounds, self.two_hosts_rounds, strict=True)]

    @property
    def ratio(self) -> float:
        """The median of the round pairs' ratios (two hosts over one, same workers in total)."""
        ratios = [r for r in self.round_ratios if r == r]
        return statistics.median(ratios) if ratios else float("nan")

    @property
    def one_host_rate(self) -> float:
        """Median events/s of one host x 4 workers over the rounds."""
        return _median(self.one_host_rounds)

    @property
    def two_hosts_rate(self) -> float:
        """Median events/s of two hosts x 2 workers over the rounds."""
        return _median(self.two_hosts_rounds)

    def figures(self) -> str:
        """The benchmark figures as a few lines."""
        rounds = ", ".join(
            f"{a:.0f}/{b:.0f}={b / a:.2f}"
            for a, b in zip(self.one_host_rounds, self.two_hosts_rounds, strict=True)
        )
        return "\n".join(
            [
                f"THROUGHPUT events/s through nginx, no fault, {len(self.one_host_rounds)} "
                f"interleaved round pairs: one host x 4 workers {self.one_host_rate:.0f}, "
                f"two hosts x 2 workers {self.two_hosts_rate:.0f} (medians) → ratio "
                f"{self.ratio:.2f}x (median of the pairs; target ≥ 0.9x: "
                f"{'met' if self.ratio >= 0.9 else 'MISSED'})",
                f"  rounds one/two=ratio: {rounds}",
                f"  storm: {self.storm_clean_rate:.0f} events/s before the first fault, "
                f"{self.storm_rate:.0f} over the whole storm with faults",
                "LATENCY p50/p99 ms: one host {:.0f}/{:.0f}; ".format(*self.latency_one_host)
                + "two hosts {:.0f}/{:.0f}; ".format(*self.latency_two_hosts)
                + "storm from the first fault on {:.0f}/{:.0f}".format(*self.latency_faults),
                f"DEFERRED: {self.deferred_after_rounds} after the fault-free throughput "
                f"rounds, {self.deferred_after_storm} after the storm, before the final "
                "retry-inbox (the schedulers' own retry job may apply some in between)",
            ]
        )


def _median(values: list[float]) -> float:
    kept = [v for v in values if v == v]
    return statistics.median(kept) if kept else float("nan")


def _rate(report: SendReport, until: float = float("inf"), warmup: float = 0.1) -> float:
    """2xx answers per second, after the first ``warmup`` share of them and before ``until``.

    The first answers of a round cost more (new connections, a ramp to full
    concurrency): both sides of the comparison skip the same share of them.
    """
    done = sorted(a.started + a.seconds for a in report.attempts if 200 <= a.status < 300)
    done = [t for t in done if t <= until]
    skip = int(len(done) * warmup)
    if len(done) - skip < 2:
        return float("nan")
    return (len(done) - skip - 1) / (done[-1] - done[skip])


def _pooled(reports: list[SendReport]) -> SendReport:
    """One report with every attempt of ``reports`` (for latency over several rounds)."""
    pooled = SendReport()
    for report in reports:
        pooled.attempts += report.attempts
    return pooled


def _widget(front: Frontend, storm: Plan, since: float) -> tuple[float, list[str]]:
    """Poll the progress JSON through nginx until every campaign shows its final total."""
    waiting = {c.slug: c for c in storm.campaigns}
    last: dict[str, object] = {}
    while waiting and time.monotonic() - since < WIDGET_DEADLINE + 5:
        for slug, c in list(waiting.items()):
            try:
                doc = front.get_json(f"/api/v1/campaigns/{slug}")
            except OSError as exc:
                last[slug] = f"{type(exc).__name__}: {exc}"
                continue
            last[slug] = (doc.get("raised"), doc.get("payments"))
            if doc.get("raised") == c.raised and doc.get("payments") == c.payments:
                del waiting[slug]
        if waiting:
            time.sleep(0.1)
    seconds = time.monotonic() - since
    problems = [
        f"widget {slug}: shows {last.get(slug)}, expected ({c.raised}, {c.payments})"
        for slug, c in waiting.items()
    ]
    if not waiting and seconds > WIDGET_DEADLINE:
        problems.append(f"widget showed the final totals after {seconds:.1f} s (> 5 s)")
    return seconds, problems


def run(
    seed: int,
    *,
    events: int = 10_000,
    rounds: int = 5,
    round_events: int = 400,
    connections: int = 32,
    require_namespaces: bool = False,
    out: Callable[[str], None] = print,
) -> Outcome:
    """Run the whole cluster scenario once; see the module's docstring."""
    began = time.monotonic()
    outcome = Outcome(seed)

    def say(line: str) -> None:
        outcome.lines.append(line)
        out(line)

    storm = plan(seed, events)
    # The same draw for both sides of a round (same mix and order), its own ids.
    warm = [plan(seed + 1, max(200, round_events // 2), prefix=f"warm{side}") for side in "ab"]
    measured = [
        (
            plan(seed + 2 + i, round_events, prefix=f"r{i}a"),
            plan(seed + 2 + i, round_events, prefix=f"r{i}b"),
        )
        for i in range(rounds)
    ]
    say(storm.describe())
    with infrastructure(require_namespaces=require_namespaces) as infra:
        outcome.isolated = infra.net.isolated
        say(infra.net.describe())
        say(
            f"PostgreSQL {infra.pg.bindir.parent.name} at {infra.pg.address}:{infra.pg.port}, "
            f"Redis {infra.redis_url}"
        )
        throughput = [*warm, *(p for pair in measured for p in pair)]
        for each in (*throughput, storm):
            infra.create_campaigns(each)
        outcome.scheduler = sched.available(infra)
        say(
            "scheduler: `tracker scheduler` found: one per host, leader killed, milestones checked"
            if outcome.scheduler
            else "scheduler: no `tracker scheduler` command on this checkout: its steps are off"
        )
        try:
            _throughput(infra, warm, measured, connections, seed, outcome, say)
            _storm(infra, storm, connections, seed, outcome, say)
            for each in throughput:
                _check_totals(infra, each, outcome, say, each.campaigns[0].slug.split("-")[0])
        except Exception:
            say(infra.log_tails())
            raise
        if outcome.problems:
            say(infra.log_tails())
    outcome.seconds = time.monotonic() - began
    say(outcome.figures())
    say(f"cluster run: {outcome.seconds:.1f} s in all, {len(outcome.problems)} problem(s)")
    for problem in outcome.problems:
        say(f"  PROBLEM: {problem}")
    return outcome


def _throughput(
    infra: Infrastructure,
    warm: list[Plan],
    measured: list[tuple[Plan, Plan]],
    connections: int,
    seed: int,
    outcome: Outcome,
    say: Callable[[str], None],
) -> None:
    """Interleaved rounds, without faults: one host x 4 workers (A), two hosts x 2 (B)."""
    with (
        frontend(infra, infra.net.hosts[:1], workers=4) as one,
        frontend(infra, infra.net.hosts, workers=2) as two,
    ):
        sides = {"one host": one, "two hosts": two}
        # Fresh workers, a fresh database without planner statistics: each side's
        # first storm is not measured, then ANALYZE, as autovacuum would on a live one.
        for (name, front), each in zip(sides.items(), warm, strict=True):
            report = send(
                each.deliveries, "127.0.0.1", front.port, connections=connections, seed=seed
            )
            if report.given_up:
                outcome.problems.append(f"warm-up {name}: {report.given_up} never got a 2xx")
        infra.analyze()
        reports: dict[str, list[SendReport]] = {name: [] for name in sides}
        for i, (plan_a, plan_b) in enumerate(measured):
            order = [("one host", plan_a), ("two hosts", plan_b)]
            if i % 2:
                order.reverse()  # A B, B A, A B, …: a drift in load cancels out
            for name, each in order:
                infra.checkpoint()
                report = send(
                    each.deliveries,
                    "127.0.0.1",
                    sides[name].port,
                    connections=connections,
                    seed=seed,
                )
                reports[name].append(report)
                if report.given_up:
                    outcome.problems.append(
                        f"round {i + 1} {name}: {report.given_up} deliveries never got a 2xx"
                    )
                say(
                    f"round {i + 1} {name}: {_rate(report):.0f} events/s, "
                    f"{report.acknowledged:,} deliveries in {report.seconds:.1f} s, "
                    f"{report.redeliveries} redeliveries, "
                    f"statuses {dict(sorted(report.statuses.items()))}"
                )
    outcome.one_host_rounds = [_rate(r) for r in reports["one host"]]
    outcome.two_hosts_rounds = [_rate(r) for r in reports["two hosts"]]
    outcome.latency_one_host = _pooled(reports["one host"]).latency_ms()
    outcome.latency_two_hosts = _pooled(reports["two hosts"]).latency_ms()
    left = infra.deferred()
    outcome.deferred_after_rounds = len(left)
    say(f"deferred after the throughput rounds: {len(left)} {_kinds(left)}")


def _kinds(events: list[tuple[str, str]]) -> str:
    """``(charge.refunded 2, …)``: how many of each type, for the report."""
    if not events:
        return ""
    counts = Counter(type_ for _, type_ in events)
    return "(" + ", ".join(f"{t} {n}" for t, n in sorted(counts.items())) + ")"


def _storm(
    infra: Infrastructure,
    storm: Plan,
    connections: int,
    seed: int,
    outcome: Outcome,
    say: Callable[[str], None],
) -> None:
    with contextlib.ExitStack() as stack:
        running: list[sched.Scheduler] = []
        sink: sched.SmtpSink | None = None
        if outcome.scheduler:
            sched.notify_owners(infra, storm)
            sink = stack.enter_context(sched.smtp_sink(infra.net.hub))
            running = stack.enter_context(sched.schedulers(infra, sink))
        front = stack.enter_context(frontend(infra, infra.net.hosts, workers=2))
        count = len(storm.deliveries)
        faults = Faults(infra, front, random.Random(seed), window=(count // 4, count * 85 // 100))
        faults.standard()
        if outcome.scheduler:
            faults.add(
                "SIGKILL the scheduler leader",
                lambda record: sched.kill_leader(infra, running, record),
            )
        faults.start(time.monotonic())
        report = send(
            storm.deliveries,
            "127.0.0.1",
            front.port,
            connections=connections,
            seed=seed,
            on_progress=faults.on_progress,
        )
        faults.join()
        # An event that overtook its payment may still wait in the inbox (deferred)
        # until the next retry-inbox: that is the documented delay
        # (docs/reliability.md). So the one retry-inbox runs first, and the widget
        # must then show the final totals within 5 s of it.
        say(f"inbox after the storm: {infra.inbox()}")
        left = infra.deferred()
        outcome.deferred_after_storm = len(left)
        say(
            f"deferred before the final retry-inbox: {len(left)} {_kinds(left)}"
            + "".join(f"\n  {event_id} {type_}" for event_id, type_ in left[:10])
        )
        say("retry-inbox: " + infra.cli("retry-inbox").replace("\n", " | "))
        settled = time.monotonic()
        widget_seconds, problems = _widget(front, storm, settled)
        outcome.widget_seconds = widget_seconds
        outcome.problems += problems
        first_fault = faults.first_fault_time()
        outcome.storm_clean_rate = _rate(report, until=first_fault)
        outcome.storm_rate = report.rate()
        outcome.latency_faults = report.latency_ms(since=first_fault)
        say(
            f"storm (hosts a+b, 2 workers each, {connections} connections): "
            f"{report.acknowledged:,} deliveries acknowledged in {report.seconds:.1f} s, "
            f"{report.redeliveries:,} redeliveries, "
            f"statuses {dict(sorted(report.statuses.items()))}"
        )
        say("faults (t = seconds since the storm began):")
        for record in faults.records:
            say("  " + record.describe())
        say(f"widget through nginx: final totals {widget_seconds:.2f} s after retry-inbox")
        outcome.problems += [f"fault failed: {e}" for e in faults.errors]
        outcome.problems += [f"fault never fired: {name}" for name in faults.unfired()]
        if report.given_up:
            outcome.problems.append(f"{report.given_up} deliveries never got a 2xx")
        inbox = infra.inbox()
        say(f"inbox after one retry-inbox: {inbox}")
        for status in ("received", "failed", "deferred"):
            if inbox.get(status):
                outcome.problems.append(f"{inbox[status]} inbox events left {status}")
        _check_totals(infra, storm, outcome, say, "storm")
        try:
            say("check-totals: " + infra.cli("check-totals").replace("\n", " | "))
        except services.ServiceError as exc:
            outcome.problems.append(f"check-totals: {exc}")
        outcome.problems += _rate_limit_is_shared(front, storm.campaigns[0].slug, say)
        if sink is not None:
            problems = sched.milestone_problems(infra, storm, sink)
            outcome.problems += problems
            say(
                f"milestones: {len(sink.messages)} messages at the SMTP server, "
                f"{len(problems)} problem(s)"
            )


def _rate_limit_is_shared(front: Frontend, slug: str, say: Callable[[str], None]) -> list[str]:
    """One client's donate submissions, alternating between the hosts, share one limit.

    The hosts trust one proxy (``TRACKER_TRUSTED_PROXIES=1``), so the client is the
    ``X-Forwarded-For`` address nginx would send. With per-process counters no
    worker would see more than a few of the submissions; with Redis the one after
    the limit is refused wherever it lands.
    """
    client = f"198.51.100.{random.randrange(1, 250)}"
    statuses = []
    for n in range(DONATE_LIMIT + 1):
        app = front.apps[n % len(front.apps)]
        request = urllib.request.Request(
            f"http://{app.address}/donate/{slug}",
            data=b"amount=nope",
            headers={"X-Forwarded-For": client},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                statuses.append(response.status)
        except urllib.error.HTTPError as exc:
            statuses.append(exc.code)
    say(f"donate rate limit ({DONATE_LIMIT}/minute) across hosts: statuses {statuses}")
    if statuses[:-1] != [400] * DONATE_LIMIT or statuses[-1] != 429:
        return [f"rate limit not shared across hosts: {statuses}"]
    return []


def _check_totals(
    infra: Infrastructure, storm: Plan, outcome: Outcome, say: Callable[[str], None], name: str
) -> None:
    totals = infra.totals(storm)
    for c in storm.campaigns:
        got = totals.get(c.slug, (0, 0))
        if got != (c.raised, c.payments):
            outcome.problems.append(
                f"{name} {c.slug}: stored (raised, payments) {got}, "
                f"client computed ({c.raised}, {c.payments})"
            )
    matched = all(totals.get(c.slug) == (c.raised, c.payments) for c in storm.campaigns)
    say(f"{name} totals equal the client's sums: {matched}")
    if not matched:
        expected = expected_by_payment(storm.deliveries)
        booked = infra.ledger_by_payment([c.slug for c in storm.campaigns])
        for number in sorted(set(expected) | set(booked), key=int):
            if expected.get(number, 0) != sum(a for _, a in booked.get(number, [])):
                say(
                    f"  payment #{number}: client expects {expected.get(number, 0)}, "
                    f"ledger has {booked.get(number, [])}"
                )
