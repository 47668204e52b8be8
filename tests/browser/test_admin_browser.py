"""The admin in a real browser (Debian's Chromium through Playwright), on its own server.

Its own SQLite database with the demo campaign and two admins, so the money
these tests book never shows in the widget tests' figures.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from werkzeug.serving import make_server

from tests.browser.conftest import Host, Tab
from tests.conftest import make_app
from tracker.db import Database
from tracker.models import AdminRole, Campaign, Pledge, PledgeSource
from tracker.services.admins import save_admin
from tracker.services.demo import seed_demo

PASSWORD = "browser tests password"
HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>\u202e=HYPERLINK("x")'


@dataclass
class Admin:
    origin: str
    database: Database


@pytest.fixture(scope="module")
def admin_live(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    path = tmp_path_factory.mktemp("admin-live") / "tracker.sqlite3"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite:///{path}"
    database = Database(url)
    with database.session() as session:
        seed_demo(session)
        save_admin(session, "owner@example.org", PASSWORD, role=AdminRole.OWNER, actor="t")
        save_admin(session, "viewer@example.org", PASSWORD, role=AdminRole.VIEWER, actor="t")
        demo = session.query(Campaign).filter_by(slug="demo").one()
        session.add(
            Pledge(
                campaign_id=demo.id,
                amount=1_000,
                currency="USD",
                donor_name=HOSTILE,
                message=HOSTILE * 50,
                source=PledgeSource.OFFLINE,
            )
        )
        session.commit()
    app = make_app(url, API_CACHE_SECONDS=0, TESTING=False)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Admin(f"http://127.0.0.1:{server.server_port}", database)
    server.shutdown()
    thread.join(5)
    server.server_close()
    app.extensions["tracker.db"].dispose()
    database.dispose()


def _api(admin: Admin) -> dict[str, Any]:
    with urllib.request.urlopen(f"{admin.origin}/api/v1/campaigns/demo") as response:
        data: dict[str, Any] = json.load(response)
        return data


def _sign_in(tab: Tab, admin: Admin, email: str = "owner@example.org") -> None:
    page = tab.page
    page.goto(f"{admin.origin}/admin/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{admin.origin}/admin/")


def test_dashboard_matches_the_api_and_the_chart_has_its_tiers(tab: Tab, admin_live: Admin) -> None:
    dialogs: list[str] = []
    tab.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    _sign_in(tab, admin_live)
    api = _api(admin_live)
    row = tab.page.locator("td[data-raised]")
    assert int(row.get_attribute("data-raised") or "") == api["raised"]
    assert tab.page.locator("td[data-donors]").text_content() == str(api["donors"])
    tab.page.click("text=Keep independent journalism free")
    # The click only starts the navigation; count() does not wait, so wait for the page.
    tab.page.wait_for_url(f"{admin_live.origin}/admin/campaigns/demo")
    chart = tab.page.locator("svg.chart")
    expect(chart.locator("line.tier")).to_have_count(len(api["tiers"]))
    assert chart.locator("polyline.line").count() == 1
    assert "Cumulative amount raised" in (chart.locator("title").text_content() or "")
    # The hostile pledge's name is shown as text, never run.
    assert HOSTILE[:20] in (tab.page.locator("main").text_content() or "")
    assert dialogs == [] and tab.errors == []


def test_book_offline_money_then_reverse_it(tab: Tab, admin_live: Admin) -> None:
    before = _api(admin_live)["raised"]
    _sign_in(tab, admin_live)
    page = tab.page
    page.goto(f"{admin_live.origin}/admin/campaigns/demo")
    page.fill("#amount", "1,234.56")
    page.fill("#received_on", "2026-11-25")
    page.fill("#note", "bank transfer")
    page.click("text=Continue")
    assert page.locator("[data-confirm-amount]").text_content() == "$1,234.56"
    assert _api(admin_live)["raised"] == before
    page.click("button:has-text('Book $1,234.56')")
    page.wait_for_url(f"{admin_live.origin}/admin/campaigns/demo")
    assert "Booked $1,234.56" in (page.locator(".banner").text_content() or "")
    assert _api(admin_live)["raised"] == before + 123_456
    page.goto(f"{admin_live.origin}/admin/campaigns/demo/corrections")
    page.click("text=Reverse…")
    page.fill("#reason", "booked on the wrong campaign")
    page.click("button:has-text('Reverse')")
    page.wait_for_url(f"{admin_live.origin}/admin/campaigns/demo/ledger")
    assert "corrects #" in (page.locator("table").text_content() or "")
    assert _api(admin_live)["raised"] == before
    assert tab.errors == []


def test_csv_download_parses(tab: Tab, admin_live: Admin) -> None:
    _sign_in(tab, admin_live)
    tab.page.goto(f"{admin_live.origin}/admin/campaigns/demo/ledger")
    with tab.page.expect_download() as info:
        tab.page.click("text=Download CSV")
    download = info.value
    assert download.suggested_filename.startswith("demo-ledger-")
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text("utf-8"))))
    assert {r["reference"] for r in rows} >= {"demo-pay-1", "demo-refund-5"}


def test_viewer_sees_no_write_controls_and_its_forged_post_is_403(
    tab: Tab, admin_live: Admin
) -> None:
    _sign_in(tab, admin_live, "viewer@example.org")
    page = tab.page
    page.goto(f"{admin_live.origin}/admin/campaigns/demo")
    buttons = page.locator("main button")
    assert buttons.count() == 0  # only "Sign out", which is in the header
    token = page.locator("header input[name=csrf_token]").get_attribute("value")
    before = _api(admin_live)["raised"]
    forged = page.request.post(
        f"{admin_live.origin}/admin/campaigns/demo/adjustments",
        form={
            "csrf_token": token or "",
            "direction": "up",
            "amount": "5",
            "reason": "x",
            "token": "f" * 24,
        },
    )
    assert forged.status == 403
    assert _api(admin_live)["raised"] == before


def test_post_without_csrf_changes_nothing(tab: Tab, admin_live: Admin) -> None:
    _sign_in(tab, admin_live)
    before = _api(admin_live)["raised"]
    response = tab.page.request.post(
        f"{admin_live.origin}/admin/campaigns/demo/adjustments",
        form={"direction": "up", "amount": "5", "reason": "x", "token": "g" * 24},
    )
    assert response.status == 400
    assert _api(admin_live)["raised"] == before


def test_sign_out_and_throttling(tab: Tab, admin_live: Admin) -> None:
    _sign_in(tab, admin_live)
    tab.page.click("text=Sign out")
    tab.page.wait_for_url(f"{admin_live.origin}/admin/login")
    tab.page.goto(f"{admin_live.origin}/admin/")
    assert tab.page.url.startswith(f"{admin_live.origin}/admin/login")
    for _ in range(5):
        tab.page.fill("#email", "throttled@example.org")
        tab.page.fill("#password", "wrong password here")
        # Each refusal is a new page: fill the next form only once it has loaded.
        with tab.page.expect_navigation():
            tab.page.click("button[type=submit]")
    tab.page.fill("#email", "throttled@example.org")
    tab.page.fill("#password", "wrong password here")
    with tab.page.expect_response(lambda r: r.request.method == "POST") as info:
        tab.page.click("button[type=submit]")
    assert info.value.status == 429 and int(info.value.headers["retry-after"]) > 0
    expect(tab.page.locator(".banner")).to_contain_text("Too many failed sign-ins")


def test_admin_pages_cannot_be_framed(tab: Tab, admin_live: Admin, host: Host) -> None:
    url = host.page(
        "/frames-admin",
        f'<!doctype html><iframe src="{admin_live.origin}/admin/login" title="x"></iframe>',
    )
    tab.page.goto(url)
    tab.page.wait_for_timeout(500)
    frame = next(f for f in tab.page.frames if f != tab.page.main_frame)
    # Chromium refuses the document (X-Frame-Options / frame-ancestors): nothing of ours in it.
    assert frame.locator("#email").count() == 0
