"""Start-up configuration: defaults, and one clear line naming a bad variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tracker import create_app
from tracker.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DATABASE_URL", "not a url at all", "TRACKER_DATABASE_URL: not a database URL"),
        ("DATABASE_URL", "mysql://localhost/x", "TRACKER_DATABASE_URL: unsupported database"),
        ("DATABASE_URL", "postgresql://localhost", "names no database"),
        ("SECRET_KEY", "short", "TRACKER_SECRET_KEY: too short"),
        ("DONOR_KEY_SECRET", "short-secret", "TRACKER_DONOR_KEY_SECRET: too short"),
        ("STRIPE_SECRET_KEY", "pk_test_123", "TRACKER_STRIPE_SECRET_KEY: expected a Stripe"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_ok,nope", "TRACKER_STRIPE_WEBHOOK_SECRET"),
        ("STRIPE_API_BASE", "ftp://x", "TRACKER_STRIPE_API_BASE: expected an http"),
        ("STRIPE_TIMEOUT", "0", "TRACKER_STRIPE_TIMEOUT: expected more than 0"),
        ("STRIPE_TIMEOUT", "90", "between 0 and 60"),
        ("SMTP_URL", "mail.example.org", "TRACKER_SMTP_URL"),
        ("SMTP_URL", "smtp://mail.example.org:port", "the port is not a number"),
        ("MAIL_FROM", "nobody", "TRACKER_MAIL_FROM"),
        ("PUBLIC_URL", "example.org", "TRACKER_PUBLIC_URL"),
        ("API_CACHE_SECONDS", "soon", "TRACKER_API_CACHE_SECONDS"),
        ("API_CACHE_SECONDS", "600", "between 0 and 60"),
        ("TRUSTED_PROXIES", "many", "TRACKER_TRUSTED_PROXIES: expected a whole number"),
        ("TRUSTED_PROXIES", "9", "between 0 and 5"),
        ("METRICS_TOKEN", "too-short", "TRACKER_METRICS_TOKEN: expected at least 32"),
        ("METRICS_TOKEN", "x" * 31 + " y", "TRACKER_METRICS_TOKEN"),
        ("LOG_FORMAT", "xml", "TRACKER_LOG_FORMAT: expected one of: text, json"),
        ("ADMIN_IDLE_HOURS", "soon", "TRACKER_ADMIN_IDLE_HOURS: expected a number of hours"),
        ("ADMIN_IDLE_HOURS", "0", "more than 0 and at most 720"),
        ("ADMIN_IDLE_HOURS", "nan", "more than 0 and at most 720"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv("TRACKER_DATABASE_URL", f"sqlite:///{tmp_path}/db.sqlite3")
    monkeypatch.setenv("TRACKER_SECRET_KEY", "k" * 40)
    monkeypatch.setenv(f"TRACKER_{variable}", value)
    with pytest.raises(ConfigError) as caught:
        create_app()
    assert message in str(caught.value)
    # The value itself may be a secret: it is never echoed.
    if len(value) > 6:
        assert value not in str(caught.value)


def test_environment_is_read_at_create_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRACKER_DATABASE_URL", f"sqlite:///{tmp_path}/db.sqlite3")
    monkeypatch.setenv("TRACKER_SECRET_KEY", "k" * 40)
    monkeypatch.setenv("TRACKER_STRIPE_SECRET_KEY", "sk_test_abc")
    monkeypatch.setenv("TRACKER_STRIPE_WEBHOOK_SECRET", "whsec_one, whsec_two")
    monkeypatch.setenv("TRACKER_PUBLIC_URL", "https://donate.example.org/")
    app = create_app()
    assert app.config["STRIPE_WEBHOOK_SECRETS"] == ("whsec_one", "whsec_two")
    assert app.config["PUBLIC_URL"] == "https://donate.example.org"
    assert app.config["SECRET_KEY"] == "k" * 40


def test_defaults_need_no_configuration(tmp_path: Path) -> None:
    app = Flask("probe", instance_path=str(tmp_path / "instance"))
    from tracker import config

    config.load(app, None)
    assert app.config["DATABASE_URL"] == f"sqlite:///{tmp_path}/instance/tracker.sqlite3"
    key = app.config["SECRET_KEY"]
    assert len(key) >= 32
    # The generated key is kept, so sessions survive a restart.
    again = Flask("probe", instance_path=str(tmp_path / "instance"))
    config.load(again, None)
    assert again.config["SECRET_KEY"] == key
    assert oct((tmp_path / "instance" / "secret_key").stat().st_mode & 0o777) == "0o600"


def test_the_command_line_prints_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    env["TRACKER_DATABASE_URL"] = "oracle://nope/x"
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "tracker", "demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "tracker: configuration error: TRACKER_DATABASE_URL: unsupported database 'oracle' "
        "(use sqlite or postgresql)"
    ]


def test_trusted_proxies_decide_the_client_address(tmp_path: Path) -> None:
    from tests.conftest import make_app

    url = f"sqlite:///{tmp_path}/db.sqlite3"
    headers = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    for proxies, seen in ((0, "127.0.0.1"), (1, "203.0.113.9")):
        app = make_app(url, TRUSTED_PROXIES=proxies)

        @app.get("/probe")
        def probe() -> str:
            from flask import request

            return str(request.remote_addr)

        assert app.test_client().get("/probe", headers=headers).text == seen


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, None),
        ({"TRACKER_PUBLIC_URL": "https://Give.Example.org/"}, ["give.example.org"]),
        (
            {"TRACKER_TRUSTED_HOSTS": "a.example.org, .example.net"},
            ["a.example.org", ".example.net"],
        ),
        (
            {
                "TRACKER_TRUSTED_HOSTS": "a.example.org",
                "TRACKER_PUBLIC_URL": "https://b.example.org",
            },
            ["a.example.org"],
        ),
    ],
)
def test_trusted_hosts_come_from_the_list_or_the_public_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, settings: dict[str, str], expected: Any
) -> None:
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3", "SECRET_KEY": "k" * 32})
    assert app.config["TRUSTED_HOSTS"] == expected


@pytest.mark.parametrize("value", ["evil.example/path", "http://a.example", "a b", "-x.example"])
def test_a_malformed_trusted_host_stops_the_service(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str
) -> None:
    monkeypatch.setenv("TRACKER_TRUSTED_HOSTS", value)
    with pytest.raises(ConfigError, match="TRACKER_TRUSTED_HOSTS"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3", "SECRET_KEY": "k" * 32})
