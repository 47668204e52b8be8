"""The embeds in headless Chromium, on a page of another origin (see conftest.py)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy.orm import Session

from tests import factories
from tests.browser.conftest import Host, Live, Tab
from tests.polling import wait_until
from tracker.models import CampaignStatus
from tracker.services.campaigns import update_campaign

CTA = "Do you like this content? Consider helping us!"
HOSTILE_CSS = """
* { color: red !important; display: inline !important;
    font: 31px/3 "Comic Sans MS", serif !important;
    letter-spacing: 4px !important; text-transform: uppercase !important; padding: 9px !important;
    margin: 7px !important; border: 3px dashed lime !important; box-sizing: content-box !important;
    background: yellow !important; text-align: right !important; visibility: visible !important;
    white-space: pre-wrap !important; line-height: 5 !important; opacity: .9 !important; }
div, span, a, b, i { position: static !important; width: 50px !important; height: 50px !important; }
"""

# Reads the widget's shadow DOM into plain data.
READ_WIDGET = """(el) => {
  const r = el.shadowRoot, q = (s) => r.querySelector(s), bar = q('.b');
  return {
    amount: q('.a').textContent,
    donors: q('.d').textContent,
    labels: [...r.querySelectorAll('.m')].map((m) => m.textContent),
    reached: [...r.querySelectorAll('.m')].map((m) => m.classList.contains('r')),
    ticks: r.querySelectorAll('.k').length,
    // Every tier mark must sit on the bar, not be clipped away below it.
    ticksOnBar: [...r.querySelectorAll('.k')].every((k) => {
      const t = k.getBoundingClientRect(), b = bar.getBoundingClientRect();
      return t.height > 0 && t.top >= b.top && t.bottom <= b.bottom;
    }),
    role: bar.getAttribute('role'),
    min: bar.getAttribute('aria-valuemin'),
    max: bar.getAttribute('aria-valuemax'),
    now: bar.getAttribute('aria-valuenow'),
    valuetext: bar.getAttribute('aria-valuetext'),
    label: bar.getAttribute('aria-label'),
    cta: r.querySelector('.x .c span') ? q('.c span').textContent : null,
    href: r.querySelector('.x .c a') ? q('.c a').href : null,
    fill: q('.f').style.width,
    // What is drawn, not what is set: an unset width used to draw a full bar.
    fillWidth: parseFloat(getComputedStyle(q('.f')).width),
    barWidth: bar.getBoundingClientRect().width,
    link: [...r.querySelectorAll('a')].filter((a) => a.getBoundingClientRect().width > 0).length,
    text: r.textContent,
    height: el.getBoundingClientRect().height,
  };
}"""

# Every element inside the widget: its box relative to the widget and the styles that
# a host page could try to change.
READ_LAYOUT = """(el) => {
  const w = el.shadowRoot.querySelector('.w'), o = w.getBoundingClientRect();
  return [w, ...w.querySelectorAll('*')].map((e) => {
    const b = e.getBoundingClientRect(), s = getComputedStyle(e);
    return [e.tagName, e.className, b.x - o.x, b.y - o.y, b.width, b.height, s.color,
            s.fontSize, s.fontFamily, s.display, s.letterSpacing, s.textTransform, s.padding,
            s.margin, s.borderTopWidth, s.backgroundColor, s.lineHeight, s.opacity];
  });
}"""


def api(live: Live, slug: str = "demo") -> dict[str, Any]:
    """The progress document, as the widget fetches it."""
    with urllib.request.urlopen(f"{live.origin}/api/v1/campaigns/{slug}", timeout=5) as response:
        document: dict[str, Any] = json.load(response)
    return document


def host_page(live: Live, body: str, head: str = "") -> str:
    """A publisher's page that loads embed.js from the app's origin."""
    return (
        "<!doctype html><html><head><meta charset=utf-8><link rel=icon href='data:,'>"
        f"{head}</head><body>"
        f'<p>Article text.</p>{body}<p>More text.</p><script src="{live.origin}/embed.js" async>'
        "</script></body></html>"
    )


def widget(attributes: str, height: int = 140) -> str:
    """A ``<tracker-progress>`` with the recommended reserved height."""
    style = f"display:block;height:{height}px"
    return f'<tracker-progress {attributes} style="{style}"></tracker-progress>'


def wait_loaded(tab: Tab, selector: str = "tracker-progress") -> None:
    """Wait until every widget matching ``selector`` has drawn data."""
    tab.page.wait_for_function(
        """(sel) => [...document.querySelectorAll(sel)].every(
             (e) => e.shadowRoot && e.shadowRoot.querySelector('.b[aria-valuenow]'))""",
        arg=selector,
    )


@contextmanager
def _api_call_ends(tab: Tab, slug: str, *, failed: bool = False) -> Iterator[None]:
    """Until the widget's API request for ``slug`` has finished (or failed, if ``failed``)."""
    event = "requestfailed" if failed else "requestfinished"
    path = f"/api/v1/campaigns/{slug}"
    with tab.page.expect_event(event, lambda r: urlsplit(r.url).path == path, timeout=30_000):
        yield


def test_script_embed_shows_what_the_api_says(
    tab: Tab, live: Live, host: Host, live_session: Session
) -> None:
    if not _exists(live_session, "second"):
        factories.campaign(live_session, "second", title="Second fund", tiers=[100_000, 200_000])
        factories.pay(live_session, "second", "second-1", 150_000)
    url = host.page(
        "/script.html",
        host_page(
            live,
            widget(f'campaign="demo" show-donors cta="{CTA}"')
            + widget('campaign="second" size="compact" color="#c00"', 66),
        ),
    )
    tab.page.goto(url)
    wait_loaded(tab)
    demo = api(live)
    seen = tab.page.locator('tracker-progress[campaign="demo"]').evaluate(READ_WIDGET)
    assert seen["amount"] == f"{demo['raised_display']} raised of {demo['tiers'][-1]['label']}"
    assert seen["labels"] == [tier["label"] for tier in demo["tiers"]]
    assert seen["reached"] == [tier["reached"] for tier in demo["tiers"]]
    assert seen["ticks"] == 1
    assert seen["ticksOnBar"]
    assert seen["donors"] == f"{demo['donors']} donors"
    assert seen["role"] == "progressbar"
    assert (seen["min"], seen["max"], seen["now"]) == ("0", "500000", str(demo["raised"]))
    assert seen["valuetext"] == "$2,811 raised of $5,000; tier $2,500 reached"
    assert seen["label"] == demo["title"]
    assert seen["cta"] == CTA
    assert seen["href"] == f"{live.origin}/donate/demo"
    assert seen["fill"] == "56.22%"
    assert seen["height"] == 140
    assert "NaN" not in seen["text"] and "undefined" not in seen["text"]

    second = tab.page.locator('tracker-progress[campaign="second"]').evaluate(READ_WIDGET)
    assert second["labels"] == [tier["label"] for tier in api(live, "second")["tiers"]]
    assert second["valuetext"] == "$1,500 raised of $2,000; tier $1,000 reached"
    assert second["cta"] is None
    assert second["height"] == 66

    assert tab.errors == []
    assert tab.context.cookies() == []
    assert tab.page.evaluate("localStorage.length + sessionStorage.length") == 0


def test_the_widget_matches_the_iframe_page(tab: Tab, live: Live, host: Host) -> None:
    url = host.page(
        "/both.html",
        host_page(
            live,
            widget('campaign="demo" show-donors cta="Help"')
            + f'<iframe src="{live.origin}/embed/demo?show-donors=1&cta=Help" title="Progress"'
            ' style="display:block;width:100%;height:50px;border:0"></iframe>',
        ),
    )
    tab.page.goto(url)
    wait_loaded(tab)
    # embed.js sizes the iframe from the height its page posts (50px → 140px).
    tab.page.wait_for_function("document.querySelector('iframe').offsetHeight == 140")
    frame = tab.page.frame_locator("iframe")
    element = tab.page.locator("tracker-progress")
    assert frame.locator(".a").text_content() == element.evaluate(
        "(e) => e.shadowRoot.querySelector('.a').textContent"
    )
    bar = frame.locator(".b")
    seen = element.evaluate(READ_WIDGET)
    assert bar.get_attribute("aria-valuetext") == seen["valuetext"]
    assert bar.get_attribute("aria-valuenow") == seen["now"]
    assert frame.locator(".m").all_text_contents() == seen["labels"]
    assert frame.locator(".c a").evaluate("(a) => a.href") == seen["href"]
    assert frame.locator(".c span").text_content() == seen["cta"] == "Help"
    # Same markup, same CSS: the same boxes.
    frame_box = frame.locator(".w").bounding_box()
    element_box = element.bounding_box()
    assert frame_box is not None and element_box is not None
    assert (frame_box["width"], frame_box["height"]) == (
        element_box["width"],
        element_box["height"],
    )
    assert tab.errors == []
    assert tab.context.cookies() == []


def test_a_donate_link_given_as_a_path_leads_to_the_tracker_as_the_iframe_does(
    tab: Tab, live: Live, host: Host
) -> None:
    # The builder accepts "/donate/demo"; on the publisher's page it once resolved
    # against the publisher's site (a 404 there), while the iframe led to the tracker.
    hrefs = {
        "path": "/donate/demo?from=article",
        "absolute": "https://example.org/give",
        "script": "javascript:alert(1)",
        "broken": "http://[",
    }
    widgets = "".join(
        widget(f'campaign="demo" cta="Help" cta-href="{href}" id="{name}"')
        for name, href in hrefs.items()
    )
    frame = (
        f'<iframe src="{live.origin}/embed/demo?cta=Help&cta-href=/donate/demo%3Ffrom%3Darticle"'
        ' title="Progress" style="display:block;width:100%;height:140px;border:0"></iframe>'
    )
    tab.page.goto(host.page("/paths.html", host_page(live, widgets + frame)))
    wait_loaded(tab)
    seen = {name: tab.page.locator(f"#{name}").evaluate(READ_WIDGET)["href"] for name in hrefs}
    assert seen == {
        "path": f"{live.origin}/donate/demo?from=article",
        "absolute": "https://example.org/give",
        # Neither a script nor a URL that does not parse: the tracker's home instead.
        "script": f"{live.origin}/",
        "broken": f"{live.origin}/",
    }
    framed = tab.page.frame_locator("iframe").locator(".c a").evaluate("(a) => a.href")
    assert framed == seen["path"]
    assert tab.errors == []


def test_iframe_height_messages_from_other_origins_are_ignored(
    tab: Tab, live: Live, host: Host
) -> None:
    url = host.page(
        "/spoof.html",
        host_page(
            live,
            f'<iframe src="{live.origin}/embed/demo" title="Progress"'
            ' style="display:block;width:100%;height:92px;border:0"></iframe>',
        ),
    )
    tab.page.goto(url)
    tab.page.wait_for_function("!!customElements.get('tracker-progress')")
    # The host page itself (another origin) posts a bogus height: nothing changes.
    tab.page.evaluate("() => window.postMessage({'tracker:height': 900}, '*')")
    time.sleep(0.3)
    assert tab.page.locator("iframe").evaluate("(f) => f.offsetHeight") == 92


def test_a_hostile_stylesheet_changes_nothing_inside(tab: Tab, live: Live, host: Host) -> None:
    attributes = f'campaign="demo" show-donors cta="{CTA}"'
    layouts = []
    # The page decides the widget's width (both pages the same); nothing else.
    width = "<style>#w { width: 600px !important }</style>"
    for name, head in (("plain", width), ("hostile", f"<style>{HOSTILE_CSS}</style>{width}")):
        page = host_page(live, widget(f'id="w" {attributes}'), head)
        tab.page.goto(host.page(f"/{name}.html", page))
        wait_loaded(tab)
        element = tab.page.locator("tracker-progress")
        layouts.append((element.evaluate(READ_LAYOUT), element.evaluate(READ_WIDGET)["height"]))
    (plain, plain_height), (hostile, hostile_height) = layouts
    assert hostile == plain
    assert hostile_height == plain_height == 140
    assert tab.errors == []


def test_no_layout_shift_when_the_data_arrives(tab: Tab, live: Live, host: Host) -> None:
    held: list[Any] = []
    tab.page.route(f"{live.origin}/api/v1/**", lambda route: held.append(route))
    tab.page.add_init_script(
        """window.__shift = 0; window.__sources = [];
        new PerformanceObserver((list) => {
          for (const e of list.getEntries()) {
            window.__shift += e.value;
            for (const x of e.sources) window.__sources.push(x.node && x.node.className);
          }
        })
          .observe({type: 'layout-shift', buffered: true});"""
    )
    tab.page.goto(host.page("/shift.html", host_page(live, widget(f'campaign="demo" cta="{CTA}"'))))
    tab.page.wait_for_function("!!customElements.get('tracker-progress')")
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        tab.page.wait_for_timeout(20)
    assert held, "the widget never asked the API"
    element = tab.page.locator("tracker-progress")
    before = element.evaluate(READ_WIDGET)
    # The neutral state: nothing invented, nothing broken, the final height already.
    assert before["now"] is None
    assert before["fillWidth"] == 0
    assert before["amount"] == ""
    assert "NaN" not in before["text"] and "undefined" not in before["text"]
    boxes_before = tab.page.evaluate(
        "[...document.body.children].map((e) => e.getBoundingClientRect().toJSON())"
    )
    for route in held:
        route.continue_()
    wait_loaded(tab)
    after = element.evaluate(READ_WIDGET)
    assert after["height"] == before["height"] == 140
    boxes_after = tab.page.evaluate(
        "[...document.body.children].map((e) => e.getBoundingClientRect().toJSON())"
    )
    assert boxes_after == boxes_before
    assert tab.page.evaluate("window.__shift") == 0, tab.page.evaluate("window.__sources")


@pytest.mark.parametrize("case", ["unknown", "draft", "unreachable"])
def test_neutral_state_when_the_api_fails(
    tab: Tab, live: Live, host: Host, live_session: Session, case: str
) -> None:
    campaign = {"unknown": "nope", "draft": "unpublished", "unreachable": "demo"}[case]
    if case == "draft" and not _exists(live_session, campaign):
        factories.campaign(live_session, campaign, status=CampaignStatus.DRAFT)
    if case == "unreachable":
        tab.page.route(f"{live.origin}/api/v1/**", lambda route: route.abort())
    warnings: list[str] = []
    tab.page.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)
    url = host.page(
        f"/fail-{case}.html", host_page(live, widget(f'campaign="{campaign}" cta="{CTA}"'))
    )
    # Wait for the API's answer (or its failure) however slow, then for the draw.
    with _api_call_ends(tab, campaign, failed=case == "unreachable"):
        tab.page.goto(url)
    tab.page.wait_for_timeout(300)
    seen = tab.page.locator("tracker-progress").evaluate(READ_WIDGET)
    assert seen["now"] is None
    assert seen["amount"] == ""
    assert seen["labels"] == []
    assert "NaN" not in seen["text"] and "undefined" not in seen["text"]
    assert seen["height"] == 140
    # An empty track, not a full one.
    assert seen["barWidth"] > 100
    assert seen["fillWidth"] == 0
    if case == "unreachable":
        # The campaign may well exist: its donate page stays one click away.
        assert seen["link"] == 1
        assert warnings == []
    else:
        assert seen["link"] == 0
        assert [w for w in warnings if campaign in w and "no campaign" in w], warnings
    # Only the browser's own network message, never a script error.
    assert not [e for e in tab.errors if "Failed to load resource" not in e]


def test_a_draft_published_while_the_page_is_open_gets_its_donate_link(
    tab: Tab, live: Live, host: Host, live_session: Session
) -> None:
    # A publisher embeds the bar before publishing: once published, the next
    # refresh draws the figures and the Donate link comes back without a reload.
    slug = f"soon-{time.monotonic_ns()}"
    factories.campaign(live_session, slug, status=CampaignStatus.DRAFT)
    page = host_page(live, widget(f'campaign="{slug}" cta="{CTA}" refresh="1"'))
    with _api_call_ends(tab, slug):
        tab.page.goto(host.page(f"/{slug}.html", page))
    tab.page.wait_for_timeout(300)
    element = tab.page.locator("tracker-progress")
    assert element.evaluate(READ_WIDGET)["link"] == 0
    update_campaign(live_session, slug, {"status": CampaignStatus.ACTIVE}, "test")
    live_session.commit()
    wait_loaded(tab)
    seen = element.evaluate(READ_WIDGET)
    assert seen["amount"] == "$0 raised of $5,000"
    assert seen["link"] == 1 and seen["href"] == f"{live.origin}/donate/{slug}"


def test_reduced_motion_turns_the_animation_off(tab: Tab, live: Live, host: Host) -> None:
    url = host.page("/motion.html", host_page(live, widget('campaign="demo"', 92)))
    durations = []
    for motion in ("no-preference", "reduce"):
        tab.page.emulate_media(reduced_motion=motion)
        tab.page.goto(url)
        wait_loaded(tab)
        durations.append(
            tab.page.locator("tracker-progress").evaluate(
                "(e) => getComputedStyle(e.shadowRoot.querySelector('.f')).transitionDuration"
            )
        )
    assert durations == ["0.6s", "0s"]


def test_a_payment_shows_within_five_seconds(
    tab: Tab, live: Live, host: Host, live_session: Session
) -> None:
    if not _exists(live_session, "fresh"):
        factories.campaign(live_session, "fresh", title="Fresh fund")
    tab.page.goto(
        host.page("/fresh.html", host_page(live, widget('campaign="fresh" refresh="1"', 92)))
    )
    wait_loaded(tab)
    element = tab.page.locator("tracker-progress")
    assert element.evaluate(READ_WIDGET)["amount"] == "$0 raised of $5,000"
    factories.pay(live_session, "fresh", f"fresh-{time.monotonic_ns()}", 123_400)
    started = time.monotonic()
    tab.page.wait_for_function(
        """(e) => e.shadowRoot.querySelector('.a').textContent.startsWith('$1,234 ')""",
        arg=element.element_handle(),
        timeout=5_000,
    )
    assert time.monotonic() - started < 5
    assert tab.errors == []


def test_the_demo_article_shows_the_bar_and_the_call_to_action(tab: Tab, live: Live) -> None:
    tab.page.goto(f"{live.origin}/demo/article")
    wait_loaded(tab)
    seen = tab.page.locator("tracker-progress").evaluate(READ_WIDGET)
    assert seen["amount"] == "$2,811 raised of $5,000"
    assert seen["labels"] == ["$0", "$2,500", "$5,000"]
    assert seen["cta"] == CTA
    assert seen["href"] == f"{live.origin}/donate/demo"
    assert tab.errors == []
    assert tab.context.cookies() == []


def _exists(session: Session, slug: str) -> bool:
    from tracker.services.campaigns import CampaignNotFound, get_campaign

    try:
        get_campaign(session, slug)
    except CampaignNotFound:
        return False
    return True


def test_refreshes_revalidate_with_the_etag_without_preflight(
    tab: Tab, live: Live, host: Host
) -> None:
    tab.page.goto(
        host.page("/etag.html", host_page(live, widget('campaign="demo" refresh="1"', 92)))
    )
    wait_loaded(tab)
    start = len(live.requests)

    def api_calls() -> list[Any]:
        return [r for r in live.requests[start:] if r[1] == "/api/v1/campaigns/demo"]

    # Two refreshes at refresh="1": about two seconds, given ten on a loaded machine.
    wait_until(lambda: len(api_calls()) >= 2, 10, "two refreshes of the widget")
    # The browser's HTTP cache adds If-None-Match itself; no OPTIONS preflight is needed.
    assert all(method == "GET" and etag for method, _path, etag in api_calls())
    assert tab.errors == []


def test_a_tab_coming_back_refreshes_at_once(
    tab: Tab, live: Live, host: Host, live_session: Session
) -> None:
    if not _exists(live_session, "back"):
        factories.campaign(live_session, "back", title="Back fund")
    tab.page.goto(
        host.page("/back.html", host_page(live, widget('campaign="back" refresh="3600"', 92)))
    )
    wait_loaded(tab)
    factories.pay(live_session, "back", f"back-{time.monotonic_ns()}", 50_000)
    # What the browser sends when the reader returns to the tab.
    tab.page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    tab.page.wait_for_function(
        """() => document.querySelector('tracker-progress').shadowRoot
             .querySelector('.a').textContent.startsWith('$500 ')""",
        timeout=3_000,
    )


@pytest.mark.parametrize(
    "path", ["/demo/article", "/", "/donate/demo", "/campaigns/demo/embed", "/embed/demo?cta=Hi"]
)
def test_pages_fit_a_390_px_phone_without_sideways_scrolling(
    tab: Tab, live: Live, path: str
) -> None:
    tab.page.set_viewport_size({"width": 390, "height": 844})
    tab.page.goto(live.origin + path)
    tab.page.wait_for_load_state("load")
    width = tab.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"{path} is {width} px wide"


@pytest.mark.parametrize("width", [900, 390])
def test_a_closed_campaign_keeps_its_figures_and_shows_no_donate(
    tab: Tab, live: Live, host: Host, live_session: Session, width: int
) -> None:
    # Issue #10 item 13: the bar stays, with final figures; the Donate button goes.
    slug = f"over-{width}"
    if not _exists(live_session, slug):
        factories.campaign(live_session, slug)
        factories.pay(live_session, slug, f"{slug}-1", 281_100)
        update_campaign(live_session, slug, {"status": CampaignStatus.CLOSED}, "test")
        live_session.commit()
    tab.page.set_viewport_size({"width": width, "height": 600})
    url = host.page(f"/{slug}.html", host_page(live, widget(f'campaign="{slug}" cta="{CTA}"')))
    tab.page.goto(url)
    wait_loaded(tab)
    seen = tab.page.locator("tracker-progress").evaluate(READ_WIDGET)
    assert api(live, slug)["closed"] is True
    assert seen["amount"] == "$2,811 raised of $5,000"
    assert seen["fill"] == "56.22%"
    assert seen["cta"] == "This campaign has ended"
    assert seen["link"] == 0
    assert (
        tab.page.locator("tracker-progress").evaluate(
            "(el) => el.shadowRoot.querySelector('.c a').checkVisibility()"
        )
        is False
    )
    assert seen["height"] == 140
    # The iframe page says the same, and links nowhere.
    tab.page.goto(f"{live.origin}/embed/{slug}?cta=Hi")
    assert tab.page.locator(".c span").text_content() == "This campaign has ended"
    assert tab.page.locator("a").count() == 0
    assert tab.errors == []


@pytest.mark.parametrize(
    ("attributes", "height", "corner"),
    [
        ('campaign="{slug}"', 92, "Ended"),
        ('campaign="{slug}" show-donors', 92, "1 donor · Ended"),
        ('campaign="{slug}" size="compact" cta="Help" show-donors', 66, "1 donor · Ended"),
        # The call to action row says it already.
        ('campaign="{slug}" cta="Help" show-donors', 140, "1 donor"),
    ],
)
def test_a_closed_campaign_without_a_call_to_action_row_says_it_has_ended(
    tab: Tab,
    live: Live,
    host: Host,
    live_session: Session,
    attributes: str,
    height: int,
    corner: str,
) -> None:
    slug = "over-bare"
    if not _exists(live_session, slug):
        factories.campaign(live_session, slug)
        factories.pay(live_session, slug, f"{slug}-1", 281_100)
        update_campaign(live_session, slug, {"status": CampaignStatus.CLOSED}, "test")
        live_session.commit()
    tab.page.set_viewport_size({"width": 390, "height": 600})
    page = host_page(live, widget(attributes.format(slug=slug), height))
    tab.page.goto(host.page(f"/{slug}-{height}-{len(corner)}.html", page))
    wait_loaded(tab)
    element = tab.page.locator("tracker-progress")
    seen = element.evaluate(READ_WIDGET)
    assert seen["donors"] == corner
    assert seen["amount"] == "$2,811 raised of $5,000" and seen["link"] == 0
    assert seen["height"] == height
    # Seen whole, and the figures beside it too: neither is cut at a phone's width.
    assert element.evaluate(
        """(e) => [...e.shadowRoot.querySelectorAll('.a, .d')].every(
             (x) => x.scrollWidth <= x.clientWidth && x.getBoundingClientRect().width > 0
               || x.textContent === '')"""
    )
    assert tab.errors == []
