"""Admin accounts from the command line: create, reset (signs out everywhere), list, remove."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from tracker.db import get_database
from tracker.models import AdminRole, AdminUser, AuditEvent
from tracker.services import admins
from tracker.services.admins import check_password

PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parents[2]


def _admin(app: Flask, email: str) -> AdminUser | None:
    with get_database(app).session() as session:
        return session.scalar(select(AdminUser).where(AdminUser.email == email))


def test_create_admin_reads_the_password_from_stdin(app: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(
        args=["tracker", "create-admin", "Ann@Example.org", "--role", "viewer"],
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    assert "created admin ann@example.org (viewer)" in result.output
    admin = _admin(app, "ann@example.org")
    assert admin is not None and admin.role is AdminRole.VIEWER
    assert PASSWORD not in admin.password_hash and admin.password_hash.startswith("$argon2id$")
    with get_database(app).session() as session:
        assert check_password(session, "ann@example.org", PASSWORD) is not None
        assert check_password(session, "ann@example.org", PASSWORD + "x") is None
        assert check_password(session, "nobody@example.org", PASSWORD) is None


def test_short_password_and_bad_address_are_refused(app: Flask, runner: FlaskCliRunner) -> None:
    short = runner.invoke(args=["tracker", "create-admin", "a@example.org"], input="elevenchars\n")
    assert short.exit_code == 2 and "at least 12 characters" in short.output
    bad = runner.invoke(args=["tracker", "create-admin", "not-an-address"], input=PASSWORD + "\n")
    assert bad.exit_code == 2 and "not an e-mail address" in bad.output
    assert _admin(app, "a@example.org") is None


def test_rerun_resets_password_and_session_nonce(app: Flask, runner: FlaskCliRunner) -> None:
    runner.invoke(args=["tracker", "create-admin", "b@example.org"], input=PASSWORD + "\n")
    before = _admin(app, "b@example.org")
    assert before is not None and before.role is AdminRole.OWNER
    again = runner.invoke(
        args=["tracker", "create-admin", "b@example.org"], input="another long password\n"
    )
    assert again.exit_code == 0 and "signed out everywhere" in again.output
    after = _admin(app, "b@example.org")
    assert after is not None and after.id == before.id and after.role is AdminRole.OWNER
    assert after.session_nonce != before.session_nonce
    with get_database(app).session() as session:
        assert check_password(session, "b@example.org", PASSWORD) is None
        assert check_password(session, "b@example.org", "another long password") is not None
        actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["admin_created", "admin_password_reset"]


def test_list_and_remove(app: Flask, runner: FlaskCliRunner) -> None:
    assert "no admins yet" in runner.invoke(args=["tracker", "list-admins"]).output
    runner.invoke(args=["tracker", "create-admin", "c@example.org"], input=PASSWORD + "\n")
    listed = runner.invoke(args=["tracker", "list-admins"])
    assert "c@example.org\towner\tlast sign-in never" in listed.output
    assert runner.invoke(args=["tracker", "remove-admin", "C@example.org"]).exit_code == 0
    assert _admin(app, "c@example.org") is None
    missing = runner.invoke(args=["tracker", "remove-admin", "c@example.org"])
    assert missing.exit_code == 2 and "no admin" in missing.output


def test_demo_prints_a_password_once_and_keeps_it(app: Flask, runner: FlaskCliRunner) -> None:
    first = runner.invoke(args=["tracker", "demo", "--url", "http://127.0.0.1:5000"])
    assert first.exit_code == 0, first.output
    assert "http://127.0.0.1:5000/admin/login" in first.output
    match = re.search(r"password\s+(\S+)", first.output)
    assert match is not None
    password = match[1]
    with get_database(app).session() as session:
        assert check_password(session, "admin@example.org", password) is not None
    second = runner.invoke(args=["tracker", "demo"])
    assert password not in second.output and "already present" in second.output
    with get_database(app).session() as session:
        assert check_password(session, "admin@example.org", password) is not None
    reset = runner.invoke(args=["tracker", "demo", "--reset-admin"])
    new = re.search(r"password\s+(\S+)", reset.output)
    assert new is not None and new[1] != password


def test_an_unknown_email_is_verified_against_an_argon2_hash(
    app: Flask, runner: FlaskCliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Timing: an unknown e-mail must cost one Argon2 verification, as a wrong password does.
    runner.invoke(args=["tracker", "create-admin", "c@example.org"], input=PASSWORD + "\n")
    verified: list[str] = []
    real_verify = PasswordHasher.verify

    def counting_verify(self: PasswordHasher, hash_: str, password: str) -> bool:
        verified.append(hash_)
        return real_verify(self, hash_, password)

    # On the class: the instance has slots.
    monkeypatch.setattr(PasswordHasher, "verify", counting_verify)
    with get_database(app).session() as session:
        assert check_password(session, "nobody@example.org", PASSWORD) is None
        assert check_password(session, "c@example.org", PASSWORD + "x") is None
    assert len(verified) == 2
    unknown, known = verified
    assert unknown.startswith("$argon2id$") and unknown != known
    assert admins._hasher.check_needs_rehash(unknown) is False  # the same parameters


@pytest.mark.slow  # a process of its own, which no moved clock reaches
def test_importing_the_admin_service_runs_no_argon2() -> None:
    # Every gunicorn worker, CLI command and scheduler imports it: an Argon2 run at
    # import cost each of them about 0.2 s of CPU before it did anything.
    probe = (
        "import argon2._password_hasher as ph\n"
        "runs = []\n"
        "real = ph.hash_secret\n"
        "ph.hash_secret = lambda *a, **k: runs.append(1) or real(*a, **k)\n"
        "import tracker.services.admins\n"
        "print(len(runs))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "0", done.stderr
