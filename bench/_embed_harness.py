"""Helpers of bench/embed.py: a PostgreSQL database with a million ledger entries,
gunicorn, nginx and wrk, all on loopback and all stopped at the end.

Self-contained on purpose (the core API benchmark has its own harness); they can
be merged later.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from string import Template

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tracker import migrate  # noqa: E402 -- after the path above
from tracker.db import Database  # noqa: E402
from tracker.services.campaigns import CampaignSpec, create_campaign  # noqa: E402

SLUG = "bench"


def pinned(cpu: str | None, args: list[str]) -> list[str]:
    """``args`` run on the given CPUs (``taskset -c``), or as they are without a CPU list."""
    return [need("taskset"), "-c", cpu, *args] if cpu else args


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def need(program: str) -> str:
    """The path of ``program``, or exit with a message naming the Debian package."""
    path = shutil.which(program) or (
        f"/usr/sbin/{program}" if Path(f"/usr/sbin/{program}").exists() else None
    )
    if path is None:
        raise SystemExit(f"bench: {program} not found (apt-get install {program})")
    return path


@contextmanager
def pg_database(admin_url: str) -> Iterator[str]:
    """A new, migrated PostgreSQL database; dropped on exit."""
    name = f"tracker_bench_embed_{secrets.token_hex(4)}"
    admin = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(admin_url).set(drivername="postgresql+psycopg", database=name)
    rendered = url.render_as_string(hide_password=False)
    try:
        database = Database(rendered)
        migrate.upgrade(database.engine)
        database.dispose()
        yield rendered
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed(url: str, entries: int) -> None:
    """Create campaign ``bench`` with ``entries`` payments, its totals kept consistent.

    Rows are generated inside PostgreSQL (``generate_series``): a million take seconds.
    """
    database = Database(url)
    with database.session() as session:
        campaign = create_campaign(
            session,
            CampaignSpec(
                slug=SLUG,
                title="Benchmark campaign",
                currency="USD",
                tiers=[0, 1_500_000_000, 3_000_000_000],
            ),
        )
        params = {"cid": campaign.id, "n": entries}
        session.execute(
            text(
                "INSERT INTO ledger_entries (campaign_id, source, reference, kind, amount,"
                " currency, occurred_at, period_key, donor_key, created_at)"
                " SELECT :cid, 'offline', 'bench-' || g, 'payment', 100 + (g % 5000), 'USD',"
                " timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second', 'all',"
                " 'email:donor' || (g % 50000) || '@example.org', now()"
                " FROM generate_series(1, :n) AS g"
            ),
            params,
        )
        session.execute(
            text(
                "INSERT INTO period_donors (campaign_id, period_key, donor_key)"
                " SELECT DISTINCT campaign_id, period_key, donor_key FROM ledger_entries"
                " WHERE campaign_id = :cid"
            ),
            params,
        )
        session.execute(
            text(
                "INSERT INTO period_totals (campaign_id, period_key, raised, donors, payments,"
                " version, updated_at)"
                " SELECT :cid, 'all', sum(amount), (SELECT count(*) FROM period_donors"
                " WHERE campaign_id = :cid), count(*), 1, now()"
                " FROM ledger_entries WHERE campaign_id = :cid"
            ),
            params,
        )
        session.commit()
        count = session.scalar(text("SELECT count(*) FROM ledger_entries"))
    database.engine.dispose()
    print(f"bench: seeded {count:,} ledger entries", file=sys.stderr)


def wait_http(url: str, timeout: float = 20) -> None:
    """Wait until ``url`` answers 200."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {url} did not answer within {timeout} s")
        time.sleep(0.2)


@contextmanager
def process(
    args: list[str], env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``args`` for the duration of the block; terminate it (then kill) afterwards."""
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 -- closed below
    proc = subprocess.Popen(
        args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if log:
            out.close()  # type: ignore[union-attr]


@contextmanager
def gunicorn(url: str, workers: int, log: Path, cpu: str | None = None) -> Iterator[str]:
    """gunicorn serving ``wsgi:app`` on ``url``'s database; yields its origin."""
    port = free_port()
    env = {
        **os.environ,
        "TRACKER_DATABASE_URL": url,
        "TRACKER_SECRET_KEY": secrets.token_urlsafe(48),
    }
    # No access log (gunicorn's default): logging would be most of the work measured.
    # Sync workers (gunicorn's default): one connection per request. gthread workers
    # keep connections alive but write headers and body separately, and Nagle's
    # algorithm against wrk's delayed ACKs stalls some responses for 40 ms.
    args = [
        sys.executable, "-m", "gunicorn", "--chdir", str(ROOT), "-w", str(workers),
        "-b", f"127.0.0.1:{port}", "--log-level", "warning", "wsgi:app",
    ]  # fmt: skip
    with process(pinned(cpu, args), env, log):
        origin = f"http://127.0.0.1:{port}"
        wait_http(f"{origin}/livez")
        yield origin


@contextmanager
def nginx(upstream: str, static: dict[str, bytes], cpu: str | None = None) -> Iterator[str]:
    """nginx caching ``upstream`` per its Cache-Control, and serving ``static`` files."""
    binary = need("nginx")
    port = free_port()
    # Its own directory, readable by nginx's workers (they run as "nobody" under root).
    prefix = Path(tempfile.mkdtemp(prefix="tracker-bench-nginx-"))
    try:
        for name, body in static.items():
            path = prefix / "static" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
        (prefix / "cache").mkdir()
        template = Template((ROOT / "bench" / "nginx-embed.conf").read_text())
        # safe_substitute: nginx's own $variables stay as they are.
        config = template.safe_substitute(
            PORT=port, UPSTREAM=upstream.rsplit(":", 1)[1], PREFIX=prefix
        )
        conf = prefix / "nginx.conf"
        conf.write_text(config)
        for path in [prefix, *prefix.rglob("*")]:
            path.chmod(0o777 if path.is_dir() else 0o666)
        args = [binary, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"]
        with process(pinned(cpu, args), log=prefix / "nginx.out"):
            origin = f"http://127.0.0.1:{port}"
            wait_http(f"{origin}/static/{next(iter(static))}")
            yield origin
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


_RPS = re.compile(r"Requests/sec:\s+([0-9.]+)")
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")


def wrk(
    url: str, seconds: int, connections: int, threads: int = 1, cpu: str | None = None
) -> float:
    """Requests per second that wrk measured on ``url`` (a measurement, not money).

    :raise SystemExit: if any response was not 2xx/3xx.
    """
    out = subprocess.run(
        pinned(cpu, [need("wrk"), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", url]),
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    bad = _NON2XX.search(out)
    if bad:
        raise SystemExit(f"bench: {bad.group(1)} error responses from {url}\n{out}")
    match = _RPS.search(out)
    if match is None:
        raise SystemExit(f"bench: cannot read wrk's output for {url}\n{out}")
    return float(match.group(1))
