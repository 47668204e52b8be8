"""The scheduler process: ``flask --app wsgi tracker scheduler``.

APScheduler 3 decides *when* (a blocking scheduler, jobs in memory, built from
the database and rebuilt when campaign settings change); the database decides
*whether it was done* (the outbox's unique keys). Every process schedules
every job, but a job only does something in the process that holds the leader
lock; the others check the lock every ``TRACKER_SCHEDULER_LEADER_POLL_SECONDS``
and take over when it is free.

APScheduler's own catch-up is not relied on: its next run times live in memory
and are lost with the process, and ``misfire_grace_time`` would skip a late run
silently. Missed summaries are found by comparing each campaign's latest fire
time with what the outbox already holds (:mod:`tracker.notify.summaries`).
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor  # type: ignore[import-untyped]
from apscheduler.schedulers.blocking import BlockingScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]
from flask import Flask

from tracker.db import Database, get_database
from tracker.ops import logs, metrics
from tracker.scheduler import jobs
from tracker.scheduler.leader import client_keepalives, leadership_for, process_label
from tracker.scheduler.settings import settings

log = logging.getLogger("tracker.scheduler")


class _StopOrLost(threading.Event):
    """What jobs see as "stop": set by a signal, or reads as set once the lead is lost.

    Delivery checks it between two messages, so a leader that can no longer
    prove it holds the lock (cut off from the database) sends nothing more.
    """

    def __init__(self, stop: threading.Event, leading: Callable[[], bool]) -> None:
        super().__init__()
        self._stop = stop
        self._leading = leading

    def is_set(self) -> bool:
        return self._stop.is_set() or not self._leading()


def _with_keepalives(app: Flask, keepalive: float) -> None:
    """Give the scheduler's pooled PostgreSQL connections the lock connection's limits.

    A job whose database went away without a word then fails in seconds, and
    frees its thread, instead of waiting for TCP's retransmissions (~15 min).
    """
    from tracker import config

    old = get_database(app)
    if old.dialect != "postgresql":
        return
    app.extensions["tracker.db"] = Database(
        old.url,
        donor_key_secret=config.donor_key_secret(app),
        connect_args=client_keepalives(max(int(keepalive), 1)),
    )
    old.dispose()


class SchedulerProcess:
    """One scheduler process: its APScheduler, its leader lock, its jobs."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.settings = settings(app)
        self.stop = threading.Event()
        self.job_stop = _StopOrLost(self.stop, self.confirm_leader)
        self.label = process_label()
        self.host = socket.gethostname()
        _with_keepalives(app, self.settings.leader_keepalive_seconds)
        self.leadership = leadership_for(
            app.config["DATABASE_URL"], self.settings.leader_keepalive_seconds
        )
        self._leader_lock = threading.Lock()
        self.is_leader = False
        self._announced = False
        self._gauge_set = False
        self._signature: jobs.SummarySignature | None = None
        self.scheduler = BlockingScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(4)},
            job_defaults={
                # A run that is late (a long job, a busy machine) runs once, now:
                # never skipped silently, never piled up.
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": None,
            },
        )

    # --- leadership -------------------------------------------------------------

    def _became(self, held: bool) -> None:
        # Called with _leader_lock held.
        was = self.is_leader
        self.is_leader = held and not self.stop.is_set()
        if self.is_leader and not was:
            log.info("%s is now the leader", self.label)
            self._announced = True
            # Whatever was missed while nobody led (summaries in the catch-up
            # window, milestones) is picked up at once.
            for job_id in ("summaries", "milestones", "deliver"):
                job = self.scheduler.get_job(job_id)
                if job is not None:
                    job.modify(next_run_time=_now())
        elif not self._announced and not self.is_leader:
            log.info("%s waits: another process leads", self.label)
            self._announced = True
        elif was and not self.is_leader:
            log.warning("%s is no longer the leader; jobs pause", self.label)
        if self.is_leader != was or not self._gauge_set:
            metrics.set_leader(self.host, self.is_leader)
            self._gauge_set = True

    def leader_tick(self) -> None:
        """Take the lock if it is free, or check that it is still ours."""
        with self._leader_lock:
            self._became(self.leadership.try_acquire())

    def confirm_leader(self) -> bool:
        """Whether this process leads, checked with the lock itself (not the last poll).

        Before each job and between two deliveries: a leader cut off from the
        database fails the check (its lock connection breaks within the
        keepalive limits) and steps down instead of going on with what it
        believed a moment ago.
        """
        if not self.is_leader:
            return False
        with self._leader_lock:
            if self.is_leader:
                self._became(self.leadership.still_held())
            return self.is_leader

    # --- jobs -----------------------------------------------------------------

    def _run(self, spec: jobs.JobSpec) -> None:
        if self.stop.is_set() or not self.confirm_leader():
            return
        try:
            with logs.job(spec.id) as run:
                log.info("job %s started", spec.id)
                with self.app.app_context():
                    run.outcome = spec.func(self.app, self.job_stop)
        except Exception:
            # logs.job wrote the failure with its traceback and duration.
            metrics.job_finished(spec.id, ok=False, at=time.time())
            log.warning("job %s runs again at its next time", spec.id)
            return
        metrics.job_finished(spec.id, ok=True, at=time.time())

    def _add(self, spec: jobs.JobSpec) -> None:
        self.scheduler.add_job(
            self._run,
            trigger=spec.trigger,
            args=(spec,),
            id=spec.id,
            name=spec.description,
            replace_existing=True,
        )

    def refresh(self) -> None:
        """Rebuild the per-campaign summary jobs if campaign settings changed."""
        try:
            with get_database(self.app).session(write=False) as session:
                signature = jobs.summary_signature(session)
        except Exception:
            log.exception("refreshing the job list failed; keeping the current one")
            return
        if signature == self._signature:
            return
        for job in self.scheduler.get_jobs():
            if job.id.startswith("summary:"):
                job.remove()
        for spec in jobs.summary_jobs(signature):
            self._add(spec)
        if self._signature is not None:
            log.info("summary jobs rebuilt: %d campaign(s)", len(signature))
        self._signature = signature

    # --- lifecycle ----------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("%s: %s received, stopping", self.label, signal.Signals(signum).name)
        self.stop.set()
        self.is_leader = False
        # Not from inside the handler: shutdown() waits for running jobs.
        threading.Thread(target=self.scheduler.shutdown, kwargs={"wait": True}).start()

    def run(self) -> int:
        """Schedule everything and block until SIGTERM or SIGINT; returns the exit status."""
        s = self.settings
        for spec in jobs.fixed_jobs(self.app):
            self._add(spec)
        self.scheduler.add_job(
            self.leader_tick,
            IntervalTrigger(seconds=s.leader_poll_seconds),
            id="leader",
            name="leader election",
        )
        self.scheduler.add_job(
            self.refresh, IntervalTrigger(seconds=s.refresh_seconds), id="refresh", name="refresh"
        )
        self.refresh()
        cleared = metrics.forget_dead_processes()
        if cleared:
            log.info("metrics of dead process(es) %s removed", ", ".join(map(str, cleared)))
        # 0 until the first election says otherwise (announced by leader_tick).
        metrics.set_leader(self.host, False)
        self._gauge_set = True
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        log.info(
            "%s started: %d job(s); leader lock on %s",
            self.label,
            len(self.scheduler.get_jobs()),
            get_database(self.app).dialect,
        )
        self.scheduler.add_job(self.leader_tick, id="leader-first", next_run_time=_now())
        try:
            self.scheduler.start()
        finally:
            self.stop.set()
            self.is_leader = False
            self.leadership.release()
            metrics.set_leader(self.host, False)
            metrics.process_stopped()
            get_database(self.app).dispose()
            log.info("%s stopped", self.label)
        return 0


def _now() -> datetime:
    return datetime.now(UTC)
