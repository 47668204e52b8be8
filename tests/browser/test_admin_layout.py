"""The admin's layout in Chromium: nothing cut at 1,280 px, nothing wider than 390 px.

Its own server and database (the fixture of test_admin_browser, instantiated
for this module): that module's throttling test closes sign-in for 127.0.0.1.
"""

from __future__ import annotations

import pytest

from tests.browser.conftest import Tab
from tests.browser.test_admin_browser import Admin, _sign_in, admin_live
from tracker.models import Campaign

__all__ = ["admin_live"]  # the module-scoped fixture, one server for this module


_OVERFLOW = """() => {
  const doc = document.documentElement;
  const wrap = document.querySelector('main .table-wrap');
  const last = document.querySelector('main table thead th:last-child');
  return {
    page: [doc.scrollWidth, doc.clientWidth],
    wrap: wrap ? [wrap.scrollWidth, wrap.clientWidth] : null,
    lastRight: last ? last.getBoundingClientRect().right : null,
    wrapRight: wrap ? wrap.getBoundingClientRect().right : null,
  };
}"""


def _flag_the_demo(admin: Admin) -> None:
    """A payment in another currency: the longest flag a dashboard row shows."""
    from tracker.models import StripePayment, utcnow

    with admin.database.session() as session:
        if session.query(StripePayment).filter_by(reference="pi_browser_gbp").first() is None:
            demo = session.query(Campaign).filter_by(slug="demo").one()
            session.add(
                StripePayment(
                    reference="pi_browser_gbp",
                    campaign_id=demo.id,
                    amount=2_500,
                    currency="GBP",
                    donor_key="hmac:" + "0" * 64,
                    flag="currency_mismatch",
                    paid_at=utcnow(),
                )
            )
            session.commit()


def test_the_dashboard_fits_1280_px_and_turns_into_cards_at_390(
    tab: Tab, admin_live: Admin
) -> None:
    _flag_the_demo(admin_live)
    page = tab.page
    page.set_viewport_size({"width": 1280, "height": 900})
    _sign_in(tab, admin_live)
    assert page.locator(".flag", has_text="another currency").count() == 1
    sizes = page.evaluate(_OVERFLOW)
    # No column cut at the right edge: neither the page nor the table's frame scrolls.
    assert sizes["page"][0] <= sizes["page"][1], sizes
    assert sizes["wrap"][0] <= sizes["wrap"][1], sizes
    assert sizes["lastRight"] <= sizes["wrapRight"] + 0.5, sizes
    page.set_viewport_size({"width": 390, "height": 900})
    sizes = page.evaluate(_OVERFLOW)
    assert sizes["page"][0] <= sizes["page"][1], sizes
    # Each figure is a labelled line of the card, all within the screen.
    pending = page.locator('td[data-label="Pending pledges"]').first
    box = pending.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    label = pending.evaluate("td => getComputedStyle(td, '::before').content")
    assert label == '"Pending pledges"'
    assert tab.errors == []


@pytest.mark.parametrize("width", [1280, 390])
def test_no_admin_page_is_wider_than_the_screen(tab: Tab, admin_live: Admin, width: int) -> None:
    page = tab.page
    page.set_viewport_size({"width": width, "height": 900})
    _sign_in(tab, admin_live)
    for path in (
        "/admin/campaigns/demo",
        "/admin/campaigns/demo/ledger",
        "/admin/campaigns/demo/pledges",
        "/admin/inbox",
        "/admin/audit",
        "/admin/outbox",
    ):
        page.goto(admin_live.origin + path)
        sizes = page.evaluate(_OVERFLOW)
        # Wide tables scroll inside their frame at 390 px; the page itself never does.
        assert sizes["page"][0] <= sizes["page"][1], (path, sizes)
        if width == 1280 and sizes["wrap"] is not None:
            assert sizes["wrap"][0] <= sizes["wrap"][1], (path, sizes)
