"""gunicorn settings for tracker: ``gunicorn -c deploy/gunicorn.conf.py wsgi:app``.

Read by gunicorn's master before the app is loaded. Every value can be changed
from the environment (the systemd unit's EnvironmentFile) or overridden on the
command line, which wins over this file.

Sync workers, one request at a time each: they must sit behind a buffering
proxy (deploy/nginx/tracker.conf). nginx reads a slow client's whole request
before passing it on and takes the whole response at once, so a client on a
bad mobile link (or one trickling bytes on purpose) holds an nginx connection,
which is cheap, and never a worker.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

# --- where and how many ------------------------------------------------------------

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# gunicorn's advice for sync workers: two per core and one more, so a core has
# another worker ready while one waits on the database or on Stripe.
workers = int(os.environ.get("GUNICORN_WORKERS", 2 * multiprocessing.cpu_count() + 1))
worker_class = "sync"
# Sync workers answer one request per connection and close it (gunicorn's
# keepalive applies to the threaded and async worker classes only), so nginx's
# upstream keepalive saves nothing with them; the local hop is cheap. Kept a little
# longer than nginx's idle time for a switch to worker_class = "gthread", so that
# gunicorn never closes a connection nginx is about to reuse.
keepalive = 75

# --- timeouts, from the slowest thing a request may wait on ----------------------
# A donor's request waits on Stripe: TRACKER_STRIPE_TIMEOUT per attempt (8 s by
# default), three attempts (stripe-python's two network retries) and its
# back-off between them (at most 2 s each). The worker timeout sits above that,
# so a hung Stripe gives the donor our "try again" page instead of a worker
# killed mid-request; and never below gunicorn's usual 30 s.
_STRIPE_TIMEOUT = float(os.environ.get("TRACKER_STRIPE_TIMEOUT") or 8)
_STRIPE_ATTEMPTS = 3
_STRIPE_BACKOFF = 2 * 2.0
_STRIPE_BUDGET = _STRIPE_TIMEOUT * _STRIPE_ATTEMPTS + _STRIPE_BACKOFF
timeout = max(30, math.ceil(_STRIPE_BUDGET) + 2)
# On a restart or deploy (SIGTERM / SIGHUP), a worker finishes the request it
# holds, the longest being a donor's Stripe call, before it is stopped.
graceful_timeout = timeout
# Recycle workers now and then (jittered so they do not all restart together):
# bounds the memory of a long-lived process at no cost to requests.
max_requests = 20_000
max_requests_jitter = 2_000

# --- logs ----------------------------------------------------------------------------
# The app writes one line per request itself (tracker/ops/logs.py: request id,
# route group, duration; text or JSON per TRACKER_LOG_FORMAT), so gunicorn's own
# access log is off. Set GUNICORN_ACCESS_LOG=- to have it as well, in this
# format: the path without its query string (signed tokens live there) and the
# request id the app answered with.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms id=%({x-request-id}o)s'
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
if os.environ.get("TRACKER_LOG_FORMAT", "").strip().lower() == "json":
    # gunicorn's own lines (worker starts, timeouts) as JSON lines too.
    logconfig_dict: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
                "rename_fields": {"levelname": "level", "name": "logger"},
            }
        },
        "handlers": {
            "error_console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            },
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            },
        },
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
        },
    }

# --- Prometheus (tracker/ops/metrics.py) -------------------------------------------
# Each worker writes its counters to files in this directory and /metrics sums
# them. It must be set before any worker imports prometheus_client, must start
# without dead processes' files (they would be counted again). The scheduler on
# this host writes there too. systemd gives one in /run (RuntimeDirectory=);
# elsewhere a temporary one.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="tracker-prometheus-")
# Loading the app (gunicorn --check-config too) already opens files there.
Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)


def on_starting(server: Any) -> None:
    """Empty the metrics directory of dead processes' files: a new server counts from zero.

    A live process's files stay: the scheduler shares the directory (its leader
    and job gauges reach /metrics this way) and outlives a web restart.
    """
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    for path in directory.iterdir():
        if path.is_dir():
            shutil.rmtree(path)
        elif not _alive(path.stem.rsplit("_", 1)[-1]):
            path.unlink()


def _alive(pid: str) -> bool:
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges (its counters stay summed, as they should)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
