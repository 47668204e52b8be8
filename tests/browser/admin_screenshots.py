"""Screenshots of every admin page: ``python -m tests.browser.admin_screenshots [OUT_DIR]``.

Serves a fresh SQLite database with the demo campaign (seeded) and an empty
campaign on loopback, signs in in Debian's headless Chromium, and saves each
page at desktop width (1,280 px) and at 390 px to OUT_DIR (default
``/tmp/admin-shots``). In that database the demo campaign carries every flag a
dashboard row can show (a payment in another currency, per-day figures that
drift from the period total), with the banners of a dead event and a failed
message. Then the dashboard alone in two more states: ``dashboard-empty`` (no
campaign at all) and ``dashboard-normal`` (the demo, nothing flagged).
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import Page
from sqlalchemy.orm import Session

from tests import factories
from tests.browser.screenshot import served
from tracker.domain.periods import PeriodKind
from tracker.models import (
    AdminRole,
    DailyTotal,
    InboxStatus,
    OutboxMessage,
    OutboxStatus,
    StripeEvent,
    StripePayment,
    utcnow,
)
from tracker.notify.outbox import Outgoing, Recipients, enqueue
from tracker.services.admins import save_admin
from tracker.services.demo import seed_demo

PASSWORD = "screenshots only 123"
PAGES = {
    "login": "/admin/login",
    "dashboard": "/admin/",
    "campaign-demo": "/admin/campaigns/demo",
    "campaign-empty": "/admin/campaigns/empty",
    "ledger-demo": "/admin/campaigns/demo/ledger",
    "ledger-empty": "/admin/campaigns/empty/ledger",
    "offline-demo": "/admin/campaigns/demo/offline",
    "corrections-demo": "/admin/campaigns/demo/corrections",
    "pledges-demo": "/admin/campaigns/demo/pledges",
    "campaign-edit-demo": "/admin/campaigns/demo/edit",
    "campaign-new": "/admin/campaigns/new",
    "inbox": "/admin/inbox",
    "audit": "/admin/audit",
    "erase": "/admin/privacy/erase",
    "outbox": "/admin/outbox",
    "outbox-failed": "/admin/outbox?status=failed",
    "outbox-message": "/admin/outbox/1",
    "outbox-empty": "/admin/outbox?status=canceled",
    "inbox-dead": "/admin/inbox?status=dead",
    "inbox-event-dead": "/admin/inbox/evt_dead_shot",
}


def main(out: Path) -> None:
    """Serve, sign in, and save every page at two widths; then the dashboard's states."""
    out.mkdir(parents=True, exist_ok=True)
    pages(out)
    for state in ("empty", "normal"):
        dashboard_state(out, state)


def dashboard_state(out: Path, state: str) -> None:
    """The dashboard with no campaign (``empty``) or the demo alone (``normal``)."""

    def seed(session: Session) -> None:
        if state == "normal":
            seed_demo(session)
        save_admin(session, "admin@example.org", PASSWORD, role=AdminRole.OWNER, actor="shots")

    with served(seed) as (base, browser):
        for width, label in ((1280, "desktop"), (390, "narrow")):
            context = browser.new_context(viewport={"width": width, "height": 900})
            page = context.new_page()
            _sign_in(page, base)
            page.screenshot(path=str(out / f"dashboard-{state}-{label}.png"), full_page=True)
            context.close()


def _sign_in(page: Page, base: str) -> None:
    page.goto(base + "/admin/login")
    page.fill("#email", "admin@example.org")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/admin/")


def _seed_pages(session: Session) -> None:
    """The demo (its row flagged), an empty monthly campaign, an owner, outbox and inbox rows."""
    seed_demo(session)
    factories.campaign(
        session,
        "empty",
        title="A campaign with nothing yet",
        currency="EUR",
        tiers=[0, 100_000],
        locale="fr_FR",
        period=PeriodKind.MONTH,
        timezone="Europe/Paris",
    )
    save_admin(session, "admin@example.org", PASSWORD, role=AdminRole.OWNER, actor="shots")
    _outbox(session)
    _row_flags(session)


def pages(out: Path) -> None:
    """Every page of :data:`PAGES` at 1,280 and 390 px, the demo row flagged."""
    with served(_seed_pages) as (base, browser):
        for width, label in ((1280, "desktop"), (390, "narrow")):
            context = browser.new_context(viewport={"width": width, "height": 900})
            page = context.new_page()
            page.goto(base + "/admin/login")
            page.screenshot(path=str(out / f"login-{label}.png"), full_page=True)
            _sign_in(page, base)
            for name, path in PAGES.items():
                if name == "login":
                    continue
                response = page.goto(base + path)
                status = response.status if response else 0
                page.screenshot(path=str(out / f"{name}-{label}.png"), full_page=True)
                print(f"{name} {label}: {status}", file=sys.stderr)
            _erasure(page, out, label)
            context.close()


def _row_flags(session: Session) -> None:
    """Both flags of a dashboard row on the demo campaign (id 1)."""
    session.add(
        StripePayment(
            reference="pi_shots_gbp",
            campaign_id=1,
            amount=2_500,
            currency="GBP",
            donor_key="hmac:" + "0" * 64,
            flag="currency_mismatch",
            paid_at=utcnow(),
        )
    )
    # A per-day row the ledger does not explain: the drift check-totals reports.
    session.add(DailyTotal(campaign_id=1, day="2000-01-01", raised=100, payments=1, gross=100))


def _outbox(session: Session) -> None:
    """Two messages: one failed for good (with its error), one waiting."""
    message = Outgoing(
        key="shots:1",
        kind="milestone",
        subject="Demo campaign reached its first tier",
        text="Hello,\n\nThe demo campaign reached $500.00 today.\n\n<b>not bold</b> & co.",
        html=None,
        chat_text="The demo campaign reached $500.00",
    )
    recipients = Recipients(emails=("team@example.org",), chat_url="https://hooks.example.net/x/y")
    enqueue(session, message, recipients, campaign_id=None)
    failed = session.get_one(OutboxMessage, 1)
    failed.status, failed.attempts = OutboxStatus.FAILED, 5
    failed.last_error = "550 5.1.1 <team@example.org>: Recipient address rejected"
    session.add(
        StripeEvent(
            id="evt_dead_shot",
            type="checkout.session.completed",
            livemode=False,
            api_created_at=utcnow(),
            payload='{"id": "evt_dead_shot", "type": "checkout.session.completed"}',
            status=InboxStatus.DEAD,
            attempts=8,
            last_error="EventError: a paid Checkout Session without its PaymentIntent",
        )
    )


def _erasure(page: Page, out: Path, label: str) -> None:
    """The erasure form's error, its confirmation step and its report."""
    page.goto(page.url.split("/admin/")[0] + "/admin/privacy/erase")
    page.fill("#email", "not an address")
    page.click("main button[type=submit]")
    page.screenshot(path=str(out / f"erase-error-{label}.png"), full_page=True)
    page.fill("#email", f"donor-{label}@example.org")
    page.click("main button[type=submit]")
    page.screenshot(path=str(out / f"erase-confirm-{label}.png"), full_page=True)
    page.click("main button[type=submit]")
    page.screenshot(path=str(out / f"erase-done-{label}.png"), full_page=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/admin-shots"))
