"""The admin's pages are flat in the ledger's size: ``python bench/admin.py``.

For each database, two fresh databases are seeded at once (by default 10,000
and 1,000,000 ledger entries, one campaign each, monthly periods in
Europe/Paris) and served by two gunicorns side by side; an owner signs in to
each. Then ``wrk`` loads, interleaved (A B ..., then reversed) across *both*
servers, ``/livez`` and six admin pages:

- the dashboard, the campaign page with its chart,
- the first and the 100th ledger page, unfiltered and filtered
  (``kind=payment&min=100``); the 100th page is reached by following each
  page's "Older" link, as a person would.

Figures (p50 latency of each run, median over the rounds):

- **flatness**: each page's p50 at the large size over its own at the small
  size, target ≤ 1.2x;
- **against /livez**: each page's p50 over ``/livez``'s on the same server in
  the same run, target ≤ 15x (the worse of the two sizes is reported);
- **CSV export** of the whole large ledger: rows per second, and the peak
  growth of the gunicorn workers' resident memory while it streams (sampled
  from ``/proc`` every 20 ms, plus ``VmHWM``), target under 50 MB.

Latency, not throughput: ``wrk`` uses as many connections as gunicorn has
workers, so a request rarely waits for another and p50 is the page's own cost.

    python bench/admin.py                        # both databases, 10k and 1M, ~15 minutes
    python bench/admin.py --quick                # 10k and 100k, short rounds, ~4 minutes
    python bench/admin.py --db sqlite --sizes 10000,1000000 --json results.json

Exit status 1 when a figure misses its target.
"""

from __future__ import annotations

import argparse
import contextlib
import http.cookiejar
import json
import os
import re
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script (``python bench/admin.py``): make ``bench`` importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness
from tracker.db import Database
from tracker.domain.periods import PeriodKind
from tracker.models import AdminRole
from tracker.services.admins import save_admin

EMAIL = "bench-admin@example.org"
PASSWORD = "bench-password-not-secret"
SLUG = "bench"
FILTER = "kind=payment&min=100"
PAGES = (
    "dashboard",
    "campaign",
    "ledger p1",
    "ledger p100",
    "ledger p1 filtered",
    "ledger p100 filtered",
)
FLAT_TARGET = 1.2
LIVEZ_TARGET = 15.0
MEMORY_TARGET_MB = 50.0
# gunicorn's worker timeout in this benchmark (seconds), for the whole-ledger export.
EXPORT_TIMEOUT = 600


@dataclass(frozen=True, slots=True)
class Site:
    """One seeded database served by one gunicorn, signed in."""

    entries: int
    server: harness.Server
    cookie: str
    paths: dict[str, str]  # route name -> path


def _opener() -> tuple[urllib.request.OpenerDirector, http.cookiejar.CookieJar]:
    jar = http.cookiejar.CookieJar()

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect()), jar


def sign_in(server: harness.Server) -> str:
    """Sign in as the bench owner through the real form; the ``Cookie`` header value.

    :raise harness.BenchError: if the sign-in does not answer 303 with a session.
    """
    opener, jar = _opener()
    with opener.open(server.url("/admin/login"), timeout=30) as response:
        page = response.read().decode()
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', page
    )
    if not match:
        raise harness.BenchError("no CSRF token on the sign-in page")
    form = urllib.parse.urlencode(
        {"email": EMAIL, "password": PASSWORD, "csrf_token": match.group(1)}
    ).encode()
    try:
        opener.open(server.url("/admin/login"), data=form, timeout=30)
    except urllib.error.HTTPError as exc:
        if exc.code != 303:
            raise harness.BenchError(f"sign-in answered {exc.code}") from None
    cookies = "; ".join(f"{c.name}={c.value}" for c in jar)
    if not cookies:
        raise harness.BenchError("sign-in set no session cookie")
    return cookies


def get(server: harness.Server, path: str, cookie: str) -> str:
    """The body of ``path`` signed in.

    :raise harness.BenchError: unless it answers 200.
    """
    request = urllib.request.Request(server.url(path), headers={"Cookie": cookie})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as exc:
        raise harness.BenchError(f"{path} answered {exc.code}") from None


def hundredth_page(server: harness.Server, cookie: str, first: str) -> str:
    """The path of the 100th ledger page, reached by following "Older" links from ``first``.

    :raise harness.BenchError: if the ledger ends before (seed more entries).
    """
    path = first
    for page in range(1, 100):
        body = get(server, path, cookie)
        link = re.search(r'<a rel="next" href="([^"]+)"', body)
        if not link:
            raise harness.BenchError(f"{first}: no page after page {page}")
        path = link.group(1).replace("&amp;", "&")
    body = get(server, path, cookie)
    if body.count("<tr") < 51:  # header row + 50 entries
        raise harness.BenchError(f"{path}: fewer than 50 entries on page 100")
    return path


def prepare(server: harness.Server, entries: int) -> Site:
    """Sign in, check every page answers, find the 100th pages."""
    cookie = sign_in(server)
    base = f"/admin/campaigns/{SLUG}"
    paths = {
        "livez": "/livez",
        "dashboard": "/admin/",
        "campaign": base,
        "ledger p1": f"{base}/ledger",
        "ledger p1 filtered": f"{base}/ledger?{FILTER}",
    }
    for path in paths.values():
        get(server, path, cookie)
    if "<svg" not in get(server, base, cookie):
        raise harness.BenchError("the campaign page has no chart")
    paths["ledger p100"] = hundredth_page(server, cookie, paths["ledger p1"])
    paths["ledger p100 filtered"] = hundredth_page(server, cookie, paths["ledger p1 filtered"])
    return Site(entries, server, cookie, paths)


@contextlib.contextmanager
def site(kind: str, entries: int, workers: int) -> Iterator[Site]:
    """A fresh database of ``kind`` seeded with ``entries``, served and signed in."""
    with harness.fresh_database(kind) as url:
        began = time.perf_counter()
        seeded = harness.seed_campaign(
            url, entries, slug=SLUG, period=PeriodKind.MONTH, timezone="Europe/Paris"
        )
        database = Database(url)
        try:
            with database.session() as session:
                save_admin(session, EMAIL, PASSWORD, role=AdminRole.OWNER, actor="bench")
                session.commit()
        finally:
            database.dispose()
        print(
            f"bench: {kind} {entries:,} entries seeded and verified in "
            f"{time.perf_counter() - began:.1f} s ({seeded.periods} periods)",
            file=sys.stderr,
            flush=True,
        )
        with harness.gunicorn_server(url, workers=workers) as server:
            yield prepare(server, entries)


# --------------------------------------------------------------------------- memory


def _status_kb(pid: int, field: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(rf"^{field}:\s+(\d+) kB", text, flags=re.MULTILINE)
    return int(match.group(1)) if match else 0


def _workers(server: harness.Server) -> list[int]:
    return harness._children(server.pid)


def csv_export(one: Site) -> dict[str, Any]:
    """Download the whole ledger as CSV; rows/s and the workers' peak RSS growth (MB)."""
    path = f"/admin/campaigns/{SLUG}/ledger.csv"
    # Warm every worker's CSV path (imports, the first query) on a tiny export.
    for _ in range(4):
        get(one.server, f"{path}?kind=refund&min=1000000", one.cookie)
    pids = _workers(one.server)
    before = {pid: _status_kb(pid, "VmRSS") for pid in pids}
    hwm_before = {pid: _status_kb(pid, "VmHWM") for pid in pids}
    peak = dict(before)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for pid in pids:
                peak[pid] = max(peak[pid], _status_kb(pid, "VmRSS"))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    request = urllib.request.Request(one.server.url(path), headers={"Cookie": one.cookie})
    lines = 0
    size = 0
    began = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=1800) as response:
            while chunk := response.read(1 << 16):
                lines += chunk.count(b"\n")
                size += len(chunk)
    finally:
        done.set()
        sampler.join()
    seconds = time.perf_counter() - began
    rows = lines - 1  # the header
    if rows != one.entries:
        raise harness.BenchError(f"the CSV has {rows:,} rows, the ledger {one.entries:,}")
    growth_kb = 0
    for pid in pids:
        hwm = _status_kb(pid, "VmHWM")
        top = max(peak[pid], hwm if hwm > hwm_before[pid] else 0)
        growth_kb = max(growth_kb, top - before[pid])
    return {
        "rows": rows,
        "megabytes": round(size / 1e6, 1),
        "seconds": round(seconds, 1),
        "rows_per_s": round(rows / seconds),
        "rss_growth_mb": round(growth_kb / 1024, 1),
        "rss_before_mb": round(max(before.values()) / 1024, 1),
    }


# --------------------------------------------------------------------------- load


def measure(
    kind: str, small: Site, large: Site, *, rounds: int, duration: float, connections: int
) -> list[dict[str, Any]]:
    """Interleave every route of both sites; one row per admin page."""
    targets = {
        f"{s.entries}|{route}": (
            lambda s=s, path=path: harness.run_wrk(
                s.server.url(path),
                duration=duration,
                connections=connections,
                headers=[f"Cookie: {s.cookie}"],
                timeout=10,
            )
        )
        for s in (small, large)
        for route, path in s.paths.items()
    }
    # One second of each first: imports, compiled templates, pools, Babel data.
    for s in (small, large):
        for path in s.paths.values():
            harness.run_wrk(
                s.server.url(path),
                duration=1,
                connections=connections,
                headers=[f"Cookie: {s.cookie}"],
                timeout=10,
            )
    runs = harness.interleave(targets, rounds)
    for name, results in runs.items():
        bad = sum(r.errors + r.non_2xx for r in results)
        if bad:
            raise harness.BenchError(f"{kind} {name}: {bad} errors or non-2xx answers")

    def p50(s: Site, route: str) -> float:
        return harness.median([r.latency_p50_ms for r in runs[f"{s.entries}|{route}"]])

    rows = []
    for route in PAGES:
        small_ms, large_ms = p50(small, route), p50(large, route)
        livez_small, livez_large = p50(small, "livez"), p50(large, "livez")
        rows.append(
            {
                "db": kind,
                "page": route,
                "small": small.entries,
                "large": large.entries,
                "p50_small_ms": round(small_ms, 2),
                "p50_large_ms": round(large_ms, 2),
                "flat": round(large_ms / small_ms, 3),
                # The same, each side over its own server's /livez: what is left
                # when the two servers' own speed (CPU share, cache) differs.
                "flat_vs_livez": round((large_ms / livez_large) / (small_ms / livez_small), 3),
                "livez_small_ms": round(livez_small, 2),
                "livez_large_ms": round(livez_large, 2),
                "vs_livez_small": round(small_ms / livez_small, 2),
                "vs_livez_large": round(large_ms / livez_large, 2),
                "rounds_large_ms": " ".join(
                    f"{r.latency_p50_ms:.1f}" for r in runs[f"{large.entries}|{route}"]
                ),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the tables (and ``--json``); 1 if a figure misses."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=",".join(harness.DATABASES))
    parser.add_argument("--sizes", default="10000,1000000", help="small,large")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per wrk run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="10k and 100k, 3 rounds of 1 s")
    parser.add_argument("--no-csv", action="store_true", help="skip the CSV export")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args(argv)
    # The finally blocks (databases, servers) also run on SIGTERM.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(143))
    # A sync worker streaming a million-row CSV does not heartbeat: above the
    # default 30 s gunicorn kills it mid-download (docs/admin.md says so).
    os.environ["GUNICORN_CMD_ARGS"] = f"--timeout {EXPORT_TIMEOUT}"
    if options.quick:
        options.sizes, options.rounds, options.duration = "10000,100000", 3, 1.0
    small_n, large_n = (int(n) for n in options.sizes.split(","))
    pages: list[dict[str, Any]] = []
    exports: list[dict[str, Any]] = []
    try:
        for kind in options.db.split(","):
            with (
                site(kind, small_n, options.workers) as small,
                site(kind, large_n, options.workers) as large,
            ):
                rows = measure(
                    kind,
                    small,
                    large,
                    rounds=options.rounds,
                    duration=options.duration,
                    connections=options.workers,
                )
                pages += rows
                for row in rows:
                    print(json.dumps(row), flush=True)
                if not options.no_csv:
                    export = {"db": kind, "entries": large_n, **csv_export(large)}
                    exports.append(export)
                    print(json.dumps(export), flush=True)
    except harness.BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    ok = all(
        r["flat"] <= FLAT_TARGET and max(r["vs_livez_small"], r["vs_livez_large"]) <= LIVEZ_TARGET
        for r in pages
    ) and all(e["rss_growth_mb"] < MEMORY_TARGET_MB for e in exports)
    print(report(pages, exports), file=sys.stderr)
    if options.json:
        options.json.write_text(json.dumps({"pages": pages, "csv": exports}, indent=2))
    return 0 if ok else 1


def report(pages: list[dict[str, Any]], exports: list[dict[str, Any]]) -> str:
    """The Markdown tables of the README."""
    lines = [
        "| database | page | p50 small (ms) | p50 large (ms) | large / small | "
        "same, each over its /livez | /livez p50 small / large (ms) | page / livez small / large |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in pages:
        lines.append(
            f"| {r['db']} | {r['page']} | {r['p50_small_ms']:.1f} | {r['p50_large_ms']:.1f} "
            f"| **{r['flat']:.2f}×** | {r['flat_vs_livez']:.2f}× "
            f"| {r['livez_small_ms']:.2f} / {r['livez_large_ms']:.2f} "
            f"| **{r['vs_livez_small']:.1f}×** / **{r['vs_livez_large']:.1f}×** |"
        )
    if exports:
        lines += [
            "",
            "| database | CSV rows | MB | seconds | rows/s | worker RSS growth (MB) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for e in exports:
            lines.append(
                f"| {e['db']} | {e['rows']:,} | {e['megabytes']} | {e['seconds']} "
                f"| {e['rows_per_s']:,} | **{e['rss_growth_mb']}** |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
