"""Helpers of bench/embed.py: a million ledger entries seeded inside PostgreSQL,
and nginx caching the app per its Cache-Control. Databases, gunicorn and wrk
come from :mod:`harness`, shared by every benchmark here.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from string import Template

from sqlalchemy import text

from bench import harness as h
from tracker.db import Database
from tracker.services.campaigns import CampaignSpec, create_campaign

ROOT = h.ROOT
SLUG = "bench"


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


@contextmanager
def nginx(upstream: str, static: dict[str, bytes], cpu: str | None = None) -> Iterator[str]:
    """nginx caching ``upstream`` per its Cache-Control, and serving ``static`` files."""
    binary = h.need("nginx")
    port = h.free_port()
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
        origin = f"http://127.0.0.1:{port}"
        ready = f"{origin}/static/{next(iter(static))}"
        with h.serving(h.pinned(cpu, args), ready, prefix / "nginx.out", name="nginx"):
            yield origin
    finally:
        shutil.rmtree(prefix, ignore_errors=True)
