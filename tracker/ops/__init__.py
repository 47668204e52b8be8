"""Running the service: request logs and ids, Prometheus metrics, backups.

- :mod:`tracker.ops.logs` -- one log line per request and per job, with a
  request id (``X-Request-Id``), as text or JSON lines (``TRACKER_LOG_FORMAT``);
- :mod:`tracker.ops.metrics` -- what the service counts, and the backlogs read
  from the database when ``/metrics`` is scraped;
- :mod:`tracker.ops.blueprint` -- ``GET /metrics`` behind a bearer token;
- :mod:`tracker.ops.backup` and :mod:`tracker.ops.cli` -- ``tracker backup PATH``.
"""

from __future__ import annotations

from flask import Flask

__all__ = ["init_app"]


def init_app(app: Flask) -> None:
    """Wire logging, the per-request hooks and ``/metrics`` into ``app``."""
    from tracker.ops import blueprint, logs

    logs.init_app(app)
    app.register_blueprint(blueprint.bp)
