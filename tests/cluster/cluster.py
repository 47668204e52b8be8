"""The cluster under test: shared services, app hosts behind nginx, faults, checks.

:func:`infrastructure` makes the network, PostgreSQL and Redis once;
:func:`frontend` runs gunicorn on some hosts behind nginx on top of it (the
test runs a one-host front end for the baseline, then the two-host one for
the storm). :class:`Faults` injects the faults at moments drawn from the seed,
each in its own thread, and keeps a log of what happened when.

The scheduler (``flask --app wsgi tracker scheduler``) is a separate step,
:mod:`tests.cluster.scheduler`: on only when the command exists.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from bench import _embed_harness, harness
from tests.cluster import services
from tests.cluster.network import Host, Network, network
from tests.cluster.storm import Plan, payment_number
from tests.stripe_helpers import SECRET
from tracker import migrate
from tracker.db import Database
from tracker.domain.periods import PeriodKind
from tracker.models import Campaign, InboxStatus, LedgerEntry, PeriodTotal, StripeEvent
from tracker.services.campaigns import CampaignSpec, create_campaign

# Donate submissions allowed per client and minute on the cluster (shared in Redis).
DONATE_LIMIT = 5


@dataclass(slots=True)
class Infrastructure:
    """What every front end shares: network, database, Redis, the app's settings."""

    net: Network
    pg: services.Postgres
    redis_url: str
    env: dict[str, str]
    logdir: Path
    database: Database
    # Starts every gunicorn of the run, in one session (services._SPAWNER says why).
    spawner: services.Spawner

    def create_campaigns(self, plan: Plan) -> None:
        """The plan's campaigns, active, with its tiers (one transaction)."""
        with self.database.session() as session:
            for c in plan.campaigns:
                create_campaign(
                    session,
                    CampaignSpec(
                        slug=c.slug,
                        title=f"Storm {c.slug}",
                        currency=c.currency,
                        tiers=[t * c.unit for t in c.tiers],
                        period=PeriodKind.NONE,
                    ),
                )
            session.commit()

    def totals(self, plan: Plan) -> dict[str, tuple[int, int]]:
        """(raised, payments) per campaign of ``plan``, from the totals rows."""
        with self.database.session(write=False) as session:
            rows = session.execute(
                select(Campaign.slug, PeriodTotal.raised, PeriodTotal.payments)
                .join(PeriodTotal, PeriodTotal.campaign_id == Campaign.id)
                .where(Campaign.slug.in_([c.slug for c in plan.campaigns]))
            ).all()
        return {slug: (raised, payments) for slug, raised, payments in rows}

    def ledger_by_payment(self, slugs: list[str]) -> dict[str, list[tuple[str, int]]]:
        """Ledger entries (reference, amount) of ``slugs``' campaigns, by storm payment number."""
        with self.database.session(write=False) as session:
            rows = session.execute(
                select(LedgerEntry.reference, LedgerEntry.amount)
                .join(Campaign, Campaign.id == LedgerEntry.campaign_id)
                .where(Campaign.slug.in_(slugs))
            ).all()
        booked: dict[str, list[tuple[str, int]]] = {}
        for reference, amount in rows:
            booked.setdefault(payment_number(reference), []).append((reference, amount))
        return booked

    def inbox(self) -> dict[str, int]:
        """How many inbox events are in each status."""
        with self.database.session(write=False) as session:
            rows = session.execute(
                select(StripeEvent.status, func.count()).group_by(StripeEvent.status)
            ).all()
        return {InboxStatus(status).value: count for status, count in rows}

    def deferred(self) -> list[tuple[str, str]]:
        """(event id, type) of every inbox event waiting ``deferred`` right now."""
        with self.database.session(write=False) as session:
            rows = session.execute(
                select(StripeEvent.id, StripeEvent.type)
                .where(StripeEvent.status == InboxStatus.DEFERRED)
                .order_by(StripeEvent.id)
            ).all()
        return [(event_id, type_) for event_id, type_ in rows]

    def analyze(self) -> None:
        """``ANALYZE``: fresh planner statistics, as autovacuum keeps them on a live server."""
        with self.database.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()

    def checkpoint(self) -> None:
        """``CHECKPOINT`` now, so that no timed checkpoint falls inside the next round.

        A checkpoint flushes every dirty page: on this disk it can stall commits for
        a second or more, and would then cost only the side measured at that moment.
        """
        with self.database.engine.connect() as conn:
            conn.exec_driver_sql("CHECKPOINT")
            conn.commit()

    def log_tails(self, lines: int = 20) -> str:
        """The end of every server log of the run (for a failure's report)."""
        parts = []
        for log in sorted(self.logdir.glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(parts)

    def cli(self, *args: str, host: Host | None = None) -> str:
        """``flask --app wsgi tracker ARGS`` on ``host`` (default: the first)."""
        return services.flask_command(host or self.net.hosts[0], self.env, *args)


@contextlib.contextmanager
def infrastructure(*, require_namespaces: bool) -> Iterator[Infrastructure]:
    """Network, PostgreSQL (migrated) and Redis of the test's own; all removed afterwards."""
    logdir = Path(tempfile.mkdtemp(prefix="tracker-cluster-logs-"))
    logdir.chmod(0o777)
    try:
        with (
            network(2, require=require_namespaces) as net,
            services.postgres(net.hub, net.subnet) as pg,
            services.redis(net.hub) as redis_url,
            services.spawner() as spawner,
        ):
            database = Database(pg.url)
            try:
                migrate.upgrade(database.engine)
                env = harness.app_environment(
                    pg.url,
                    SECRET_KEY=secrets.token_urlsafe(48),  # one for every host
                    STRIPE_WEBHOOK_SECRET=SECRET,
                    RATELIMIT_STORAGE_URI=redis_url,
                    TRUSTED_PROXIES="1",
                    API_CACHE_SECONDS="1",
                    DONATE_RATE_LIMIT=f"{DONATE_LIMIT} per minute",
                )
                yield Infrastructure(net, pg, redis_url, env, logdir, database, spawner)
            finally:
                database.dispose()
    finally:
        if os.environ.get("CLUSTER_KEEP_LOGS"):
            print(f"cluster logs kept in {logdir}")
        else:
            shutil.rmtree(logdir, ignore_errors=True)


@dataclass(slots=True)
class Frontend:
    """gunicorn on some hosts and nginx balancing across them."""

    apps: list[services.AppServer]
    origin: str  # nginx, e.g. http://127.0.0.1:PORT

    @property
    def port(self) -> int:
        """nginx's port on 127.0.0.1."""
        return int(self.origin.rsplit(":", 1)[1])

    def get_json(self, path: str) -> dict[str, object]:
        """GET ``path`` through nginx."""
        with urllib.request.urlopen(self.origin + path, timeout=5) as response:
            document: dict[str, object] = json.loads(response.read())
            return document


@contextlib.contextmanager
def frontend(infra: Infrastructure, hosts: list[Host], workers: int) -> Iterator[Frontend]:
    """gunicorn with ``workers`` workers on each of ``hosts``, nginx in front of them."""
    with contextlib.ExitStack() as stack:
        apps = [
            stack.enter_context(
                services.gunicorn(
                    host, infra.env, workers=workers, logdir=infra.logdir, spawner=infra.spawner
                )
            )
            for host in hosts
        ]
        origin = stack.enter_context(
            _embed_harness.nginx(
                [a.address for a in apps],
                {"ready.txt": b"ok"},
                conf="nginx-cluster.conf",
                server_options="max_fails=5 fail_timeout=3s",
            )
        )
        yield Frontend(apps, origin)


# --------------------------------------------------------------------------- faults


@dataclass(slots=True)
class FaultRecord:
    """One fault as it happened (seconds since the storm started)."""

    name: str
    at_send: int
    started: float = float("nan")
    ended: float = float("nan")
    note: str = ""

    def describe(self) -> str:
        """One line of the report."""
        span = (
            f"t={self.started:6.2f}s–{self.ended:6.2f}s"
            if self.ended == self.ended
            else f"t={self.started:6.2f}s"
        )
        return f"{self.name:<30} at send #{self.at_send:>5,}  {span}  {self.note}".rstrip()


@dataclass(slots=True)
class Faults:
    """Faults fired when the storm's first sends pass thresholds drawn from the seed."""

    infra: Infrastructure
    front: Frontend
    rng: random.Random
    window: tuple[int, int]
    records: list[FaultRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _actions: dict[str, Callable[[FaultRecord], None]] = field(default_factory=dict)
    _pending: list[tuple[int, str]] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _origin: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, action: Callable[[FaultRecord], None]) -> None:
        """Schedule ``action`` at a random first-send count inside the window."""
        at = self.rng.randint(*self.window)
        self._actions[name] = action
        self._pending.append((at, name))
        self._pending.sort()

    def standard(self, link_seconds: float = 10.0) -> None:
        """The issue's faults: PostgreSQL restart, a worker killed per host, a link cut."""
        self.add("postgresql fast restart", self._restart_postgres)
        for app in self.front.apps:
            self.add(f"SIGKILL a worker on host {app.host.name}", self._killer(app))
        target = self.front.apps[-1]
        self.add(
            f"host {target.host.name} cut off {link_seconds:g} s", self._cut(target, link_seconds)
        )

    def start(self, origin: float) -> None:
        """Mark the storm's start (times in the records are relative to it)."""
        self._origin = origin

    def first_fault_time(self) -> float:
        """Monotonic time of the first fault (inf before any)."""
        started = [r.started for r in self.records if r.started == r.started]
        return self._origin + min(started) if started else float("inf")

    def on_progress(self, sent: int) -> None:
        """Called by the sender with its count of first sends: fire what is due."""
        with self._lock:
            while self._pending and self._pending[0][0] <= sent:
                at, name = self._pending.pop(0)
                record = FaultRecord(name, at)
                self.records.append(record)
                thread = threading.Thread(target=self._run, args=(record,), daemon=True)
                self._threads.append(thread)
                thread.start()

    def _now(self) -> float:
        return time.monotonic() - self._origin

    def _run(self, record: FaultRecord) -> None:
        record.started = self._now()
        try:
            self._actions[record.name](record)
        except Exception as exc:
            self.errors.append(f"{record.name}: {type(exc).__name__}: {exc}")
        if record.ended != record.ended:
            record.ended = self._now()

    def join(self, timeout: float = 60.0) -> None:
        """Wait for running faults to finish (a cut link to come back)."""
        for thread in self._threads:
            thread.join(timeout)

    def unfired(self) -> list[str]:
        """Faults whose moment never came (the storm was shorter than planned)."""
        return [name for _, name in self._pending]

    # The faults themselves.

    def _restart_postgres(self, record: FaultRecord) -> None:
        began = time.monotonic()
        self.infra.pg.restart()
        record.note = f"down and back in {time.monotonic() - began:.2f} s"

    def _killer(self, app: services.AppServer) -> Callable[[FaultRecord], None]:
        def kill(record: FaultRecord) -> None:
            pid = app.kill_worker()
            record.note = f"worker pid {pid} SIGKILLed (gunicorn forks a new one)"

        return kill

    def _cut(self, app: services.AppServer, seconds: float) -> Callable[[FaultRecord], None]:
        def cut(record: FaultRecord) -> None:
            net = self.infra.net
            if net.isolated:
                net.set_link(app.host, up=False)
                try:
                    time.sleep(seconds)
                finally:
                    net.set_link(app.host, up=True)
                record.note = f"ip link set {app.host.link} down, then up"
            else:
                # Loopback has no link to cut: the nearest thing is a host that freezes.
                os.killpg(app.process.pid, signal.SIGSTOP)
                try:
                    time.sleep(seconds)
                finally:
                    os.killpg(app.process.pid, signal.SIGCONT)
                record.note = "loopback fallback: gunicorn SIGSTOPped, then SIGCONT"
            record.ended = self._now()

        return cut
