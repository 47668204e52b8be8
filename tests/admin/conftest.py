"""Helpers for admin tests: accounts, signing in through the real form with its CSRF token."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from tracker.db import get_database
from tracker.models import AdminRole
from tracker.services.admins import save_admin

PASSWORD = "a long enough password"


def make_admin(
    app: Flask, email: str = "owner@example.org", role: AdminRole = AdminRole.OWNER
) -> None:
    """Create an admin with :data:`PASSWORD`."""
    with get_database(app).session() as session:
        save_admin(session, email, PASSWORD, role=role, actor="test")
        session.commit()


def csrf_from(html: str) -> str:
    """The CSRF token of the first form in ``html``."""
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match[1]


def sign_in(
    client: FlaskClient,
    email: str = "owner@example.org",
    password: str = PASSWORD,
    next_: str | None = None,
) -> object:
    """Post the login form as a browser would; returns the response."""
    page = client.get("/admin/login")
    url = "/admin/login" + (f"?next={next_}" if next_ else "")
    return client.post(
        url, data={"email": email, "password": password, "csrf_token": csrf_from(page.text)}
    )
