"""The README's iframe snippets, run as a publisher would paste them (see conftest.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.browser.conftest import Host, Live, Tab

README = Path(__file__).resolve().parents[2] / "README.md"
DOCUMENTED = "https://tracker.example.org"
CTA = "Do you like this content? Consider helping us!"


def _blocks() -> list[str]:
    return re.findall(r"```html\n(.*?)```", README.read_text(), re.S)


def _iframe_block() -> str:
    (block,) = [b for b in _blocks() if "<iframe" in b]
    return block


def _listener_block() -> str:
    (block,) = [b for b in _blocks() if "tracker:height" in b]
    return block


def _page(live: Live, body: str) -> str:
    # Served from another origin; a wrong starting height shows that something resizes it.
    body = body.replace(DOCUMENTED, live.origin).replace("height:140px", "height:30px")
    return (
        f"<!doctype html><html><head><link rel=icon href='data:,'></head><body>{body}</body></html>"
    )


def _without_script(block: str) -> str:
    return re.sub(r"<script src=[^>]*></script>", "", block)


@pytest.mark.parametrize("resizer", ["embed.js", "listener"])
def test_the_readme_iframe_shows_the_cta_and_sizes_itself(
    tab: Tab, live: Live, host: Host, resizer: str
) -> None:
    iframe = _iframe_block()
    assert "embed.js" in iframe
    body = iframe if resizer == "embed.js" else _without_script(iframe) + _listener_block()
    tab.page.goto(host.page(f"/readme-{resizer}.html", _page(live, body)))
    tab.page.wait_for_function("document.querySelector('iframe').offsetHeight == 140")
    frame = tab.page.frame_locator("iframe")
    assert frame.locator(".c span").text_content() == CTA
    link = frame.locator(".c a")
    assert link.is_visible()
    assert link.evaluate("(a) => a.href").endswith("/donate/demo")
    # The whole card is inside the frame: nothing cut off, no inner scrollbar.
    assert frame.locator("html").evaluate("(e) => e.scrollHeight") == 140
    assert tab.errors == []


def test_without_a_resizer_the_frame_keeps_its_given_height(
    tab: Tab, live: Live, host: Host
) -> None:
    # The control: the resizing above is the snippet's doing, not the browser's.
    tab.page.goto(host.page("/readme-bare.html", _page(live, _without_script(_iframe_block()))))
    tab.page.frame_locator("iframe").locator(".c span").wait_for()
    tab.page.wait_for_timeout(1_200)
    assert tab.page.locator("iframe").evaluate("(f) => f.offsetHeight") == 30
