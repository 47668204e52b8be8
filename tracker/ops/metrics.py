"""Prometheus metrics: what the service counts, and the backlogs read at scrape time.

Counters and histograms are prometheus-client's. Under gunicorn every worker is
a process of its own, so ``PROMETHEUS_MULTIPROC_DIR`` (set by
``deploy/gunicorn.conf.py``) switches the library to its multiprocess mode:
each worker writes its values to files in that directory and a scrape, served
by any worker, sums them. Backlogs (the Stripe inbox, the outbox) are not
counted but read from the database at scrape time, so every worker and host
reports the same figures and a restart loses nothing.

Families (all prefixed ``tracker_``):

- ``webhook_events_total{type, outcome}`` -- Stripe deliveries by event type and
  what became of them (``processed``, ``ignored``, ``deferred``, ``failed``;
  ``duplicate`` for an event already in the inbox, delivered again; ``invalid``
  for a bad signature or body, type ``unknown``; ``unavailable`` when the
  database was down);
- ``inbox_events{status}`` and ``inbox_oldest_age_seconds{status}`` -- events
  waiting in the inbox (received, deferred, failed) and the age of the oldest;
- ``outbox_messages{status}`` and ``outbox_oldest_age_seconds{status}`` -- the
  scheduler's outgoing messages still pending or failed (when that table exists);
- ``render_cache_total{result}`` -- hits and misses of the per-process render cache;
- ``request_duration_seconds{group}`` -- request latency per route group
  (the blueprint: api, embed, donate, webhooks, ...; health; unmatched);
- ``scheduler_leader{host, pid}`` -- 1 while that scheduler process holds the
  leader lock, 0 while it waits (only processes alive on this host);
- ``scheduler_job_last_success_timestamp_seconds{job}`` -- when each job last
  ended without an error (Unix time; the latest of this host's schedulers);
- ``scheduler_job_runs_total{job, outcome}`` -- job runs that ended ``ok`` or ``failed``.

The scheduler is a process of its own (``flask tracker scheduler``). Its
figures reach ``/metrics`` through the same multiprocess directory: the
scheduler's unit sets the same ``PROMETHEUS_MULTIPROC_DIR`` as gunicorn's, so
its files are summed like a worker's, with no table or heartbeat in the
database. The leader gauge is ``liveall`` (one series per live process; a
process that stops clean removes its own, one killed has its removed by the
next scheduler to start on the host); the last-success gauge is ``max``, so a
scheduler that has died still counts for when the job last worked. Without
the directory (``flask run``, tests) each process keeps its own figures and
the web's ``/metrics`` has none of the scheduler's.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import column, func, inspect, select, table
from sqlalchemy.orm import Session

from tracker.models import InboxStatus, StripeEvent, UTCDateTime, utcnow

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

WEBHOOK_EVENTS = Counter(
    "tracker_webhook_events",
    "Stripe webhook deliveries by event type and outcome.",
    ["type", "outcome"],
)
RENDER_CACHE = Counter(
    "tracker_render_cache",
    "Lookups in the per-process cache of rendered public responses.",
    ["result"],
)
# Pre-bound children: the cache is on the widget's hot path, a label lookup is not free.
RENDER_CACHE_HIT = RENDER_CACHE.labels("hit")
RENDER_CACHE_MISS = RENDER_CACHE.labels("miss")
REQUEST_SECONDS = Histogram(
    "tracker_request_duration_seconds",
    "Time from the first to the last request hook, by route group.",
    ["group"],
    # From a cached widget answer (~0.2 ms) to a donor waiting on Stripe (up to ~25 s).
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
_REQUEST_CHILDREN: dict[str, Histogram] = {}
SCHEDULER_LEADER = Gauge(
    "tracker_scheduler_leader",
    "1 while this scheduler process holds the leader lock, 0 while it waits.",
    ["host"],
    # One series per live process (with its pid): "no leader" is max() == 0 and
    # "two leaders" sum() > 1, and a stopped process drops out of the sum.
    multiprocess_mode="liveall",
)
JOB_LAST_SUCCESS = Gauge(
    "tracker_scheduler_job_last_success_timestamp_seconds",
    "When the job last ended without an error (Unix time).",
    ["job"],
    # The latest of every process's, dead ones included: a job that worked an hour
    # ago in a scheduler since killed did work an hour ago.
    multiprocess_mode="max",
)
JOB_RUNS = Counter(
    "tracker_scheduler_job_runs", "Scheduler job runs by job and outcome.", ["job", "outcome"]
)

# The inbox statuses that are backlog (the other two are final).
_WAITING = (InboxStatus.RECEIVED, InboxStatus.DEFERRED, InboxStatus.FAILED)
_OUTBOX_WAITING = ("pending", "failed")
# The scheduler's outbox (tracker/notify), read only where its migration has run.
_OUTBOX = table("outbox_messages", column("status"), column("created_at", UTCDateTime()))


def observe_request(group: str, seconds: float) -> None:
    """Record one request of ``group`` that took ``seconds``."""
    child = _REQUEST_CHILDREN.get(group)
    if child is None:
        child = _REQUEST_CHILDREN.setdefault(group, REQUEST_SECONDS.labels(group))
    child.observe(seconds)


def count_webhook(event_type: str, outcome: str) -> None:
    """Count one webhook delivery of ``event_type`` ending in ``outcome``."""
    WEBHOOK_EVENTS.labels(event_type, outcome).inc()


def job_metric_name(job_id: str) -> str:
    """The ``job`` label of a job: its id, with the per-campaign summary jobs as one."""
    return "summary" if job_id.startswith("summary:") else job_id


def set_leader(host: str, leading: bool) -> None:
    """Record whether this scheduler process leads."""
    SCHEDULER_LEADER.labels(host).set(1 if leading else 0)


def job_finished(job_id: str, ok: bool, at: float) -> None:
    """Count one run of ``job_id``; ``at`` (Unix time) is its last success when ``ok``."""
    name = job_metric_name(job_id)
    JOB_RUNS.labels(name, "ok" if ok else "failed").inc()
    if ok:
        JOB_LAST_SUCCESS.labels(name).set(at)


def process_stopped(pid: int | None = None) -> None:
    """Drop the live gauges of process ``pid`` (this one by default) from the directory."""
    directory = multiprocess_dir()
    if directory:
        multiprocess.mark_process_dead(pid or os.getpid(), directory)  # type: ignore[no-untyped-call]


def forget_dead_processes() -> list[int]:
    """Drop the live gauges left by processes of this host that died without cleaning up.

    gunicorn does it for its workers (``child_exit``); a scheduler killed with
    SIGKILL leaves its leader gauge at 1, so each scheduler does it at start.
    Returns the pids whose files were removed.
    """
    directory = multiprocess_dir()
    if not directory:
        return []
    # The scheduler may start before the web service has made it.
    Path(directory).mkdir(parents=True, exist_ok=True)
    gone = []
    for path in Path(directory).glob("gauge_live*_*.db"):
        pid_text = path.stem.rsplit("_", 1)[-1]
        if not pid_text.isdigit() or _alive(int(pid_text)):
            continue
        process_stopped(int(pid_text))
        gone.append(int(pid_text))
    return sorted(set(gone))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def multiprocess_dir() -> str | None:
    """The multiprocess directory when prometheus-client runs in that mode, else None."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class _Backlogs(Collector):
    """The database-backed gauges, read once when the registry is collected."""

    def __init__(self, session: Session, now: datetime | None = None) -> None:
        self.session = session
        self.now = now or utcnow()

    def collect(self) -> Iterable[Metric]:
        yield from _backlog(
            "inbox",
            "Stripe events",
            self.session.execute(
                select(StripeEvent.status, func.count(), func.min(StripeEvent.received_at))
                .where(StripeEvent.status.in_(_WAITING))
                .group_by(StripeEvent.status)
            ).all(),
            [status.value for status in _WAITING],
            self.now,
        )
        if _has_table(self.session, "outbox_messages"):
            rows = self.session.execute(
                select(_OUTBOX.c.status, func.count(), func.min(_OUTBOX.c.created_at))
                .where(_OUTBOX.c.status.in_(_OUTBOX_WAITING))
                .group_by(_OUTBOX.c.status)
            ).all()
            yield from _backlog("outbox", "outgoing messages", rows, _OUTBOX_WAITING, self.now)


def _has_table(session: Session, name: str) -> bool:
    return bool(inspect(session.connection()).has_table(name))


def _backlog(
    name: str,
    what: str,
    rows: Iterable[tuple[object, int, datetime | None]],
    statuses: Iterable[str],
    now: datetime,
) -> Iterator[Metric]:
    counts = GaugeMetricFamily(
        f"tracker_{name}_events" if name == "inbox" else f"tracker_{name}_messages",
        f"{what.capitalize()} waiting in the {name}, by status.",
        labels=["status"],
    )
    ages = GaugeMetricFamily(
        f"tracker_{name}_oldest_age_seconds",
        f"Age of the oldest of the {what} waiting in the {name} (0 when none).",
        labels=["status"],
    )
    found = {str(getattr(status, "value", status)): (n, oldest) for status, n, oldest in rows}
    for status in statuses:
        n, oldest = found.get(status, (0, None))
        counts.add_metric([status], n)
        ages.add_metric([status], max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)
    yield counts
    yield ages


class _SizedFilesCollector(multiprocess.MultiProcessCollector):
    # prometheus-client creates a process's file, then sizes it: a scrape in that
    # instant read a 0-byte file and failed, with every other process's metrics,
    # and a process killed in it left the file to fail every scrape after
    # (prometheus/client_python#1199, open). Such a file holds nothing yet.
    def collect(self) -> Iterable[Metric]:
        files = []
        for name in glob.glob(os.path.join(self._path, "*.db")):
            try:
                if os.path.getsize(name) > 0:
                    files.append(name)
            except FileNotFoundError:
                pass  # a dead process's file, just removed by mark_process_dead
        return self.merge(files, accumulate=True)  # type: ignore[no-untyped-call,no-any-return]


def multiprocess_registry(directory: str) -> CollectorRegistry:
    """A registry of every process's metrics in ``directory`` (multiprocess mode).

    A file a starting process has created but not yet sized is left out instead
    of failing the whole scrape.
    """
    registry = CollectorRegistry()
    _SizedFilesCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry


def exposition(session: Session, now: datetime | None = None) -> bytes:
    """The text exposition of every metric: this process's or all workers', and the backlogs.

    :param session: read from for the backlogs.
    """
    directory = multiprocess_dir()
    counted = multiprocess_registry(directory) if directory else REGISTRY
    backlogs = CollectorRegistry(auto_describe=False)
    backlogs.register(_Backlogs(session, now))
    return generate_latest(counted) + generate_latest(backlogs)
