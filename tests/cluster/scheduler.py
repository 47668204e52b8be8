"""The scheduler step of the cluster test: one ``tracker scheduler`` per host.

Switched on only when the command exists (``flask --app wsgi tracker --help``
lists ``scheduler``); under ``CI=true`` it is then required like the rest.
With it the test also proves the outbox: the schedulers elect one leader
(a PostgreSQL advisory lock), the leader is SIGKILLed during the storm, the
other takes over, and the test's SMTP server receives exactly one milestone
message per (campaign, tier crossed).

This module only drives the real scheduler; it has no stand-in for it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench import harness
from tests.cluster import services
from tests.cluster.cluster import FaultRecord, Infrastructure
from tests.cluster.network import Host
from tests.cluster.storm import Plan

RECIPIENT = "owners@example.org"


def available(infra: Infrastructure) -> bool:
    """Whether this checkout has the ``tracker scheduler`` command."""
    output = services.flask_command(infra.net.hosts[0], infra.env, "--help")
    return any(line.split()[:1] == ["scheduler"] for line in output.splitlines())


@dataclass(slots=True)
class SmtpSink:
    """A real SMTP server (aiosmtpd) on the test network that keeps every message."""

    host: str
    port: int
    messages: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        """``TRACKER_SMTP_URL`` pointing at it."""
        return f"smtp://{self.host}:{self.port}"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Keep the message (aiosmtpd calls this per message)."""
        message = message_from_bytes(envelope.content)
        with self.lock:
            self.messages.append(
                {
                    "message_id": str(message.get("Message-ID", "")).strip(),
                    "subject": str(message.get("Subject", "")),
                    "to": ",".join(envelope.rcpt_tos),
                }
            )
        return "250 OK"


@contextlib.contextmanager
def smtp_sink(address: str) -> Iterator[SmtpSink]:
    """aiosmtpd listening on ``address`` (the hub) until the block ends."""
    from aiosmtpd.controller import Controller

    sink = SmtpSink(address, harness.free_port())
    controller = Controller(sink, hostname=address, port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


def notify_owners(infra: Infrastructure, plan: Plan) -> None:
    """Give each campaign of ``plan`` an owner address to receive its milestones."""
    from tracker import models

    with infra.database.session() as session:
        for c in plan.campaigns:
            campaign_id = session.execute(
                text("SELECT id FROM campaigns WHERE slug = :slug"), {"slug": c.slug}
            ).scalar_one()
            session.merge(models.CampaignNotification(campaign_id=campaign_id, emails=RECIPIENT))
        session.commit()


@dataclass(slots=True)
class Scheduler:
    """One ``tracker scheduler`` process on one host."""

    host: Host
    process: subprocess.Popen[bytes]
    log: Path


@contextlib.contextmanager
def schedulers(infra: Infrastructure, sink: SmtpSink) -> Iterator[list[Scheduler]]:
    """``flask --app wsgi tracker scheduler`` on every host, sending mail to ``sink``."""
    env = {**infra.env, "TRACKER_SMTP_URL": sink.url, "TRACKER_MAIL_FROM": "tracker@example.org"}
    running: list[Scheduler] = []
    try:
        for host in infra.net.hosts:
            log = infra.logdir / f"scheduler-{host.name}.log"
            with open(log, "ab") as handle:
                process = subprocess.Popen(
                    host.command(
                        [sys.executable, "-m", "flask", "--app", "wsgi", "tracker", "scheduler"]
                    ),
                    cwd=harness.ROOT,
                    env=env,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            running.append(Scheduler(host, process, log))
        yield running
    finally:
        for scheduler in running:
            harness._stop(scheduler.process)


def leader(infra: Infrastructure, running: list[Scheduler], timeout: float = 30) -> Scheduler:
    """The scheduler holding the advisory lock, found by its connection's address.

    On the loopback fallback every host has one address: the first live one is
    taken (it started first, so it normally won the election).

    :raise RuntimeError: when no scheduler holds an advisory lock in time.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with infra.database.session(write=False) as session:
            holders = session.execute(
                text(
                    "SELECT host(a.client_addr) FROM pg_locks l"
                    " JOIN pg_stat_activity a ON a.pid = l.pid"
                    " WHERE l.locktype = 'advisory' AND l.granted"
                )
            ).scalars()
            addresses = {address for address in holders if address}
        live = [s for s in running if s.process.poll() is None]
        for scheduler in live:
            if scheduler.host.address in addresses:
                return scheduler
        time.sleep(0.5)
    raise RuntimeError("no scheduler holds an advisory lock")


def kill_leader(infra: Infrastructure, running: list[Scheduler], record: FaultRecord) -> None:
    """SIGKILL the leader's process group; the other host's scheduler must take over."""
    victim = leader(infra, running)
    os.killpg(victim.process.pid, signal.SIGKILL)
    record.note = f"scheduler on host {victim.host.name} (pid {victim.process.pid}) SIGKILLed"


def milestone_problems(
    infra: Infrastructure, plan: Plan, sink: SmtpSink, timeout: float = 90
) -> list[str]:
    """What is wrong with the milestone messages (empty when exactly one per tier arrived).

    Waits up to ``timeout`` seconds for every milestone row of the outbox to be
    sent, then compares: one outbox row per (campaign, tier crossed) for the
    owner, and one SMTP message per row's Message-ID, received exactly once.
    """
    slugs = [c.slug for c in plan.campaigns]
    expected = {c.slug: len(c.tiers_crossed()) for c in plan.campaigns}
    deadline = time.monotonic() + timeout
    rows: list[Any] = []
    while time.monotonic() < deadline:
        with infra.database.session(write=False) as session:
            rows = list(
                session.execute(
                    text(
                        "SELECT c.slug, o.key, o.message_id, o.status FROM outbox_messages o"
                        " JOIN campaigns c ON c.id = o.campaign_id"
                        " WHERE o.kind LIKE '%milestone%' AND c.slug = ANY(:slugs)"
                    ),
                    {"slugs": slugs},
                )
            )
        per_campaign = Counter(row.slug for row in rows)
        done = all(row.status == "sent" for row in rows)
        if done and all(per_campaign[s] >= n for s, n in expected.items()):
            break
        time.sleep(1)
    problems = []
    per_campaign = Counter(row.slug for row in rows)
    for slug, count in expected.items():
        if per_campaign[slug] != count:
            problems.append(f"{slug}: {per_campaign[slug]} milestone rows, expected {count}")
    with sink.lock:
        received = Counter(m["message_id"] for m in sink.messages)
    for row in rows:
        if row.status != "sent":
            problems.append(f"{row.key}: still {row.status}")
        ids = [mid for mid in received if row.message_id.strip("<>") in mid]
        times = sum(received[mid] for mid in ids)
        if times != 1:
            problems.append(f"{row.key}: received {times} times at the SMTP server")
    return problems
