"""Benchmark: where a webhook's cost is — the endpoint's floor, against ``/livez``.

Serves the real app with a few extra routes (``bench/_floor_app.py``) that each
do part of the webhook's work, and measures them against ``/livez`` and the
real ``POST /webhooks/stripe`` of the same gunicorn, in the same run,
interleaved round after round (medians reported):

- ``verify``: check the signature and parse the event, nothing else;
- ``store``: that, plus the inbox insert and its commit (raw driver);
- ``apply``: the service's statements for a new Payment Link payment through the
  raw driver (psycopg / sqlite3), no ORM, in the issue's two transactions;
- ``apply-once``: the same statements in one transaction;
- ``service``: the real endpoint.

It answers "how fast could the webhook be on this machine, whatever the Python
around the statements": the ``apply`` line is the ceiling for a synchronous
apply with this schema. docs/stripe.md has the figures.

``--in-process`` measures the same routes without gunicorn or wrk, through the
Flask test client in this one process, interleaved in chunks: CPU time per
event of this process (PostgreSQL's backend is not in it) and the database
round trips per event (every statement, ``BEGIN`` and ``COMMIT`` included,
counted on the driver's connections). Both depend far less on the machine's
load than requests per second do.

``--db-path`` leaves Flask out as well and splits what is left, interleaved in
chunks, CPU time per event of this process:

- ``floor``: the floor's statements on the raw driver, in its two transactions;
- ``service``: the service's ``deliver()`` on ``Database.serial_sessions``, as
  the endpoint calls it;
- ``sessions``: only the two write ``Session`` transactions around nothing
  (taken as ``deliver()`` takes them: a pooled connection, the SQLite writers'
  turn, a ``BEGIN`` and a ``COMMIT`` each);
- ``core``: the same two transactions on a SQLAlchemy ``Connection``, no
  ``Session``.

``sessions`` less ``core`` is what running the inbox transactions without a
``Session`` would save at most; the rest of ``service`` less ``floor`` is the
service's statements and handlers. On SQLite it also reports ``turn_us``: the
mean wall time per event that the part holds the writers' turn (the ``flock``
taken just before each write ``BEGIN`` and given back after its ``COMMIT``),
and ``floor_turn_ratio``, the floor's over the part's. SQLite has one writer,
so with several workers that ratio, not the CPU ratio, is what the HTTP
``service`` ÷ ``apply`` figure follows.

``--statements`` times each driver call (every statement, ``BEGIN`` and
``COMMIT``) of the same deliveries, wall clock, per event: the floor's, the
service's, and the floor's again with a fixed piece of plain Python (a walk
over 500 small dicts, about what a handler does between two statements) run
before each call and not timed (``floor-interleaved``). The same SQL runs
slower after other Python has run than in the floor's tight loop: how much of
the service's gap is not its own code.

    .venv/bin/python bench/webhook_floor.py [--db sqlite|postgresql|both] [--seconds 6] [--rounds 3]
    .venv/bin/python bench/webhook_floor.py --in-process [--events 1000] [--rounds 5]
    .venv/bin/python bench/webhook_floor.py --db-path [--events 2000] [--rounds 10]
    .venv/bin/python bench/webhook_floor.py --statements [--events 2000]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import IO, Any
from unittest import mock

import psycopg
from psycopg.pq import Trace
from sqlalchemy import Engine

if __package__ in (None, ""):
    # Run as a script (``python bench/webhook_floor.py``): make ``bench`` importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._webhook_load import database, lua_script, server, signed_events, wrk
from bench.harness import PG_ADMIN_URL, BenchError, WrkResult, interleave

ROUTES = {
    "verify": "/floor/verify",
    "store": "/floor/store",
    "apply": "/floor/apply",
    "apply-once": "/floor/apply-once",
    "service": "/webhooks/stripe",
}


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def _busy(run: Callable[[], WrkResult], into: list[float]) -> WrkResult:
    """Run ``run`` and note how busy the machine's CPUs were meanwhile (0 to 1)."""
    busy0, total0 = _cpu_times()
    result = run()
    busy1, total1 = _cpu_times()
    into.append((busy1 - busy0) / max(1, total1 - total0))
    return result


def measure(
    kind: str, *, rows: int, seconds: int, rounds: int, workers: int, connections: int
) -> list[dict[str, float | str]]:
    """Seed one database, serve the floor app on it, measure every route in turns."""
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tracker-floor-")))
        script = lua_script(tmp)
        url = stack.enter_context(database(kind, rows, PG_ADMIN_URL))
        base = stack.enter_context(server(url, workers, app="bench._floor_app:build()"))
        wrk(f"{base}/livez", seconds=2, threads=2, connections=connections)
        batches = 0

        def deliveries(path: str) -> WrkResult:
            # Every request a new event: a fresh file of signed events per run.
            nonlocal batches
            batches += 1
            events = tmp / f"events-{batches}.tsv"
            signed_events(events, 1500 * seconds)
            return wrk(
                base,
                seconds=seconds,
                threads=2,
                connections=connections,
                script=script,
                args=[str(events), "2", path],
            )

        plain = {
            "livez": partial(
                wrk, f"{base}/livez", seconds=seconds, threads=2, connections=connections
            ),
            **{name: partial(deliveries, path) for name, path in ROUTES.items()},
        }
        busy: dict[str, list[float]] = {name: [] for name in plain}
        targets = {name: partial(_busy, run, busy[name]) for name, run in plain.items()}
        runs = interleave(targets, rounds)
    live = statistics.median(r.rps for r in runs["livez"])
    results: list[dict[str, float | str]] = []
    for name, measured in runs.items():
        rps = statistics.median(r.rps for r in measured)
        results.append(
            {
                "db": kind,
                "entries": rows,
                "route": name,
                "rps": round(rps),
                "ratio": round(rps / live, 3),
                "rps_rounds": " ".join(str(round(r.rps)) for r in measured),
                # Near 1: the CPUs were the limit, not waiting on a disk or a lock.
                "cpu_busy": round(statistics.median(busy[name]), 2),
                "errors": sum(r.non_2xx + r.errors for r in measured),
            }
        )
    return results


class _RoundTrips:
    """Counts what the driver's connections send: statements, ``BEGIN`` and ``COMMIT``.

    Every SQLite connection opened meanwhile reports its statements through
    ``set_trace_callback``; every psycopg connection traces its protocol to a
    file (libpq's ``PQtrace``), read for its ``Sync`` and ``Query`` messages
    (one round trip each).
    """

    def __init__(self) -> None:
        self.sqlite = 0
        self._traces: list[IO[bytes]] = []

    def patches(self) -> list[Any]:
        """The patches of the drivers' ``connect`` that install the counting."""
        sqlite_connect, pg_connect = sqlite3.connect, psycopg.connect

        def on_sqlite(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            conn: sqlite3.Connection = sqlite_connect(*args, **kwargs)
            conn.set_trace_callback(self._statement)
            return conn

        def on_pg(*args: Any, **kwargs: Any) -> psycopg.Connection[Any]:
            conn = pg_connect(*args, **kwargs)
            trace = tempfile.TemporaryFile()  # noqa: SIM115 - kept open with the connection
            self._traces.append(trace)
            conn.pgconn.trace(trace.fileno())
            conn.pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS | Trace.REGRESS_MODE)
            return conn

        # SQLAlchemy calls sqlite3.dbapi2.connect, the floor sqlite3.connect.
        return [
            mock.patch.object(sqlite3, "connect", on_sqlite),
            mock.patch.object(sqlite3.dbapi2, "connect", on_sqlite),
            mock.patch.object(psycopg, "connect", on_pg),
        ]

    def _statement(self, _sql: str) -> None:
        self.sqlite += 1

    def take(self) -> int:
        """The round trips since the last call."""
        count, self.sqlite = self.sqlite, 0
        for trace in self._traces:
            trace.flush()
            trace.seek(0)
            for line in trace.read().split(b"\n"):
                fields = line.split(b"\t")
                if len(fields) > 2 and fields[0] == b"F" and fields[2].split()[0] in _TRIPS:
                    count += 1
            trace.seek(0)
            trace.truncate()
        return count


_TRIPS = (b"Sync", b"Query")


def measure_in_process(
    kind: str, *, rows: int, events: int, rounds: int
) -> list[dict[str, float | str]]:
    """Every route through the Flask test client in this process, interleaved in chunks."""
    counter = _RoundTrips()
    chunk = max(1, events // rounds)
    cpu: dict[str, list[float]] = {name: [] for name in ROUTES}
    wall: dict[str, list[float]] = {name: [] for name in ROUTES}
    trips: dict[str, list[float]] = {name: [] for name in ROUTES}
    with ExitStack() as stack:
        for patch in counter.patches():
            stack.enter_context(patch)  # before any connection is made
        tmp, _url, app = _floor_app_on(stack, kind, rows)
        stack.callback(lambda: app.extensions["floor.raw"].close())
        # The request log would time the terminal, not the route.
        stack.enter_context(
            mock.patch.object(logging.getLogger("tracker.request"), "disabled", True)
        )
        client = app.test_client()
        signed_events(tmp / "events.tsv", (chunk * rounds + 20) * len(ROUTES))
        lines = iter((tmp / "events.tsv").read_text().splitlines())

        def deliver(path: str, count: int) -> tuple[float, float, int]:
            counter.take()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for _ in range(count):
                signature, body = next(lines).split("\t", 1)
                response = client.post(path, data=body, headers={"Stripe-Signature": signature})
                if response.status_code != 200:
                    raise BenchError(f"{path}: {response.status_code} {response.get_data()!r}")
            cpu1, wall1 = time.process_time(), time.perf_counter()
            return (cpu1 - cpu0) / count, (wall1 - wall0) / count, counter.take()

        for path in ROUTES.values():
            deliver(path, 20)  # warm up: imports, connections, prepared statements
        for round_ in range(rounds):
            names = list(ROUTES) if round_ % 2 == 0 else list(reversed(ROUTES))
            for name in names:
                c, w, n = deliver(ROUTES[name], chunk)
                cpu[name].append(c)
                wall[name].append(w)
                trips[name].append(n / chunk)
    floor_cpu = statistics.median(cpu["apply"])
    return [
        {
            "db": kind,
            "mode": "in-process",
            "route": name,
            "cpu_us": round(1e6 * statistics.median(cpu[name])),
            "wall_us": round(1e6 * statistics.median(wall[name])),
            "round_trips": round(statistics.median(trips[name]), 2),
            # The floor's CPU over this route's: the share of the floor it reaches.
            "apply_cpu_ratio": round(floor_cpu / statistics.median(cpu[name]), 3),
        }
        for name in ROUTES
    ]


def _floor_app_on(stack: ExitStack, kind: str, rows: int) -> tuple[Path, str, Any]:
    """A temporary folder, a seeded database and the floor app on it, undone with ``stack``."""
    from bench._floor_app import build
    from bench._webhook_load import SECRET
    from tracker.db import get_database

    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tracker-floor-")))
    url = stack.enter_context(database(kind, rows, PG_ADMIN_URL))
    app = build({"DATABASE_URL": url, "STRIPE_WEBHOOK_SECRET": SECRET})
    stack.callback(get_database(app).dispose)
    return tmp, url, app


def _verified_events(path: Path, count: int) -> Iterator[Any]:
    """``count`` new signed events written to ``path``, each verified as the endpoint would."""
    from bench._webhook_load import SECRET
    from tracker.gateway.webhooks import verify

    signed_events(path, count)
    for line in path.read_text().splitlines():
        signature, body = line.split("\t", 1)
        yield verify(body.encode(), signature, [SECRET])


def measure_db_path(
    kind: str, *, rows: int, events: int, rounds: int
) -> list[dict[str, float | str]]:
    """The floor's and the service's database work, no Flask request, and their transactions."""
    from bench._floor_app import _book, _Raw, _store
    from tracker.db import get_database
    from tracker.services.stripe_events import deliver
    from tracker.services.stripe_events.inbox import _write_turn

    chunk = max(1, events // rounds)
    with ExitStack() as stack:
        tmp, url, app = _floor_app_on(stack, kind, rows)
        db = get_database(app)
        raw = _Raw(url)
        stack.callback(raw.close)
        stack.enter_context(app.app_context())
        parsed = _verified_events(tmp / "events.tsv", (chunk * rounds + 20) * 2)

        def floor() -> None:
            event = next(parsed)
            with raw.transaction() as run:
                _store(raw, run, event)
            with raw.transaction() as run:
                _book(raw, run, event)

        def service() -> None:
            with db.serial_sessions() as factory:
                deliver(factory, next(parsed), livemode=None)

        def sessions() -> None:
            with db.serial_sessions() as factory:
                for _ in range(2):
                    with _write_turn(factory) as session:
                        session.connection()  # the BEGIN (IMMEDIATE on SQLite)
                        session.commit()

        with db.session() as probe:
            write_engine = probe.get_bind()  # the write sessions' engine (BEGIN IMMEDIATE)
        assert isinstance(write_engine, Engine)

        def core() -> None:
            with write_engine.connect() as connection:
                for _ in range(2):
                    connection.begin()
                    connection.commit()

        parts: dict[str, Callable[[], None]] = {
            "floor": floor,
            "service": service,
            "sessions": sessions,
            "core": core,
        }
        for part in parts.values():
            for _ in range(10):  # warm up: connections, prepared statements
                part()

        turn = _TurnClock()
        # After the warm-up: every flock from here on is a part's (the parts alone run).
        stack.enter_context(mock.patch("fcntl.flock", turn.flock))

        def per_event(part: Callable[[], None]) -> tuple[float, float]:
            turn.take()
            cpu0 = time.process_time()
            for _ in range(chunk):
                part()
            return (time.process_time() - cpu0) / chunk, turn.take() / chunk

        runs = interleave({name: partial(per_event, part) for name, part in parts.items()}, rounds)
    cpu = {name: [c for c, _ in values] for name, values in runs.items()}
    # The turn's figure is a mean: SQLite's checkpoints, a few ms each every thousand
    # pages, fall inside it and are part of what the other writers wait for.
    held = {name: statistics.mean(h for _, h in values) for name, values in runs.items()}
    floor_cpu = statistics.median(cpu["floor"])
    results: list[dict[str, float | str]] = []
    for name, times in cpu.items():
        row: dict[str, float | str] = {
            "db": kind,
            "mode": "db-path",
            "part": name,
            "cpu_us": round(1e6 * statistics.median(times), 1),
            "cpu_us_rounds": " ".join(str(round(1e6 * t)) for t in times),
            "floor_cpu_ratio": round(floor_cpu / statistics.median(times), 3),
        }
        if held[name] > 0:  # SQLite, a part that takes the turn (``core`` does not)
            row["turn_us"] = round(1e6 * held[name], 1)
            row["floor_turn_ratio"] = round(held["floor"] / held[name], 3)
        results.append(row)
    return results


class _TurnClock:
    """Wall time the SQLite writers' turn is held: from each ``LOCK_EX`` to its ``LOCK_UN``.

    Stands in for ``fcntl.flock``, which the service's turn (``tracker.db.write_turns``)
    and the floor's both call by that name.
    """

    def __init__(self) -> None:
        self._flock = fcntl.flock
        self._since: float | None = None
        self._held = 0.0

    def flock(self, fd: int, operation: int) -> None:
        """``fcntl.flock``, timed."""
        if operation == fcntl.LOCK_UN and self._since is not None:
            self._held += time.perf_counter() - self._since
            self._since = None
        self._flock(fd, operation)
        if operation == fcntl.LOCK_EX:
            self._since = time.perf_counter()

    def take(self) -> float:
        """Seconds held since the last call."""
        held, self._held = self._held, 0.0
        return held


class _Timed:
    """A raw driver connection whose ``execute`` is timed, each call under its statement."""

    def __init__(self, connection: Any, into: dict[str, float], before: Callable[[], Any]) -> None:
        self._connection = connection
        self._into = into
        self._before = before

    def execute(self, sql: str, params: Any = ()) -> Any:
        self._before()
        start = time.perf_counter()
        try:
            return self._connection.execute(sql, params)
        finally:
            self._into[_statement_key(sql)] += time.perf_counter() - start

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


def _statement_key(sql: str) -> str:
    """What a statement does, alike for the floor's SQL and SQLAlchemy's: verb and table."""
    words = sql.replace("(", " ").replace("\n", " ").split()
    verb = words[0].upper()
    if verb in ("BEGIN", "COMMIT", "ROLLBACK"):
        return verb
    upper = [w.upper() for w in words]
    marker = {"INSERT": "INTO", "UPDATE": "UPDATE", "SELECT": "FROM"}.get(verb)
    table = words[upper.index(marker) + 1] if marker in upper else "?"
    if verb == "SELECT" and "JOIN" in upper:
        table += " + " + words[upper.index("JOIN") + 1]
    return f"{verb} {table}"


_HANDLER_LIKE: list[dict[str, Any]] = [{"id": n, "name": f"row {n}"} for n in range(500)]


def _handler_like_python() -> int:
    # Plain Python between two statements, as a handler runs: it touches memory
    # the driver's tight loop then finds out of the CPU's caches.
    return sum(int(row["id"]) + len(row["name"]) for row in _HANDLER_LIKE)


def measure_statements(kind: str, *, rows: int, events: int) -> list[dict[str, float | str]]:
    """Each driver call of a delivery, per event: the floor's, the service's, interleaved."""
    from collections import defaultdict

    import tracker.db
    from bench._floor_app import _book, _Raw, _store
    from tracker.db import get_database
    from tracker.services.stripe_events import deliver

    if kind != "sqlite":
        raise BenchError("--statements times the driver's calls in this process: SQLite only")
    parts = ("floor", "service", "floor-interleaved")
    spent: dict[str, dict[str, float]] = {part: defaultdict(float) for part in parts}
    with ExitStack() as stack:
        tmp, url, app = _floor_app_on(stack, kind, rows)
        db = get_database(app)
        stack.enter_context(app.app_context())
        raws = {part: _Raw(url) for part in ("floor", "floor-interleaved")}
        for part, raw in raws.items():
            stack.callback(raw.close)
            with raw.transaction():
                pass  # connects
            before = _handler_like_python if part == "floor-interleaved" else (lambda: None)
            raw._conn = _Timed(raw._conn, spent[part], before)
        do_commit = db.engine.dialect.do_commit

        def timed_run(connection: Any, sql: str, params: Any) -> Any:
            # tracker.db.run_on_driver without its error handling (nothing fails
            # here), timing only the driver's execute, as _Timed does for the floor.
            cursor = connection.connection.dbapi_connection.cursor()
            start = time.perf_counter()
            try:
                cursor.execute(sql, params)
            finally:
                spent["service"][_statement_key(sql)] += time.perf_counter() - start
            return cursor

        def timed_commit(dbapi_connection: Any) -> None:
            start = time.perf_counter()
            try:
                do_commit(dbapi_connection)
            finally:
                spent["service"]["COMMIT"] += time.perf_counter() - start

        stack.enter_context(mock.patch.object(tracker.db, "run_on_driver", timed_run))
        stack.enter_context(mock.patch.object(db.engine.dialect, "do_commit", timed_commit))
        parsed = _verified_events(tmp / "events.tsv", (events + 20) * len(parts))

        def one(part: str) -> None:
            event = next(parsed)
            if part == "service":
                with db.serial_sessions() as factory:
                    deliver(factory, event, livemode=None)
                return
            raw = raws[part]
            with raw.transaction() as run:
                _store(raw, run, event)
            with raw.transaction() as run:
                _book(raw, run, event)

        for part in parts:
            for _ in range(20):  # warm up: connections, statement caches
                one(part)
            spent[part].clear()
        chunk = max(1, events // 10)
        for round_ in range(10):  # interleaved in chunks, as --db-path does
            for part in parts if round_ % 2 == 0 else tuple(reversed(parts)):
                for _ in range(chunk):
                    one(part)
    counted = chunk * 10
    keys = sorted({key for part in parts for key in spent[part]})
    results: list[dict[str, float | str]] = []
    for key in [*keys, "all"]:
        row: dict[str, float | str] = {"db": kind, "mode": "statements", "statement": key}
        for part in parts:
            total = sum(spent[part].values()) if key == "all" else spent[part].get(key, 0.0)
            row[f"{part}_us"] = round(1e6 * total / counted, 1)
        floor = float(row["floor_us"])
        row["service_over_floor"] = round(float(row["service_us"]) / floor, 2) if floor else 0.0
        results.append(row)
    return results


def main() -> int:
    """Run the benchmark and print one JSON line per route and database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--in-process", action="store_true", help="test client, no HTTP")
    parser.add_argument("--db-path", action="store_true", help="no Flask: the parts")
    parser.add_argument(
        "--statements", action="store_true", help="each driver call, floor and service"
    )
    parser.add_argument("--events", type=int, default=1000, help="per route, --in-process")
    options = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if options.db == "both" else [options.db]
    if options.statements and options.db == "both":
        kinds = ["sqlite"]  # PostgreSQL's time is in its server, not in the driver's calls
    failed = False
    for kind in kinds:
        try:
            if options.statements:
                results = measure_statements(kind, rows=options.entries, events=options.events)
            elif options.db_path:
                results = measure_db_path(
                    kind, rows=options.entries, events=options.events, rounds=options.rounds
                )
            elif options.in_process:
                results = measure_in_process(
                    kind, rows=options.entries, events=options.events, rounds=options.rounds
                )
            else:
                results = measure(
                    kind,
                    rows=options.entries,
                    seconds=options.seconds,
                    rounds=options.rounds,
                    workers=options.workers,
                    connections=options.connections,
                )
        except BenchError as exc:
            raise SystemExit(f"bench: {exc}") from None
        for result in results:
            print(json.dumps(result), flush=True)
            failed = failed or bool(result.get("errors"))
    if failed:
        print("SOME REQUESTS FAILED: the figures above do not count", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
