"""A command prints each log line once (the app's handler and the root one must not both)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _flask(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "flask", "--app", "wsgi", "tracker", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)


def test_send_summary_logs_its_line_once(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")},
        "TRACKER_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "TRACKER_SECRET_KEY": "s" * 40,
    }
    _flask(env, "init-db")
    _flask(env, "demo")
    _flask(env, "set-campaign", "demo", "--notify-email", "o@example.org", "--summary", "daily")
    done = _flask(env, "send-summary", "demo")
    assert done.stderr.count("no SMTP server configured") == 1, done.stderr
