"""embed.js speaks the locale it is given, else the campaign's, with the words the API sends."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
from sqlalchemy.orm import Session

from tests import factories
from tests.browser.conftest import Host, Live, Tab
from tests.browser.test_widget import READ_WIDGET, host_page, wait_loaded, widget
from tracker.domain.money import format_money

WORDS = {
    "en-US": ("raised of", "Donate", "5 donors", "tier"),
    "fr-FR": ("collectés sur", "Faire un don", "5 donateurs", "palier de"),
    "de-DE": ("gesammelt", "Spenden", "5 Spender", "Stufe"),
    "es-ES": ("recaudados de", "Donar", "5 donantes", "nivel de"),
}


def api(live: Live, path: str) -> dict[str, Any]:
    """A progress document as embed.js fetches it."""
    with urllib.request.urlopen(f"{live.origin}/api/v1/campaigns/{path}", timeout=5) as response:
        document: dict[str, Any] = json.load(response)
    return document


@pytest.mark.parametrize("locale", list(WORDS))
def test_the_widget_speaks_its_locale(tab: Tab, live: Live, host: Host, locale: str) -> None:
    raised_of, donate, donors, tier = WORDS[locale]
    url = host.page(
        f"/words-{locale}.html",
        host_page(
            live,
            widget(f'campaign="demo" locale="{locale}" show-donors cta="…"')
            + f'<iframe src="{live.origin}/embed/demo?locale={locale}&show-donors=1&cta=…"'
            ' title="Progress" style="display:block;width:100%;height:140px;border:0"></iframe>',
        ),
    )
    tab.page.goto(url)
    wait_loaded(tab)
    seen = tab.page.locator("tracker-progress").evaluate(READ_WIDGET)
    raised = format_money(281_100, "USD", locale.replace("-", "_"), cents=False)
    assert seen["amount"].startswith(raised) and raised_of in seen["amount"]
    assert seen["donors"] == donors
    assert tier in seen["valuetext"]
    button = tab.page.locator("tracker-progress").evaluate(
        "(e) => e.shadowRoot.querySelector('.c a').textContent"
    )
    assert button == donate
    # The amount is drawn bold, the rest of the sentence is not.
    bold = tab.page.locator("tracker-progress").evaluate(
        "(e) => e.shadowRoot.querySelector('.a b').textContent"
    )
    assert bold == raised
    # The words are marked with their language, whatever the host page's.
    lang = tab.page.locator("tracker-progress").evaluate(
        "(e) => e.shadowRoot.querySelector('.w').lang"
    )
    assert lang == locale[:2]
    texts = api(live, f"demo?locale={locale}")["texts"]
    assert seen["amount"] == texts["summary"]
    assert seen["valuetext"] == texts["value_text"]
    # The iframe page says exactly the same.
    frame = tab.page.frame_locator("iframe")
    assert frame.locator(".a").text_content() == seen["amount"]
    assert frame.locator(".d").text_content() == donors
    assert frame.locator(".c a").text_content() == donate
    assert frame.locator(".b").get_attribute("aria-valuetext") == seen["valuetext"]
    assert tab.errors == []


def test_without_a_locale_the_campaigns_language_is_used(
    tab: Tab, live: Live, host: Host, live_session: Session
) -> None:
    if not api_exists(live, "fonds"):
        factories.campaign(live_session, "fonds", title="Fonds", locale="fr_FR", currency="EUR")
        factories.pay(live_session, "fonds", "fonds-1", 123_400, donor="a")
    url = host.page("/fonds.html", host_page(live, widget('campaign="fonds" show-donors cta=""')))
    tab.page.goto(url)
    wait_loaded(tab)
    seen = tab.page.locator("tracker-progress").evaluate(READ_WIDGET)
    assert seen[
        "amount"
    ] == f"{format_money(123_400, 'EUR', 'fr_FR', cents=False)} collectés sur " + (
        format_money(500_000, "EUR", "fr_FR", cents=False)
    )
    assert seen["donors"] == "1 donateur"
    assert tab.errors == []


def test_an_invalid_locale_leaves_the_neutral_state(tab: Tab, live: Live, host: Host) -> None:
    url = host.page("/bad-locale.html", host_page(live, widget('campaign="demo" locale="xx-XX"')))
    with tab.page.expect_response(lambda r: "/api/v1/campaigns/demo" in r.url) as answer:
        tab.page.goto(url)
    # The API refuses the locale (400): the bar stays empty, with no words or figures.
    assert answer.value.status == 400
    tab.page.wait_for_timeout(200)
    seen = tab.page.locator("tracker-progress").evaluate(READ_WIDGET)
    assert seen["amount"] == "" and seen["labels"] == [] and seen["now"] is None
    assert "NaN" not in seen["text"] and "undefined" not in seen["text"]


def api_exists(live: Live, slug: str) -> bool:
    """Whether the served app already has a public campaign ``slug`` (the app is per session)."""
    try:
        api(live, slug)
    except urllib.error.HTTPError:
        return False
    return True
