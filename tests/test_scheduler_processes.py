"""Real scheduler processes: two at once, the leader killed with SIGKILL, a kill in the
middle of a delivery, payments from several gunicorn workers. Every summary and alert
arrives once (or, for a kill between the server's "250" and our commit, again with the
same Message-ID, as docs/scheduler.md says)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests import factories
from tests.notify_servers import SmtpSink, smtp_sink
from tests.polling import wait_until
from tests.servers import ROOT, gunicorn
from tests.stripe_helpers import event, metadata, payment_intent, pending_pledge
from tests.webhooks.test_webhook_concurrency import _env as webhook_env
from tests.webhooks.test_webhook_concurrency import _send_all
from tracker.db import Database
from tracker.models import CampaignNotification, OutboxMessage, OutboxStatus
from tracker.notify.chat import ChatPolicy
from tracker.notify.context import Context
from tracker.notify.summaries import send_summary_now
from tracker.services.campaigns import get_campaign
from tracker.services.notifications import NotificationChanges, set_notifications

pytestmark = pytest.mark.slow

FAST = {
    "TRACKER_SCHEDULER_DELIVER_SECONDS": "0.2",
    "TRACKER_SCHEDULER_MILESTONE_SECONDS": "0.2",
    "TRACKER_SCHEDULER_REFRESH_SECONDS": "0.3",
    "TRACKER_SCHEDULER_LEADER_POLL_SECONDS": "0.3",
    "TRACKER_SCHEDULER_LEADER_KEEPALIVE_SECONDS": "1",
    # A lease only ever expires for a sender that died, and no test here kills one
    # mid-send except the one that sets its own. It must outlast a send plus the
    # wait for SQLite's write lock behind four gunicorn workers (busy timeout 30 s):
    # shorter ones let another run take a slow sender's row on a loaded machine and
    # send it a second time (seen with 1 s and 10 s: the same alert twice).
    "TRACKER_OUTBOX_LEASE_SECONDS": "60",
    # The SMTP and chat timeouts stay at their defaults (10 s, 5 s). A send that times
    # out waiting for the server's "250" is retried, and the server may have had the
    # message: the same alert twice, with one Message-ID (docs/scheduler.md). With
    # 0.3 s, a sink slowed by a loaded machine did that (CI, 2 December 2026).
    "TRACKER_OUTBOX_BACKOFF_SECONDS": "0.2",
}


class Scheduler:
    """One ``flask tracker scheduler`` process and its log file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        full = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
        full.update(env)
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "tracker", "scheduler"],
            cwd=ROOT,
            env=full,
            stdout=subprocess.DEVNULL,
            stderr=self._log_file,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def leads(self) -> bool:
        return "is now the leader" in self.text()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log_file.close()


@contextmanager
def schedulers(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[], Scheduler]]:
    """A factory of scheduler processes; any left running are killed at the end."""
    started: list[Scheduler] = []

    def start() -> Scheduler:
        proc = Scheduler({**FAST, **env}, tmp_path / f"scheduler-{len(started)}.log")
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.close()


def _env(db_url: str, smtp: SmtpSink) -> dict[str, str]:
    return {
        **webhook_env(db_url),
        "TRACKER_SMTP_URL": smtp.url,
        "TRACKER_MAIL_FROM": "t@example.org",
    }


def _all_sent(db_url: str) -> bool:
    database = Database(db_url)
    try:
        with database.session(write=False) as s:
            statuses = set(s.scalars(select(OutboxMessage.status)))
    finally:
        database.dispose()
    return statuses == {OutboxStatus.SENT}


def _received(smtp: SmtpSink) -> Counter[tuple[str, str]]:
    return Counter((str(m["To"]), str(m["Subject"])) for m in smtp.messages)


def _payments(session: Session, amounts: list[int]) -> list[str]:
    payloads = []
    for amount in amounts:
        pledge = pending_pledge(session, amount=amount)
        payloads.append(
            event(
                "payment_intent.succeeded",
                payment_intent(meta=metadata("fund", pledge.id), amount=amount),
            )
        )
    return payloads


def test_two_schedulers_a_killed_leader_and_a_burst_from_gunicorn(
    db_url: str, session: Session, tmp_path: Path
) -> None:
    factories.campaign(session, "fund", tiers=[0, 100_000, 200_000, 300_000])
    now = datetime.now(UTC)
    # The latest fire time is two hours ago whatever the time of day: one catch-up
    # summary is due at start, and the next is 22 hours away.
    hour = (now - timedelta(hours=2)).hour
    set_notifications(
        session,
        "fund",
        NotificationChanges("owner@example.org,cfo@example.org", None, "daily", hour),
        ChatPolicy(),
    )
    session.commit()
    row = session.get(CampaignNotification, get_campaign(session, "fund").id)
    assert row is not None
    row.summary_fired_on = None  # as if it had been set up yesterday
    session.commit()

    with smtp_sink() as smtp, schedulers(_env(db_url, smtp), tmp_path) as start:
        first, second = start(), start()
        # Generous: two interpreters starting on a loaded machine take a while.
        wait_until(lambda: first.leads or second.leads, 60, "a leader")
        wait_until(lambda: len(smtp.messages) >= 2, 60, "the catch-up summary")

        # A burst through four gunicorn workers crossing two tiers at once.
        payloads = _payments(session, [60_000] * 4)  # 2,400 $: crosses 1,000 $ and 2,000 $
        with gunicorn(webhook_env(db_url), workers=4) as base:
            assert _send_all(base, payloads) == [200] * 4
        wait_until(lambda: len(smtp.messages) >= 6, 60, "two alerts to two owners")
        # Killed between deliveries here (a kill during one is the next test's case).
        wait_until(lambda: _all_sent(db_url), 60, "the alerts marked sent")

        leader, follower = (first, second) if first.leads else (second, first)
        assert not follower.leads
        leader.process.send_signal(signal.SIGKILL)
        leader.process.wait()
        killed = time.monotonic()
        took = wait_until(lambda: follower.leads, 15, "the follower to take over")
        assert took < 15

        session.expire_all()
        payloads = _payments(session, [70_000])  # 3,100 $: the goal
        with gunicorn(webhook_env(db_url), workers=2) as base:
            assert _send_all(base, payloads) == [200]
        wait_until(lambda: len(smtp.messages) >= 8, 60, "the goal alert from the new leader")
        time.sleep(1)  # anything doubled would have arrived by now
        assert time.monotonic() - killed < 60
        assert follower.stop() == 0
        assert "SIGTERM received, stopping" in follower.text()

    received = _received(smtp)
    assert set(received.values()) == {1}, received
    # The check may see the burst half-way, so the amounts in alert subjects vary.
    subjects = sorted(subject.split(" (")[0].split(" —")[0] for _, subject in received)
    assert subjects == [
        "Fund us: $0 of $3,000",
        "Fund us: $0 of $3,000",
        "Fund us: $1,000 reached",
        "Fund us: $1,000 reached",
        "Fund us: $2,000 reached",
        "Fund us: $2,000 reached",
        "Fund us: goal reached",
        "Fund us: goal reached",
    ]
    assert len({m["Message-ID"] for m in smtp.messages}) == 8


def test_killed_in_the_middle_of_a_delivery(
    db_url: str, session: Session, database: Database, tmp_path: Path
) -> None:
    campaign = factories.campaign(session, "fund")
    set_notifications(session, "fund", NotificationChanges(emails="a@example.org"), ChatPolicy())
    for minute in range(3):
        send_summary_now(
            session, campaign, datetime(2026, 11, 20, 8, minute, tzinfo=UTC), Context()
        )
    session.commit()

    # The server holds its "250" for 2 s: long enough to kill the sender in between,
    # inside the 2.5 s timeout, and the 8 s lease makes the restarted one wait for it.
    # The lease must outlast three times both timeouts (the configuration check).
    slow = {
        "TRACKER_SMTP_TIMEOUT": "2.5",
        "TRACKER_CHAT_TIMEOUT": "2.5",
        "TRACKER_OUTBOX_LEASE_SECONDS": "8",
    }
    with smtp_sink() as smtp, schedulers({**_env(db_url, smtp), **slow}, tmp_path) as start:
        smtp.delay = 2  # the server has the message; our "sent" is not committed yet
        first = start()
        wait_until(lambda: len(smtp.messages) >= 1, 60, "the first message to arrive")
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        smtp.delay = 0
        second = start()

        def all_sent() -> bool:
            with database.session(write=False) as s:
                statuses = s.scalars(select(OutboxMessage.status)).all()
            return statuses == [OutboxStatus.SENT] * 3

        wait_until(all_sent, 60, "every message sent after the restart")
        assert second.stop() == 0

    with database.session(write=False) as s:
        ids = set(s.scalars(select(OutboxMessage.message_id)))
    by_id = Counter(str(m["Message-ID"]) for m in smtp.messages)
    assert set(by_id) == ids, "every message arrived"
    # The one being sent when the process died may arrive twice, with one Message-ID.
    assert sum(by_id.values()) - len(by_id) <= 1


def _scrape(base: str, token: str) -> list[tuple[str, dict[str, str], float]]:
    request = urllib.request.Request(
        f"{base}/metrics", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read().decode()
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def test_metrics_show_the_leader_and_each_jobs_last_success_and_job_lines_carry_an_id(
    db_url: str, session: Session, tmp_path: Path
) -> None:
    factories.campaign(session, "fund")
    session.commit()
    token = "scrape-" + "t" * 40
    directory = tmp_path / "prometheus"
    directory.mkdir()
    # gunicorn and the scheduler share the host's multiprocess directory, as the
    # systemd units do (docs/operations.md).
    env = {
        **webhook_env(db_url),
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "TRACKER_METRICS_TOKEN": token,
    }
    started = time.time()
    with schedulers(env, tmp_path) as start, gunicorn(env, workers=2) as base:
        scheduler = start()
        pattern = re.compile(r"\[([0-9a-f]{32})\] job deliver (started|ok in [0-9.]+ms: .+)$")

        def ids_of_deliver_runs() -> dict[str, list[str]]:
            runs: dict[str, list[str]] = {}
            for line in scheduler.text().splitlines():
                found = pattern.search(line)
                if found:
                    runs.setdefault(found[1], []).append(found[2].split()[0])
            return runs

        wait_until(
            lambda: any(steps == ["started", "ok"] for steps in ids_of_deliver_runs().values()),
            30,
            "a deliver run logged from start to end",
        )
        runs = ids_of_deliver_runs()
        assert len(runs) >= 1 and all(
            steps in (["started", "ok"], ["started"]) for steps in runs.values()
        )

        # The job's gauges are written just after its "ok" line (the scheduler logs
        # the run's end, then counts it): on a loaded machine a scrape can fall in
        # between, so wait for them to show (steady run 10, 1 December 2026).
        def deliver_counted() -> bool:
            return any(
                name == "tracker_scheduler_job_last_success_timestamp_seconds"
                and labels["job"] == "deliver"
                for name, labels, _value in _scrape(base, token)
            )

        wait_until(deliver_counted, 30, "the deliver run's last success in /metrics")
        samples = _scrape(base, token)
        leaders = [
            (labels, value) for name, labels, value in samples if name == "tracker_scheduler_leader"
        ]
        assert leaders == [({"host": socket.gethostname(), "pid": str(scheduler.process.pid)}, 1.0)]
        last = {
            labels["job"]: value
            for name, labels, value in samples
            if name == "tracker_scheduler_job_last_success_timestamp_seconds"
        }
        assert last["deliver"] >= started
        ok_runs = {
            labels["job"]: value
            for name, labels, value in samples
            if name == "tracker_scheduler_job_runs_total" and labels["outcome"] == "ok"
        }
        assert ok_runs["deliver"] >= 1

        assert scheduler.stop() == 0
        after = _scrape(base, token)
        # A process that stopped leads nothing; when its job last worked still counts.
        assert not [s for s in after if s[0] == "tracker_scheduler_leader"]
        last_after = {
            labels["job"]: value
            for name, labels, value in after
            if name == "tracker_scheduler_job_last_success_timestamp_seconds"
        }
        assert last_after["deliver"] >= last["deliver"]
