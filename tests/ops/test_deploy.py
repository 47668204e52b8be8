"""The files in deploy/: gunicorn's settings, the systemd units, the nginx site.

Each is checked by the tool that reads it (gunicorn, ``systemd-analyze
verify``, ``nginx -t``), and the nginx site then serves the app, run by
gunicorn with deploy/gunicorn.conf.py, over TLS on loopback ports.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import runpy
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench import harness
from tests.conftest import make_app, missing_service

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
HOST = "tracker.example.org"
GUNICORN_CONF = "deploy/gunicorn.conf.py"
FORM = "application/x-www-form-urlencoded"
# nginx's $upstream_cache_status for an answer from its cache: a hit, or (on a slow
# machine, past max-age=2) a stale copy while it refreshes, or a revalidated one.
FROM_CACHE = {"HIT", "STALE", "UPDATING", "REVALIDATED"}
TOKEN = "metrics-token-" + "m" * 32


def _program(name: str) -> str:
    try:
        return harness.need(name)
    except harness.BenchError as exc:
        missing_service(name, str(exc))
        raise  # unreachable: missing_service fails or skips


# --------------------------------------------------------------------------- gunicorn


def _gunicorn_settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, object]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))


def test_gunicorn_timeout_covers_a_donor_waiting_on_stripe(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prometheus"))
    default = _gunicorn_settings(monkeypatch)
    # Three 8 s attempts and stripe-python's back-off (at most 2 s each) fit inside it.
    assert default["timeout"] == 30
    assert default["graceful_timeout"] == default["timeout"]
    assert default["worker_class"] == "sync"
    slow = _gunicorn_settings(monkeypatch, TRACKER_STRIPE_TIMEOUT="15")
    assert isinstance(slow["timeout"], int) and slow["timeout"] > 3 * 15 + 2 * 2
    assert slow["graceful_timeout"] == slow["timeout"]
    workers = _gunicorn_settings(monkeypatch, GUNICORN_WORKERS="3")["workers"]
    assert workers == 3
    assert default["workers"] == 2 * (os.cpu_count() or 1) + 1


def test_gunicorn_accepts_the_settings(tmp_path: Path) -> None:
    env = {
        **harness.app_environment(f"sqlite:///{tmp_path / 'db.sqlite3'}"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        "TRACKER_LOG_FORMAT": "json",
    }
    done = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--check-config", "-c", GUNICORN_CONF, "wsgi:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --------------------------------------------------------------------------- systemd

UNITS = ("tracker-web.service", "tracker-scheduler.service")


@pytest.fixture
def units(tmp_path: Path) -> list[Path]:
    """The units, with the virtualenv moved to ``tmp_path`` where stand-in programs exist.

    ``systemd-analyze verify`` checks that each command is an executable file.
    """
    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    for program in ("gunicorn", "flask"):
        (venv / program).write_text("#!/bin/sh\n")
        (venv / program).chmod(0o755)
    copies = []
    for name in UNITS:
        text = (DEPLOY / "systemd" / name).read_text()
        assert "/opt/tracker/.venv/bin/" in text
        copy = tmp_path / name
        copy.write_text(text.replace("/opt/tracker/.venv/bin/", f"{venv}/"))
        copies.append(copy)
    return copies


def test_systemd_units_verify_without_a_warning(units: list[Path]) -> None:
    analyze = _program("systemd-analyze")
    done = subprocess.run(
        [analyze, "verify", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Unknown keys and misplaced options are only warnings: any output is a failure.
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    for unit in units:
        text = unit.read_text()
        for option in (
            "User=tracker",
            "EnvironmentFile=/etc/tracker/tracker.env",
            "ProtectSystem=strict",
            "PrivateTmp=true",
            "NoNewPrivileges=true",
            "ReadWritePaths=/var/lib/tracker",
        ):
            assert option in text.splitlines(), (unit.name, option)
        assert re.search(r"^Restart=(on-failure|always)$", text, re.MULTILINE)


def test_systemd_units_are_well_confined(units: list[Path]) -> None:
    analyze = _program("systemd-analyze")
    for unit in units:
        done = subprocess.run(
            [analyze, "security", "--offline=yes", "--no-pager", str(unit)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        match = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout)
        assert match, done.stdout + done.stderr
        # systemd rates 0-10; under 2 is "OK" (a default unit scores 9.6, "UNSAFE").
        assert float(match.group(1)) < 2.0, done.stdout


def test_the_scheduler_unit_runs_the_scheduler_command() -> None:
    text = (DEPLOY / "systemd" / "tracker-scheduler.service").read_text()
    assert "ExecStart=/opt/tracker/.venv/bin/flask --app wsgi tracker scheduler" in text


# --------------------------------------------------------------------------- nginx


@dataclass
class Site:
    """The nginx site under test: its prefix, configuration file and ports."""

    prefix: Path
    conf: Path
    http_port: int
    https_port: int
    cert: Path


def _self_signed(directory: Path) -> Path:
    directory.mkdir()
    subprocess.run(
        [
            *(_program("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-subj", f"/CN={HOST}", "-addext", f"subjectAltName=DNS:{HOST}"),
            *("-keyout", str(directory / "privkey.pem"), "-out", str(directory / "fullchain.pem")),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return directory / "fullchain.pem"


@pytest.fixture
def nginx_prefix() -> Iterator[Path]:
    """A directory nginx's workers can reach (pytest's own are private to root)."""
    prefix = Path(tempfile.mkdtemp(prefix="tracker-test-nginx-"))
    prefix.chmod(0o755)
    yield prefix
    shutil.rmtree(prefix, ignore_errors=True)


def _site(prefix: Path, upstream_port: int) -> Site:
    """deploy/nginx/tracker.conf with its placeholders pointed at ``prefix`` and free ports."""
    cert = _self_signed(prefix / "ssl")
    http_port, https_port = harness.free_port(), harness.free_port()
    text = (DEPLOY / "nginx" / "tracker.conf").read_text()
    for old, new in {
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen [::]:80;": "",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "listen [::]:443 ssl http2;": "",
        "/etc/ssl/tracker/": f"{prefix / 'ssl'}/",
        "/var/cache/nginx/tracker": str(prefix / "cache"),
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{upstream_port};",
    }.items():
        assert old in text, f"placeholder {old!r} is no longer in the site file"
        text = text.replace(old, new)
    (prefix / "tracker.conf").write_text(text)
    conf = prefix / "nginx.conf"
    # What Debian's /etc/nginx/nginx.conf provides around a site, minus the system paths.
    conf.write_text(
        f"worker_processes 1;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log warn;\n"
        "events { worker_connections 256; }\n"
        "http {\n  include /etc/nginx/mime.types;\n  access_log off;\n"
        f"  include {prefix}/tracker.conf;\n}}\n"
    )
    # nginx's workers run as "nobody" under root: let them read it all.
    for path in [prefix, *prefix.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)
    return Site(prefix, conf, http_port, https_port, cert)


def _nginx_args(site: Site) -> list[str]:
    return [_program("nginx"), "-p", str(site.prefix), "-e", str(site.prefix / "error.log")]


def test_nginx_accepts_the_site(nginx_prefix: Path) -> None:
    site = _site(nginx_prefix, harness.free_port())
    done = subprocess.run(
        [*_nginx_args(site), "-t", "-c", str(site.conf)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


class Client:
    """HTTPS requests to the nginx under test, as a browser on ``HOST`` would send them."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.context = ssl.create_default_context(cafile=str(site.cert))
        self.context.check_hostname = False  # the certificate names HOST, we dial 127.0.0.1

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request on a new connection: (status, headers, body)."""
        connection = http.client.HTTPSConnection(
            "127.0.0.1", self.site.https_port, context=self.context, timeout=30
        )
        try:
            connection.request(method, path, body=body, headers={"Host": HOST, **(headers or {})})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()


def _plain_get(
    port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers={"Host": HOST, **(headers or {})})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@contextlib.contextmanager
def _stack(
    db_url: str, tmp_path: Path, prefix: Path, workers: int = 3
) -> Iterator[tuple[int, Site]]:
    """gunicorn (deploy settings, ``workers`` sync workers) and the nginx site in front."""
    app = make_app(db_url)
    assert app.test_cli_runner().invoke(args=["tracker", "demo"]).exit_code == 0
    app.extensions["tracker.db"].dispose()
    port = harness.free_port()
    env = harness.app_environment(
        db_url, TRUSTED_PROXIES="1", METRICS_TOKEN=TOKEN, API_CACHE_SECONDS="0"
    )
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "prometheus")
    command = [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONF]
    command += ["--bind", f"127.0.0.1:{port}", "--workers", str(workers), "wsgi:app"]
    site = _site(prefix, port)
    with (
        harness.serving(
            command, f"http://127.0.0.1:{port}/livez", tmp_path / "gunicorn.log", env=env
        ),
        _nginx(site),
    ):
        yield port, site


@contextlib.contextmanager
def _nginx(site: Site) -> Iterator[None]:
    """nginx in the foreground until the block ends; ready when /livez answers over TLS."""
    process = subprocess.Popen(
        [*_nginx_args(site), "-c", str(site.conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = Client(site)
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (site.prefix / "error.log").read_text()
            with contextlib.suppress(OSError):
                if client.request("GET", "/livez")[0] == 200:
                    break
            assert time.monotonic() < deadline, "nginx did not answer over TLS within 30 s"
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


def _metric(text: str, family: str, **labels: str) -> float:
    """The value of the sample of ``family`` (its ``_count`` for a histogram) with ``labels``."""
    total = 0.0
    found = False
    for metric in text_string_to_metric_families(text):
        if metric.name != family:
            continue
        for sample in metric.samples:
            wanted = family + "_count" if metric.type == "histogram" else sample.name
            if sample.name == wanted and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
                found = True
    assert found, f"no {family} {labels} in the scrape"
    return total


@pytest.mark.slow
def test_the_app_served_through_the_nginx_site(
    db_url: str, tmp_path: Path, nginx_prefix: Path
) -> None:
    with _stack(db_url, tmp_path, nginx_prefix) as (app_port, site):
        client = Client(site)

        # Plain HTTP is sent to HTTPS.
        status, headers, _ = _plain_get(site.http_port, "/api/v1/campaigns/demo")
        assert status == 301
        assert headers["Location"] == f"https://{HOST}/api/v1/campaigns/demo"

        # The progress API through the cache: a miss, then a hit, same bytes.
        status, first_headers, first = client.request("GET", "/api/v1/campaigns/demo")
        assert status == 200, first
        assert json.loads(first)["raised"] == 281100
        assert first_headers["X-Cache-Status"] == "MISS"
        # nginx's $request_id, kept by the app because one proxy is trusted.
        assert re.fullmatch(r"[0-9a-f]{32}", first_headers["X-Request-Id"])
        status, headers, again = client.request("GET", "/api/v1/campaigns/demo")
        assert (status, again) == (200, first)
        assert headers["X-Cache-Status"] in FROM_CACHE
        assert "max-age=63072000" in headers["Strict-Transport-Security"]
        status, headers, _ = client.request("GET", "/campaigns/demo/progress.svg")
        assert status == 200 and headers["X-Cache-Status"] == "MISS"
        svg = client.request("GET", "/campaigns/demo/progress.svg")[1]["X-Cache-Status"]
        assert svg in FROM_CACHE
        # Pages that are not embeds are never cached.
        status, headers, _ = client.request("GET", "/donate/demo")
        assert status == 200 and "X-Cache-Status" not in headers

        # X-Forwarded-Proto and -Host are trusted: snippets name the public HTTPS origin.
        status, _, page = client.request("GET", "/campaigns/demo/embed")
        assert status == 200
        assert f"https://{HOST}/embed.js".encode() in page

        # The webhook body limit is nginx's: 1 MiB, refused before it reaches a worker.
        big = b"{" + b" " * (1024 * 1024 + 10) + b"}"
        status, _, body = client.request(
            "POST", "/webhooks/stripe", big, {"Content-Type": "application/json"}
        )
        assert status == 413 and b"nginx" in body

        # A burst of donate form posts from one address meets nginx's limit: the
        # first eleven (one and a burst of ten) reach the app, then 429 (the zone
        # refills 30 a minute, so a slow machine may let a few more through).
        passed = 0
        for _ in range(40):
            status, _, body = client.request(
                "POST", "/donate/demo", b"amount=5", {"Content-Type": FORM}
            )
            if status == 429 and b"nginx" in body:
                break
            passed += 1
        else:
            pytest.fail("40 posts in a row were never limited")
        assert passed >= 11
        # Reading the page is not limited.
        assert client.request("GET", "/donate/demo")[0] == 200

        # /metrics: the token is required, then every worker's counts are summed
        # (prometheus-client's multiprocess mode): 30 requests on new connections
        # spread over the three workers, and the scrape, served by one of them, has all.
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert client.request("GET", "/metrics")[0] == 401
        status, _, before = client.request("GET", "/metrics", headers=auth)
        assert status == 200, before
        for _ in range(30):
            assert _plain_get(app_port, "/api/v1/campaigns/demo/periods")[0] == 200
        status, _, after = client.request("GET", "/metrics", headers=auth)
        grown = _metric(after.decode(), "tracker_request_duration_seconds", group="api") - _metric(
            before.decode(), "tracker_request_duration_seconds", group="api"
        )
        assert grown == 30
        assert _metric(after.decode(), "tracker_inbox_events", status="failed") == 0
