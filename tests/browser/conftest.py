"""A real browser against a real server: headless Chromium driven by Playwright.

The app is served by werkzeug in a thread on one loopback port, and the pages
that embed it by a second server on another port, so every embed is
cross-origin exactly as on a publisher's site. One browser serves the whole
session; each test gets a fresh context (no cookies, no cache).

These tests run on SQLite only: they check what the browser draws and how the
embeds behave on a foreign page, which does not depend on the database; the
HTTP tests (tests/test_embed.py) cover the same routes on both databases.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session
from werkzeug.serving import BaseWSGIServer, make_server

from tests.conftest import make_app, missing_service
from tracker.db import Database
from tracker.services.demo import seed_demo

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class Live:
    """The app served on loopback: its origin, its database, and the requests it saw."""

    origin: str
    database: Database
    # (method, path, If-None-Match header or None), in order of arrival.
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)


@dataclass
class Host:
    """A publisher's site on another origin; tests put pages in ``pages``."""

    origin: str
    pages: dict[str, str] = field(default_factory=dict)

    def page(self, path: str, html: str) -> str:
        """Serve ``html`` at ``path``; return its URL."""
        self.pages[path] = html
        return self.origin + path


def _serve(server: BaseWSGIServer | ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="session")
def live(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The app with the demo campaign, served by a threaded werkzeug server."""
    path = tmp_path_factory.mktemp("live") / "tracker.sqlite3"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite:///{path}"
    database = Database(url)
    with database.session() as session:
        seed_demo(session)
        session.commit()
    # No process cache: a test that books a payment reads it at once.
    app = make_app(url, API_CACHE_SECONDS=0, TESTING=False)
    seen: list[tuple[str, str, str | None]] = []
    wsgi = app.wsgi_app

    def recording(environ: dict[str, Any], start_response: Any) -> Any:
        seen.append(
            (environ["REQUEST_METHOD"], environ["PATH_INFO"], environ.get("HTTP_IF_NONE_MATCH"))
        )
        return wsgi(environ, start_response)

    app.wsgi_app = recording  # type: ignore[method-assign]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = _serve(server)
    yield Live(f"http://127.0.0.1:{server.server_port}", database, seen)
    server.shutdown()
    thread.join(5)
    server.server_close()
    app.extensions["tracker.db"].dispose()
    database.dispose()


@pytest.fixture(scope="session")
def host() -> Iterator[Host]:
    """A second origin (``localhost`` on another port) serving the tests' pages."""
    pages: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path.split("?")[0])
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write((body or "not found").encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = _serve(server)
    # "localhost" and "127.0.0.1" are different origins (and different sites).
    yield Host(f"http://localhost:{server.server_port}", pages)
    server.shutdown()
    thread.join(5)
    server.server_close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session (Debian's: Playwright's download is not used)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        missing_service("Playwright", str(exc))
    if not Path(CHROMIUM).exists():
        missing_service("Chromium", f"{CHROMIUM} not found (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def live_session(live: Live) -> Iterator[Session]:
    """A write session on the served app's database (factories commit)."""
    with live.database.session() as session:
        yield session


@dataclass
class Tab:
    """A page in a fresh context, with what its console said."""

    page: Any
    context: Any
    errors: list[str]


@pytest.fixture
def tab(browser: Any) -> Iterator[Tab]:
    """A new page in a new context; console errors and page errors are collected."""
    context = browser.new_context(viewport={"width": 900, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(10_000)
    yield Tab(page, context, errors)
    context.close()
