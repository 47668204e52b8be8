"""The leader loses its network: a real PostgreSQL of the test's own, two ``tracker
scheduler`` processes, the leader alone in a network namespace whose link is taken
down (no packets, no RST). The other process must lead within 15 s, the cut-off one
must notice it lost the lock and stop, and when the link comes back there is still
one leader and no message went twice.

Needs root (``ip netns``); outside CI it skips with the reason, under ``CI=true`` it
fails instead. The namespace, the link and the server come from the cluster test
(:mod:`tests.cluster.network`, :mod:`tests.cluster.services`), the SMTP server is
the cluster's aiosmtpd sink listening on the bridge.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from bench import harness
from tests import factories
from tests.cluster import services
from tests.cluster.network import Host, namespaces_unavailable, network
from tests.cluster.scheduler import SmtpSink, smtp_sink
from tests.polling import wait_until
from tracker import migrate
from tracker.db import Database
from tracker.models import OutboxMessage, OutboxStatus
from tracker.notify.chat import ChatPolicy
from tracker.notify.context import Context
from tracker.notify.summaries import send_summary_now
from tracker.ops.metrics import multiprocess_registry
from tracker.scheduler.leader import postgres_holder, server_keepalives
from tracker.services.campaigns import get_campaign
from tracker.services.notifications import NotificationChanges, set_notifications

pytestmark = pytest.mark.slow

# The production defaults of the two settings the takeover depends on, so the
# time measured here is the one docs/scheduler.md promises.
KEEPALIVE = 4
POLL = 2
TAKEOVER_LIMIT = 15.0
ENV = {
    "TRACKER_SCHEDULER_LEADER_POLL_SECONDS": str(POLL),
    "TRACKER_SCHEDULER_LEADER_KEEPALIVE_SECONDS": str(KEEPALIVE),
    "TRACKER_SCHEDULER_DELIVER_SECONDS": "0.2",
    "TRACKER_SCHEDULER_MILESTONE_SECONDS": "0.5",
    "TRACKER_SCHEDULER_REFRESH_SECONDS": "1",
    # The SMTP and chat timeouts stay at their defaults (10 s, 5 s), and the lease at
    # the least they allow: a send that times out waiting for the server's "250" is
    # retried, so a sink slowed by a loaded machine would get a message twice (seen
    # with 0.3 s in test_scheduler_processes.py, CI, 2 December 2026).
    "TRACKER_OUTBOX_LEASE_SECONDS": "30",
    "TRACKER_OUTBOX_BACKOFF_SECONDS": "0.2",
    "TRACKER_MAIL_FROM": "tracker@example.org",
}


class Scheduler:
    """``flask tracker scheduler`` on one host (a namespace, or the root one)."""

    def __init__(self, host: Host | None, env: dict[str, str], log: Path) -> None:
        self.log = log
        argv = [sys.executable, "-m", "flask", "--app", "wsgi", "tracker", "scheduler"]
        with log.open("wb") as handle:
            self.process = subprocess.Popen(
                host.command(argv) if host else argv,
                cwd=harness.ROOT,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        # ``ip netns exec`` execs the command: the process keeps Popen's pid.
        return self.process.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def _namespace_or_skip() -> Iterator[object]:
    required = os.environ.get("CI") == "true"
    reason = namespaces_unavailable()
    if reason and not required:
        pytest.skip(f"the lost-network test needs a network namespace: {reason}")
    with network(1, require=required) as net:
        yield net


def _enqueue(database: Database, minutes: range) -> None:
    """Summaries written as ``send-summary`` writes them: pending outbox rows."""
    with database.session() as session:
        campaign = get_campaign(session, "fund")
        for minute in minutes:
            at = datetime(2026, 11, 20, 8, 0, tzinfo=UTC) + timedelta(minutes=minute)
            send_summary_now(session, campaign, at, Context(mail_from="tracker@example.org"))
        session.commit()


def _statuses(database: Database) -> list[OutboxStatus]:
    with database.session(write=False) as session:
        return list(session.scalars(select(OutboxMessage.status)))


def _leader_gauges(directory: Path) -> dict[str, float]:
    """``tracker_scheduler_leader`` by pid, as ``/metrics`` reads the shared directory."""
    registry = multiprocess_registry(str(directory))
    found = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        if family.name == "tracker_scheduler_leader":
            for sample in family.samples:
                found[sample.labels["pid"]] = sample.value
    return found


def _received(sink: SmtpSink) -> Counter[str]:
    with sink.lock:
        return Counter(m["message_id"] for m in sink.messages)


def test_a_leader_cut_off_the_network_is_replaced_and_steps_down(tmp_path: Path) -> None:
    with (
        _namespace_or_skip() as net,
        services.postgres(net.hub, net.subnet) as pg,  # type: ignore[attr-defined]
        smtp_sink(net.hub) as sink,  # type: ignore[attr-defined]
    ):
        cut_off: Host = net.hosts[0]  # type: ignore[attr-defined]
        # Server side for every session, as docs/operations.md asks of production (the
        # lock's session also sets these itself).
        with psycopg.connect(pg.conninfo, autocommit=True) as admin:
            for name, value in server_keepalives(KEEPALIVE).items():
                admin.execute(f"ALTER SYSTEM SET {name} = {value}")
            admin.execute("SELECT pg_reload_conf()")
        database = Database(pg.url)
        try:
            migrate.upgrade(database.engine)
            with database.session() as session:
                factories.campaign(session, "fund")
                set_notifications(
                    session, "fund", NotificationChanges(emails="owner@example.org"), ChatPolicy()
                )
                session.commit()
            metrics_dir = tmp_path / "prometheus"
            metrics_dir.mkdir()
            env = harness.app_environment(
                pg.url,
                SMTP_URL=sink.url,
                **{k.removeprefix("TRACKER_"): v for k, v in ENV.items()},
            )
            env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
            old = Scheduler(cut_off, env, tmp_path / "scheduler-cut-off.log")
            new = None
            try:
                wait_until(lambda: "is now the leader" in old.text(), 30, "the first leader")
                new = Scheduler(None, env, tmp_path / "scheduler-root.log")
                wait_until(lambda: "waits: another process leads" in new.text(), 30, "a follower")
                _enqueue(database, range(3))
                wait_until(lambda: len(_received(sink)) == 3, 30, "three messages from the leader")
                wait_until(lambda: set(_statuses(database)) == {OutboxStatus.SENT}, 30, "sent")
                assert _leader_gauges(metrics_dir) == {str(old.pid): 1.0, str(new.pid): 0.0}

                net.set_link(cut_off, up=False)  # type: ignore[attr-defined]
                took = wait_until(
                    lambda: f"pid {new.pid}" in (postgres_holder(pg.url) or ""),
                    TAKEOVER_LIMIT,
                    "the other scheduler to hold the lock",
                )
                print(f"takeover after the link went down: {took:.1f} s")  # for the docs
                wait_until(lambda: "is now the leader" in new.text(), 5, "the new leader's log")
                # The cut-off one must notice on its own, while still cut off.
                wait_until(
                    lambda: "is no longer the leader" in old.text(),
                    TAKEOVER_LIMIT,
                    "the cut-off leader to step down",
                )
                assert _leader_gauges(metrics_dir) == {str(old.pid): 0.0, str(new.pid): 1.0}

                _enqueue(database, range(3, 6))  # while the old leader is still cut off
                wait_until(lambda: len(_received(sink)) == 6, 30, "the new leader's messages")

                net.set_link(cut_off, up=True)  # type: ignore[attr-defined]
                wait_until(
                    lambda: "database reachable again" in old.text(),
                    30,
                    "the old leader back on the network",
                )
                _enqueue(database, range(6, 8))
                wait_until(lambda: len(_received(sink)) == 8, 30, "messages after the link is back")
                time.sleep(3 * POLL)  # a second leader, or a doubled message, shows by now
                holder = postgres_holder(pg.url) or ""
                assert f"pid {new.pid}" in holder, holder
                assert _leader_gauges(metrics_dir) == {str(old.pid): 0.0, str(new.pid): 1.0}
                after_step_down = old.text().split("is no longer the leader", 1)[1]
                assert "is now the leader" not in after_step_down
                assert "job deliver started" not in after_step_down
                assert old.process.poll() is None and new.process.poll() is None
            finally:
                for proc in (old, new):
                    if proc is not None:
                        proc.close()
            statuses = _statuses(database)
            assert statuses == [OutboxStatus.SENT] * 8
            with database.session(write=False) as session:
                ids = set(session.scalars(select(OutboxMessage.message_id)))
        finally:
            database.dispose()
    received = _received(sink)
    assert set(received.values()) == {1}, f"a message arrived twice: {received}"
    assert {mid.strip("<>") for mid in received} == {mid.strip("<>") for mid in ids}
