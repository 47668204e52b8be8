"""Reusable pieces for HTTP benchmarks of tracker.

A benchmark here never judges absolute speed: the machine is shared and
noisy, so every figure is a ratio against a baseline route of the same app,
measured in the same run, interleaved with the target (A B B A ...) so that
drift hits both sides alike. Everything is bounded in time, talks to
127.0.0.1 only, and is torn down in ``finally`` blocks.

The pieces:

- :func:`fresh_database` -- a new, migrated SQLite file or PostgreSQL
  database, removed afterwards;
- :func:`seed_campaign` -- a campaign with N ledger entries, written in bulk
  (PostgreSQL ``COPY``, SQLite ``executemany``) together with consistent
  ``period_totals`` / ``period_donors`` / ``daily_totals`` rows, then checked
  with :func:`tracker.services.ledger.check_totals` and ``check_daily_totals``;
- :func:`gunicorn_server` -- ``gunicorn wsgi:app`` on a free loopback port,
  ready when it answers (:func:`serving` does the same for any server);
- :func:`run_wrk` -- one bounded ``wrk`` run (optionally with a Lua script), parsed;
- :func:`pinned` -- a command run on given CPUs (``taskset``), for servers and wrk;
- :func:`interleave` -- alternate several targets and collect their runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

import psycopg
from sqlalchemy import Table, insert
from sqlalchemy.engine import make_url

from tracker import migrate
from tracker.db import Database
from tracker.domain.daily import fold_day, local_day
from tracker.domain.ledger import EntryKind, EntrySource
from tracker.domain.periods import PeriodKind, period_at
from tracker.models import DailyTotal, LedgerEntry, PeriodDonor, PeriodTotal, utcnow
from tracker.services.campaigns import CampaignSpec, create_campaign
from tracker.services.ledger import DailyDrift, Drift, check_daily_totals, check_totals

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get(
    "TRACKER_BENCH_PG_URL",
    os.environ.get("TRACKER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"),
)
DATABASES = ("postgresql", "sqlite")


# How long a server may take to answer its first request. Generous: on two cores
# also running the rest of the suite (or a benchmark), booting workers that import
# the whole app was seen to take over 30 s; only a broken server ever waits it out.
START_TIMEOUT = 120.0


class BenchError(RuntimeError):
    """A benchmark could not be set up or run; ``str()`` says why."""


# --------------------------------------------------------------------------- databases


def _admin_conninfo(admin_url: str) -> str:
    url = make_url(admin_url)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.contextmanager
def fresh_database(kind: str, *, pg_admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """Yield the URL of a new database of ``kind`` migrated to head; remove it afterwards.

    PostgreSQL: ``CREATE DATABASE tracker_bench_<random>`` through ``pg_admin_url``,
    dropped ``WITH (FORCE)`` at the end. SQLite: a file in a temporary directory.

    :raise BenchError: for an unknown kind or an unreachable PostgreSQL server.
    """
    if kind == "sqlite":
        directory = tempfile.mkdtemp(prefix="tracker_bench_")
        try:
            url = f"sqlite:///{Path(directory) / 'tracker.sqlite3'}"
            _migrate(url)
            yield url
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return
    if kind != "postgresql":
        raise BenchError(f"unknown database {kind!r} (choose from {', '.join(DATABASES)})")
    name = f"tracker_bench_{secrets.token_hex(4)}"
    conninfo = _admin_conninfo(pg_admin_url)
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0]
        raise BenchError(f"PostgreSQL unavailable: {reason}") from None
    try:
        rendered = (
            make_url(pg_admin_url)
            .set(drivername="postgresql+psycopg", database=name)
            .render_as_string(hide_password=False)
        )
        _migrate(rendered)
        yield rendered
    finally:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _migrate(url: str) -> None:
    database = Database(url)
    try:
        migrate.upgrade(database.engine)
    finally:
        database.dispose()


# --------------------------------------------------------------------------- seeding

# check_daily_totals folds every ledger row in Python (about a minute per million
# entries on a loaded 2-core machine), so seeding checks the per-day rows up to
# this size; the fold that writes them is the same code at every size.
DAILY_CHECK_LIMIT = 100_000

_LEDGER_COLUMNS = (
    "campaign_id",
    "source",
    "reference",
    "kind",
    "amount",
    "currency",
    "occurred_at",
    "period_key",
    "donor_key",
    "note",
    "created_at",
)


@dataclass(frozen=True, slots=True)
class Seeded:
    """What :func:`seed_campaign` wrote, as computed independently of the database."""

    slug: str
    campaign_id: int
    entries: int
    raised: int
    payments: int
    donors: int
    periods: int
    seconds: float


@dataclass(slots=True)
class _Bucket:
    raised: int = 0
    payments: int = 0
    entries: int = 0
    donors: set[str] = field(default_factory=set)


def _entries(
    campaign_id: int,
    count: int,
    *,
    prefix: str,
    period: PeriodKind,
    timezone: str,
    rng: random.Random,
    totals: dict[str, _Bucket],
    days: dict[str, list[int]],
) -> Iterator[tuple[Any, ...]]:
    """Yield ``count`` ledger rows (``_LEDGER_COLUMNS`` order), folded into ``totals``
    (per period) and ``days`` (per local day, as ``fold_day`` keeps ``daily_totals``).

    References are ``pi_<prefix>_<n>`` (payments) and ``re_<prefix>_<n>`` (refunds),
    so several campaigns can share a database.

    About one entry in twenty is a partial refund of an earlier payment; the rest
    are payments of 5 to 500 $ from a pool of ``count // 4`` donors (so donors
    repeat), spread evenly over the year before now.
    """
    now = utcnow().replace(microsecond=0)
    start = now - timedelta(days=365)
    step = timedelta(days=365) / max(count, 1)
    pool = max(count // 4, 1)
    created = utcnow()
    paid: list[tuple[int, str]] = []  # (amount, donor) of payments, for refunds
    # Instants only grow, so the period and the local day are recomputed only
    # when an entry passes the end of the current one (once per day, not per row).
    zone = ZoneInfo(timezone)
    current = period_at(period, timezone, start)
    day_ends = start
    day: list[int] = []
    for i in range(count):
        at = start + step * i
        if current.ends_at is not None and at >= current.ends_at:
            current = period_at(period, timezone, at)
        key = current.key
        if at >= day_ends:
            local = at.astimezone(zone).date()
            day = days.setdefault(local_day(timezone, at), [0, 0, 0, 0, 0])
            midnight = datetime.combine(local + timedelta(days=1), dt_time(), tzinfo=zone)
            # Through UTC: where midnight does not exist (a DST gap), the first instant that does.
            day_ends = midnight.astimezone(UTC)
        bucket = totals.setdefault(key, _Bucket())
        bucket.entries += 1
        if paid and i % 20 == 19:
            amount, donor = paid[rng.randrange(len(paid))]
            refund = max(amount // 4, 1)
            bucket.raised -= refund
            fold_day(day, EntryKind.REFUND, -refund)
            yield (
                campaign_id,
                EntrySource.STRIPE.value,
                f"re_{prefix}_{i:08d}",
                EntryKind.REFUND.value,
                -refund,
                "USD",
                at,
                key,
                donor,
                None,
                created,
            )
            continue
        amount = rng.randrange(500, 50_001)
        donor = f"email:donor{rng.randrange(pool)}@example.org"
        paid.append((amount, donor))
        bucket.raised += amount
        fold_day(day, EntryKind.PAYMENT, amount)
        bucket.payments += 1
        bucket.donors.add(donor)
        yield (
            campaign_id,
            EntrySource.STRIPE.value,
            f"pi_{prefix}_{i:08d}",
            EntryKind.PAYMENT.value,
            amount,
            "USD",
            at,
            key,
            donor,
            None,
            created,
        )


def _chunks(rows: Iterator[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def seed_campaign(
    url: str,
    entries: int,
    *,
    slug: str = "bench",
    period: PeriodKind = PeriodKind.NONE,
    timezone: str = "UTC",
    seed: int = 20261128,
    verify: bool = True,
    analyze: bool = True,
) -> Seeded:
    """Create an active USD campaign ``slug`` with ``entries`` ledger entries, in bulk.

    ``record_entry`` is far too slow for a million rows one by one, so the rows go
    in directly (PostgreSQL ``COPY``, SQLite ``executemany``) while the totals are
    folded in Python; the ``period_totals``, ``period_donors`` and ``daily_totals``
    rows (what the admin's pages read) are then written from that fold, in the
    same transaction, so ``check-totals`` finds nothing to repair. The tier ladder is scaled to
    ``entries`` so the campaign is about half-way to its top tier.

    :param verify: recompute the totals from the ledger with ``check_totals``, and
        the per-day rows with ``check_daily_totals`` up to :data:`DAILY_CHECK_LIMIT` entries.
    :param analyze: ``ANALYZE`` the database afterwards (``VACUUM ANALYZE`` on
        PostgreSQL); a caller seeding many campaigns passes False and runs it once
        at the end.
    :raise BenchError: if the stored totals drift from the ledger.
    """
    began = time.perf_counter()
    rng = random.Random(seed)
    database = Database(url)
    try:
        with database.session() as session:
            campaign = create_campaign(
                session,
                CampaignSpec(
                    slug=slug,
                    title=f"Benchmark campaign ({entries:,} entries)",
                    currency="USD",
                    # Mean payment ~ 250 $: the second tier is about the amount raised.
                    tiers=[0, max(entries, 1) * 25_000, max(entries, 1) * 50_000],
                    period=period,
                    timezone=timezone,
                ),
            )
            session.commit()
            campaign_id = campaign.id

        totals: dict[str, _Bucket] = {}
        days: dict[str, list[int]] = {}
        rows = _entries(
            campaign_id,
            entries,
            prefix=slug,
            period=period,
            timezone=timezone,
            rng=rng,
            totals=totals,
            days=days,
        )
        stamp = utcnow()
        with database.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                raw = cast("psycopg.Connection[Any]", conn.connection.dbapi_connection)
                with raw.cursor() as cursor:
                    copy_sql = f"COPY ledger_entries ({', '.join(_LEDGER_COLUMNS)}) FROM STDIN"
                    with cursor.copy(copy_sql) as copy:
                        for row in rows:
                            copy.write_row(row)
            else:
                # The raw driver with the columns' own bind processors (the stored text
                # of an instant is SQLAlchemy's): SQLAlchemy's per-row work was most of
                # the seed. One transaction in WAL mode: one fsync, at the commit.
                table = cast(Table, LedgerEntry.__table__)
                binds = [
                    table.c[name].type.bind_processor(conn.dialect) for name in _LEDGER_COLUMNS
                ]
                # Its own name: ``cursor`` above is psycopg's, typed as such.
                lite = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                marks = ", ".join("?" * len(_LEDGER_COLUMNS))
                columns = ", ".join(_LEDGER_COLUMNS)
                sql = f"INSERT INTO ledger_entries ({columns}) VALUES ({marks})"  # noqa: S608
                for chunk in _chunks(rows, 50_000):
                    lite.executemany(
                        sql,
                        [
                            tuple(
                                b(v) if b is not None else v for b, v in zip(binds, r, strict=True)
                            )
                            for r in chunk
                        ],
                    )
            donor_rows = [
                (campaign_id, key, donor)
                for key, bucket in totals.items()
                for donor in bucket.donors
            ]
            if conn.dialect.name == "postgresql":
                # COPY: executemany of a quarter of a million rows took most of the seed.
                with raw.cursor() as cursor:
                    copy_sql = "COPY period_donors (campaign_id, period_key, donor_key) FROM STDIN"
                    with cursor.copy(copy_sql) as copy:
                        for donor_row in donor_rows:
                            copy.write_row(donor_row)
            else:
                for begin in range(0, len(donor_rows), 50_000):
                    conn.execute(
                        insert(cast(Table, PeriodDonor.__table__)),
                        [
                            {"campaign_id": c, "period_key": k, "donor_key": d}
                            for c, k, d in donor_rows[begin : begin + 50_000]
                        ],
                    )
            if totals:
                conn.execute(
                    insert(cast(Table, PeriodTotal.__table__)),
                    [
                        {
                            "campaign_id": campaign_id,
                            "period_key": key,
                            "raised": bucket.raised,
                            "payments": bucket.payments,
                            "donors": len(bucket.donors),
                            "version": bucket.entries,  # record_entry bumps it per entry
                            "updated_at": stamp,
                        }
                        for key, bucket in totals.items()
                    ],
                )
            if days:
                conn.execute(
                    insert(cast(Table, DailyTotal.__table__)),
                    [
                        {
                            "campaign_id": campaign_id,
                            "day": day,
                            "raised": row[0],
                            "payments": row[1],
                            "gross": row[2],
                            "refunded": row[3],
                            "disputed": row[4],
                        }
                        for day, row in days.items()
                    ],
                )
        if analyze:
            # What autovacuum / a DBA would have done on a real database of this size:
            # on PostgreSQL that includes VACUUM, whose visibility map lets an index-only
            # scan skip the table (autovacuum runs it after enough inserts since 13).
            with database.engine.connect() as conn:
                if database.dialect == "postgresql":
                    # VACUUM refuses to run inside a transaction block.
                    conn.execution_options(isolation_level="AUTOCOMMIT")
                    conn.exec_driver_sql("VACUUM ANALYZE")
                else:
                    conn.exec_driver_sql("ANALYZE")
                    conn.commit()
        if verify:
            with database.session(write=False) as session:
                drifts: list[Drift | DailyDrift] = [*check_totals(session)]
                if entries <= DAILY_CHECK_LIMIT:
                    drifts += check_daily_totals(session)
            if drifts:
                described = "; ".join(d.describe() for d in drifts[:5])
                raise BenchError(f"seeded totals drift from the ledger: {described}")
    finally:
        database.dispose()
    return Seeded(
        slug=slug,
        campaign_id=campaign_id,
        entries=entries,
        raised=sum(b.raised for b in totals.values()),
        payments=sum(b.payments for b in totals.values()),
        donors=sum(len(b.donors) for b in totals.values()),
        periods=len(totals),
        seconds=time.perf_counter() - began,
    )


# --------------------------------------------------------------------------- gunicorn


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def need(program: str) -> str:
    """The path of ``program`` (also looked for in /usr/sbin, where Debian puts nginx).

    :raise BenchError: naming the Debian package when it is not installed.
    """
    path = shutil.which(program) or (
        f"/usr/sbin/{program}" if Path(f"/usr/sbin/{program}").exists() else None
    )
    if path is None:
        raise BenchError(f"{program} is not installed (Debian/Ubuntu: apt-get install {program})")
    return path


def pinned(cpu: str | None, command: list[str]) -> list[str]:
    """``command`` run on the CPUs ``cpu`` lists (``taskset -c``), or unchanged without one.

    Pinning the servers and wrk to different CPUs keeps them from taking turns
    on the same core, which is most of the noise of a 2-core machine.
    """
    return [need("taskset"), "-c", cpu, *command] if cpu else command


@dataclass(frozen=True, slots=True)
class Server:
    """A running gunicorn: its base URL and its log file."""

    base_url: str
    pid: int
    log: Path

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` on this server."""
        return self.base_url + path

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by gunicorn's master and workers.

        Contention from other processes on the machine lowers requests/s but
        hardly changes CPU time per request, so the delta over a run divided by
        its requests is a steadier measure of what a route costs the server.
        Linux only (``/proc``); NaN elsewhere.
        """
        return sum(_cpu_seconds(pid) for pid in (self.pid, *_children(self.pid)))


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def _cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan")
    # Fields after the parenthesised command name; utime and stime are 14th and 15th.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def app_environment(database_url: str, **extra: str) -> dict[str, str]:
    """The process environment for the app: ours, without the caller's ``TRACKER_*``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    env.update(
        TRACKER_DATABASE_URL=database_url,
        TRACKER_SECRET_KEY=secrets.token_urlsafe(48),
        PYTHONUNBUFFERED="1",
    )
    env.update({f"TRACKER_{k}" if not k.startswith("TRACKER_") else k: v for k, v in extra.items()})
    return env


@contextlib.contextmanager
def gunicorn_server(
    database_url: str,
    *,
    workers: int = 2,
    worker_class: str = "sync",
    threads: int = 1,
    ready_path: str = "/livez",
    start_timeout: float = START_TIMEOUT,
    env: dict[str, str] | None = None,
    cpu: str | None = None,
    app: str = "wsgi:app",
) -> Iterator[Server]:
    """Run ``gunicorn wsgi:app`` (or ``app``) on a free loopback port until the block ends.

    Waits until ``ready_path`` answers 200. The server runs in its own process
    group, is stopped with SIGTERM and, if it lingers, SIGKILL.

    :param env: extra settings, e.g. ``{"API_CACHE_SECONDS": "1"}`` (``TRACKER_`` added).
    :param cpu: CPUs to run on (see :func:`pinned`); default any.
    :raise BenchError: if gunicorn exits or does not answer within ``start_timeout``.
    """
    logdir = Path(tempfile.mkdtemp(prefix="tracker_bench_gunicorn_"))
    log = logdir / "gunicorn.log"
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        worker_class,
        "--threads",
        str(threads),
        "--chdir",
        str(ROOT),
        "--error-logfile",
        str(log),
        "--log-level",
        "warning",
        app,
    ]
    base = f"http://127.0.0.1:{port}"
    try:
        with serving(
            pinned(cpu, command),
            base + ready_path,
            log,
            env=app_environment(database_url, **(env or {})),
            start_timeout=start_timeout,
            name="gunicorn",
        ) as process:
            yield Server(base, process.pid, log)
    finally:
        shutil.rmtree(logdir, ignore_errors=True)


@contextlib.contextmanager
def serving(
    command: list[str],
    ready_url: str,
    log: Path,
    *,
    env: dict[str, str] | None = None,
    start_timeout: float = START_TIMEOUT,
    name: str = "the server",
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server ``command`` (output appended to ``log``) until the block ends.

    Waits until ``ready_url`` answers 200. The server runs in its own process
    group, is stopped with SIGTERM and, if it lingers, SIGKILL.

    :raise BenchError: if it exits or does not answer within ``start_timeout``.
    """
    with open(log, "ab") as handle:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_ready(process, ready_url, start_timeout, log, name)
        yield process
    finally:
        _stop(process)


def _wait_ready(
    process: subprocess.Popen[bytes], url: str, timeout: float, log: Path, name: str
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{name} exited with {process.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise BenchError(f"{name} did not answer {url} within {timeout:.0f} s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


# --------------------------------------------------------------------------- wrk


@dataclass(frozen=True, slots=True)
class WrkResult:
    """One ``wrk`` run: throughput, latency percentiles (ms), and anything that went wrong."""

    url: str
    rps: float
    requests: int
    latency_p50_ms: float
    latency_p99_ms: float
    errors: int
    non_2xx: int
    # Server CPU time per request in microseconds, when run_wrk was given a CPU clock.
    cpu_us_per_request: float = float("nan")


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise BenchError(f"cannot read wrk latency {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(url: str, output: str) -> WrkResult:
    """Read ``wrk --latency`` output.

    :raise BenchError: if the output has no throughput line.
    """
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    if not rps or not total:
        raise BenchError(f"unexpected wrk output:\n{output}")
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", output, flags=re.MULTILINE))
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = sum(int(g) for g in socket_errors.groups()) if socket_errors else 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkResult(
        url=url,
        rps=float(rps.group(1)),
        requests=int(total.group(1)),
        latency_p50_ms=_ms(percentiles["50"]) if "50" in percentiles else float("nan"),
        latency_p99_ms=_ms(percentiles["99"]) if "99" in percentiles else float("nan"),
        errors=errors,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


def run_wrk(
    url: str,
    *,
    duration: float = 5.0,
    connections: int = 8,
    threads: int = 1,
    timeout: float = 2.0,
    cpu_clock: Callable[[], float] | None = None,
    script: Path | None = None,
    script_args: Sequence[str] = (),
    cpu: str | None = None,
    headers: Sequence[str] = (),
) -> WrkResult:
    """Load ``url`` (loopback only) with ``wrk`` for ``duration`` seconds and parse the result.

    :param cpu_clock: e.g. :meth:`Server.cpu_seconds`; read before and after the run
        to fill :attr:`WrkResult.cpu_us_per_request`.
    :param script: a wrk Lua script (``-s``), e.g. one that POSTs prepared requests;
        ``script_args`` are passed to its ``init``.
    :param cpu: CPUs for wrk (see :func:`pinned`).
    :param headers: extra request headers (``"Cookie: session=..."``), sent on every request.

    :raise BenchError: for a non-loopback URL, a missing ``wrk``, a hang, or a failed run.
    """
    if not url.startswith(("http://127.0.0.1:", "http://[::1]:", "http://localhost:")):
        raise BenchError(f"benchmarks target the loopback interface only, not {url}")
    seconds = max(1, round(duration))
    command = [
        need("wrk"),
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={seconds}s",
        f"--timeout={timeout:g}s",
        "--latency",
    ]
    for header in headers:
        command += ["--header", header]
    if script is not None:
        command += ["--script", str(script)]
    command.append(url)
    if script_args:
        command += ["--", *script_args]
    cpu_before = cpu_clock() if cpu_clock else float("nan")
    try:
        done = subprocess.run(
            pinned(cpu, command), capture_output=True, text=True, timeout=seconds + 30, check=False
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish within {seconds + 30} s") from None
    cpu_used = (cpu_clock() if cpu_clock else float("nan")) - cpu_before
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    result = parse_wrk(url, done.stdout)
    if result.requests:
        result = dataclasses.replace(
            result, cpu_us_per_request=cpu_used / result.requests * 1_000_000
        )
    return result


# What one run of an interleaved target gives back (a wrk result, a CPU time).
R = TypeVar("R")


def interleave(targets: Mapping[str, Callable[[], R]], rounds: int) -> dict[str, list[R]]:
    """Run every target ``rounds`` times, alternating the order (A B, B A, A B ...).

    Reversing the order each round cancels a linear drift of the machine (a
    neighbour's load ramping up or down) instead of charging it to one target.
    """
    names = list(targets)
    results: dict[str, list[R]] = {name: [] for name in names}
    for round_no in range(rounds):
        order = names if round_no % 2 == 0 else list(reversed(names))
        for name in order:
            results[name].append(targets[name]())
    return results


def median(values: Sequence[float]) -> float:
    """The median of ``values`` (NaN for none)."""
    return statistics.median(values) if values else float("nan")


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    """The first and third quartiles of ``values`` (both the value itself for one)."""
    if len(values) < 2:
        only = values[0] if values else float("nan")
        return only, only
    q1, _q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3
