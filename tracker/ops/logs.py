"""Log lines: one per request and one per job, each with an id, as text or JSON lines.

What a line may carry is deliberately small: method, path (never the query
string, which carries signed pledge tokens and Checkout session ids), status,
duration, route group and the request id. Donor names, e-mail addresses,
messages, card data and keys never reach a log line from here, and the
database engines hide statement parameters in their errors (``tracker.db``),
so a logged database failure cannot quote an event payload either.
"""

from __future__ import annotations

import logging
import re
import secrets
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TextIO

from flask import Flask, Response, g, has_request_context, request
from flask.logging import default_handler
from pythonjsonlogger.json import JsonFormatter

from tracker.ops import metrics

REQUEST_LOGGER = "tracker.request"
JOB_LOGGER = "tracker.job"
# An id from the proxy in front (nginx's $request_id) is kept when it looks like one;
# anything else is replaced, so a client cannot write arbitrary text into our logs.
_INCOMING_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
_JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s"


class _CurrentStderr(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # always the current stderr, whatever was passed in
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record: the request's or job's id, or ``-``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = g.get("request_id", "-") if has_request_context() else _job_id.get()
        return True


# The id of the job running in this context (jobs run outside requests).
_job_id: ContextVar[str] = ContextVar("tracker_job_id", default="-")


def formatter(kind: str) -> logging.Formatter:
    """The formatter for ``TRACKER_LOG_FORMAT``: ``text`` or ``json`` (one object a line)."""
    if kind == "json":
        return JsonFormatter(_JSON_FIELDS, rename_fields={"levelname": "level", "name": "logger"})
    return logging.Formatter(_TEXT_FORMAT)


def configure(kind: str) -> logging.Handler:
    """Send the ``tracker`` loggers' records to stderr in format ``kind``; idempotent.

    Replaces Flask's default handler and any handler an earlier app of this
    process installed, so two apps in one process never print a line twice.
    """
    logger = logging.getLogger("tracker")
    for handler in list(logger.handlers):
        if handler is default_handler or getattr(handler, "tracker_handler", False):
            logger.removeHandler(handler)
    handler = _CurrentStderr()
    handler.tracker_handler = True  # type: ignore[attr-defined]  # our marker, see above
    handler.setFormatter(formatter(kind))
    handler.addFilter(RequestIdFilter())
    logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    return handler


def request_id() -> str:
    """The current request's id (also sent back as ``X-Request-Id``)."""
    value: str = g.get("request_id") or "-"
    return value


def _route_group() -> str:
    if request.blueprint:
        return request.blueprint
    if request.url_rule is None:
        return "unmatched"
    return "health" if request.endpoint in ("livez", "healthz") else "other"


def init_app(app: Flask) -> None:
    """Configure logging and add the request id, request line and latency to every request."""
    configure(app.config["LOG_FORMAT"])
    trust_incoming = bool(app.config["TRUSTED_PROXIES"])
    log = logging.getLogger(REQUEST_LOGGER)

    @app.before_request
    def _start() -> None:
        g.request_started = time.perf_counter()
        # 128 random bits as hex, like nginx's $request_id (uuid4 costs 4x as much here).
        incoming = request.environ.get("HTTP_X_REQUEST_ID") if trust_incoming else None
        g.request_id = (
            incoming if incoming and _INCOMING_ID.fullmatch(incoming) else secrets.token_hex(16)
        )

    @app.after_request
    def _finish(response: Response) -> Response:
        started = g.get("request_started")
        if started is None:  # a response made before our hook ran (another hook's abort)
            return response
        seconds = time.perf_counter() - started
        group = _route_group()
        metrics.observe_request(group, seconds)
        response.headers["X-Request-Id"] = g.request_id
        log.info(
            "%s %s %s %.1fms",
            request.method,
            request.path,
            response.status_code,
            seconds * 1000,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round(seconds * 1000, 3),
                "group": group,
            },
        )
        return response


class Job:
    """One run of a job: its id, and what its end-of-run line should say."""

    __slots__ = ("fields", "id", "name", "outcome")

    def __init__(self, name: str, fields: dict[str, Any]) -> None:
        self.id = secrets.token_hex(16)
        self.name = name
        self.fields = fields
        # A short description of what the run did, appended to its line ("3 sent").
        self.outcome = ""


@contextmanager
def job(name: str, **fields: Any) -> Iterator[Job]:
    """Log one line when job ``name`` ends (ok or failed, with its duration); yields the run.

    Lines logged inside the block carry the run's id (``Job.id``), as request
    lines carry the request's. The block may set ``Job.outcome`` and add to
    ``Job.fields`` for the final line. An exception is logged with its traceback
    and re-raised.

    :param fields: extra structured fields for the line (counts, never personal data).
    """
    log = logging.getLogger(JOB_LOGGER)
    run = Job(name, dict(fields))
    token = _job_id.set(run.id)
    started = time.perf_counter()
    try:
        yield run
    except BaseException:
        seconds = time.perf_counter() - started
        log.exception(
            "job %s failed after %.1fms",
            name,
            seconds * 1000,
            extra={"job": name, "outcome": "failed", "duration_ms": round(seconds * 1000, 3)},
        )
        raise
    else:
        seconds = time.perf_counter() - started
        log.info(
            "job %s ok in %.1fms%s",
            name,
            seconds * 1000,
            f": {run.outcome}" if run.outcome else "",
            extra={
                "job": name,
                "outcome": "ok",
                "duration_ms": round(seconds * 1000, 3),
                **run.fields,
            },
        )
    finally:
        _job_id.reset(token)
