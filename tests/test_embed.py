"""The embeds over HTTP, on SQLite and PostgreSQL: headers, values, validation, escaping."""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from xml.etree import ElementTree

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from tests import factories
from tests.conftest import make_app
from tracker.embed.blueprint import EMBED_CACHE_CONTROL, embed_script
from tracker.models import CampaignStatus
from tracker.services.demo import seed_demo

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = '<script>alert("x")</script>&"\''
EMBED_ROUTES = ("/embed/demo", "/campaigns/demo/progress.svg")


@pytest.fixture
def demo(session: Session) -> None:
    """The demo campaign: $2,811 raised of 0 / 2,500 / 5,000 $, five donors."""
    seed_demo(session)
    session.commit()


def assert_embeddable(response: TestResponse) -> None:
    """Framable anywhere, no X-Frame-Options, no cookie."""
    assert "frame-ancestors *" in response.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in response.headers
    assert "Set-Cookie" not in response.headers


@pytest.mark.usefixtures("demo")
@pytest.mark.parametrize("path", EMBED_ROUTES)
def test_embed_routes_are_framable_cacheable_and_cookieless(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert_embeddable(response)
    assert response.headers["Cache-Control"] == EMBED_CACHE_CONTROL
    # Revalidation with the ETag answers 304 without a body.
    again = client.get(path, headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    assert again.data == b""


@pytest.mark.usefixtures("demo")
def test_embed_cache_lets_a_payment_show_within_five_seconds() -> None:
    max_age = int(re.search(r"max-age=(\d+)", EMBED_CACHE_CONTROL).group(1))  # type: ignore[union-attr]
    # Process cache (1 s by default) + one browser or proxy cache + a second one.
    assert 1 + 2 * max_age <= 5
    assert "stale-while-revalidate" not in EMBED_CACHE_CONTROL


@pytest.mark.usefixtures("demo")
@pytest.mark.parametrize("path", ["/campaigns/demo/embed", "/demo/article", "/livez"])
def test_other_pages_keep_forbidding_framing(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert "Set-Cookie" not in response.headers


def test_embed_js_fits_its_budget_and_is_cached_for_a_day(client: FlaskClient) -> None:
    response = client.get("/embed.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert len(gzip.compress(response.data, 9)) <= 2048
    assert response.headers["Cache-Control"] == "public, max-age=86400"
    assert_embeddable(response)
    assert (
        client.get("/embed.js", headers={"If-None-Match": response.headers["ETag"]}).status_code
        == 304
    )


def test_versioned_embed_js_is_immutable_and_old_versions_redirect(client: FlaskClient) -> None:
    body, digest = embed_script()
    pinned = client.get(f"/embed.{digest}.js")
    assert pinned.status_code == 200
    assert pinned.data == body
    assert pinned.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    old = client.get("/embed.0123456789ab.js")
    assert old.status_code == 302
    assert old.headers["Location"].endswith("/embed.js")


def test_embed_js_carries_the_iframe_css() -> None:
    # embed.js cannot include a file: its shadow-root CSS is a copy, held in step here.
    script = (ROOT / "tracker/static/embed.js").read_text()
    for rule in (ROOT / "templates/embed/_bar.css").read_text().splitlines():
        assert rule in script, rule


@pytest.mark.usefixtures("demo")
def test_iframe_shows_what_the_api_says(client: FlaskClient) -> None:
    api = client.get("/api/v1/campaigns/demo").get_json()
    html = client.get("/embed/demo?show-donors=1&cta=Help+us").get_data(as_text=True)
    assert f"<b>{api['raised_display']}</b> raised of $5,000" in html
    labels = re.findall(r'<span class="m[^"]*"[^>]*>([^<]*)</span>', html)
    assert labels == [tier["label"] for tier in api["tiers"]]
    assert re.findall(r'<span class="m r"', html) == ['<span class="m r"'] * 2
    assert 'aria-valuenow="281100"' in html
    assert 'aria-valuemax="500000"' in html
    assert 'aria-valuetext="$2,811 raised of $5,000; tier $2,500 reached"' in html
    assert "5 donors" in html
    assert "<span>Help us</span>" in html
    # Relative: a cached page must not carry whatever Host header a request sent.
    assert 'href="/donate/demo"' in html
    assert "width:56.22%" in html


@pytest.mark.usefixtures("demo")
def test_iframe_options(client: FlaskClient) -> None:
    html = client.get(
        "/embed/demo?size=compact&color=%23C00&locale=fr-FR&cta=Give&cta-href=/x"
    ).get_data(as_text=True)
    assert 'class="w s"' in html
    assert "background:#c00" in html
    assert "2\u202f811\xa0$US" in html or "2\u202f811\xa0$" in html
    assert "Give" not in html  # the compact bar has no call to action


@pytest.mark.usefixtures("demo")
def test_cached_pages_ignore_the_host_header(client: FlaskClient) -> None:
    html = client.get("/embed/demo?cta=Go", headers={"Host": "evil.example"}).get_data(as_text=True)
    assert "evil.example" not in html


def test_public_url_makes_links_absolute(db_url: str, session: Session) -> None:
    seed_demo(session)
    session.commit()
    app = make_app(db_url, PUBLIC_URL="https://give.example.org")
    html = app.test_client().get("/embed/demo?cta=Go", base_url="https://give.example.org")
    html = html.get_data(as_text=True)
    assert 'href="https://give.example.org/donate/demo"' in html
    app.extensions["tracker.db"].dispose()


@pytest.mark.usefixtures("demo")
def test_iframe_page_has_a_hash_allowed_script_only(client: FlaskClient) -> None:
    response = client.get("/embed/demo")
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'sha256-" in policy
    assert "postMessage" in response.get_data(as_text=True)


@pytest.mark.usefixtures("demo")
def test_svg_is_well_formed_with_tier_labels(client: FlaskClient) -> None:
    response = client.get("/campaigns/demo/progress.svg?show-donors=1")
    assert response.mimetype == "image/svg+xml"
    root = ElementTree.fromstring(response.data)
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert texts == ["$2,811 raised of $5,000", "5 donors", "$0", "$2,500", "$5,000"]
    compact = ElementTree.fromstring(client.get("/campaigns/demo/progress.svg?size=compact").data)
    assert compact.get("width") == "320"


@pytest.mark.usefixtures("demo")
@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/embed/demo?colour=red", "unknown option"),
        ("/embed/demo?size=huge", "size must be"),
        ("/embed/demo?size=full&size=compact", "more than once"),
        ("/embed/demo?color=red", "color must be"),
        ("/embed/demo?color=%23abcd", "color must be"),
        ("/embed/demo?show-donors=maybe", "show-donors must be"),
        ("/embed/demo?locale=xx-nope", "locale must be"),
        ("/embed/demo?cta=" + "x" * 121, "cta must be"),
        ("/embed/demo?cta=a%00b", "cta must be"),
        ("/embed/demo?cta-href=javascript:alert(1)", "cta-href must be"),
        ("/embed/demo?cta-href=//evil.example/", "cta-href must be"),
        ("/embed/demo?cta-href=data:text/html,x", "cta-href must be"),
        # URLs Python's urlsplit() itself refuses (an unclosed IPv6 bracket, a host
        # that NFKC normalisation changes): refused like any other, not a 500.
        ("/embed/demo?cta=x&cta-href=http://%5B", "cta-href must be"),
        ("/embed/demo?cta-href=http://ex%EF%BC%83ample.org/", "cta-href must be"),
        ("/campaigns/demo/progress.svg?cta=x", "unknown option"),
        ("/campaigns/demo/progress.svg?color=%3Cscript%3E", "color must be"),
    ],
)
def test_bad_options_are_refused_with_a_plain_message(
    client: FlaskClient, path: str, message: str
) -> None:
    response = client.get(path)
    assert response.status_code == 400
    assert response.mimetype == "text/plain"
    assert message in response.get_data(as_text=True)
    assert_embeddable(response)


@pytest.mark.usefixtures("demo")
@pytest.mark.parametrize("name", ["<script>", "colour", "a%22b"])
def test_a_bad_option_is_never_reflected(client: FlaskClient, name: str) -> None:
    body = client.get(f"/embed/demo?{name}=<img src=x onerror=alert(1)>").get_data(as_text=True)
    assert "<" not in body
    assert "onerror" not in body
    assert "colour" not in body


@pytest.mark.parametrize(
    "path", ["/embed/nope", "/campaigns/nope/progress.svg", "/campaigns/nope/embed"]
)
def test_unknown_campaign_is_404(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "nope" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "path", ["/embed/secret", "/campaigns/secret/progress.svg", "/campaigns/secret/embed"]
)
def test_draft_campaign_is_404(client: FlaskClient, session: Session, path: str) -> None:
    factories.campaign(session, "secret", status=CampaignStatus.DRAFT)
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("slug", ["nope", "secret"])
def test_unknown_or_draft_embeds_draw_the_neutral_bar(
    client: FlaskClient, session: Session, slug: str
) -> None:
    factories.campaign(session, "secret", status=CampaignStatus.DRAFT)
    frame = client.get(f"/embed/{slug}?cta=Help+us&show-donors=1")
    assert frame.status_code == 404
    assert frame.mimetype == "text/html"
    assert_embeddable(frame)
    html = frame.get_data(as_text=True)
    # An empty track: no amounts, no tier marks, no donate link, no progress value.
    assert '<div class="f" style="width:0%;' in html
    assert "raised" not in html and "$" not in html and 'class="m' not in html
    assert "aria-valuenow" not in html
    assert "<a " not in html and "Help us" in html
    image = client.get(f"/campaigns/{slug}/progress.svg")
    assert image.status_code == 404
    assert image.mimetype == "image/svg+xml"
    svg = ElementTree.fromstring(image.data)
    assert len(svg.findall("{http://www.w3.org/2000/svg}rect")) == 2  # card and empty track
    assert svg.findall("{http://www.w3.org/2000/svg}text") == []


def test_hostile_title_and_labels_are_escaped(client: FlaskClient, session: Session) -> None:
    factories.campaign(session, "evil", title=HOSTILE, tier_labels=[None, HOSTILE])
    factories.pay(session, "evil", "p1", 300_000)
    html = client.get("/embed/evil").get_data(as_text=True)
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    svg = client.get("/campaigns/evil/progress.svg")
    root = ElementTree.fromstring(svg.data)  # still well-formed XML
    assert not list(root.iter("{http://www.w3.org/2000/svg}script"))
    assert HOSTILE in "".join(root.itertext())
    builder = client.get("/campaigns/evil/embed").get_data(as_text=True)
    assert "<script>alert" not in builder


@pytest.mark.usefixtures("demo")
def test_a_payment_shows_in_the_iframe_and_the_image(client: FlaskClient, session: Session) -> None:
    factories.pay(session, "demo", "new-payment", 250_000, donor="demo:new")
    html = client.get("/embed/demo").get_data(as_text=True)
    assert "<b>$5,311</b>" in html
    assert "tier $5,000 reached" in html
    assert "width:100.00%" in html
    assert b"$5,311" in client.get("/campaigns/demo/progress.svg").data


@pytest.mark.usefixtures("demo")
def test_builder_shows_escaped_snippets_for_the_chosen_options(client: FlaskClient) -> None:
    response = client.get(
        "/campaigns/demo/embed?size=full&color=%23c00000&cta=Say+%22hi%22&show-donors=1&locale="
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    # The snippet is shown as text: its own quotes escaped once more.
    assert (
        "&lt;tracker-progress campaign=&#34;demo&#34; color=&#34;#c00000&#34; "
        "cta=&#34;Say &amp;#34;hi&amp;#34;&#34; show-donors" in html
    )
    assert "/embed/demo?color=%23c00000&amp;cta=Say+%22hi%22&amp;show-donors=1" in html
    assert "progress.svg?color=%23c00000&amp;show-donors=1" in html
    assert "height:140px" in html


@pytest.mark.usefixtures("demo")
def test_builder_marks_the_language_of_the_image_preview(client: FlaskClient) -> None:
    # The page is English; the image's alt text is the embed's language, and a screen
    # reader must know it (the script and iframe previews carry their own lang).
    html = client.get("/campaigns/demo/embed?locale=fr_FR").get_data(as_text=True)
    assert re.search(
        r'<img src="[^"]*progress\.svg\?locale=fr_FR" alt="[^"]*collectés[^"]*" lang="fr">', html
    )
    english = client.get("/campaigns/demo/embed").get_data(as_text=True)
    assert re.search(r'<img src="[^"]*progress\.svg" alt="[^"]*raised[^"]*" lang="en">', english)


@pytest.mark.usefixtures("demo")
@pytest.mark.parametrize(
    ("query", "message"),
    [("size=huge", "size must be full or compact"), ("cta-href=http://%5B::1", "cta-href must be")],
)
def test_builder_reports_a_bad_option(client: FlaskClient, query: str, message: str) -> None:
    response = client.get(f"/campaigns/demo/embed?{query}")
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


@pytest.mark.usefixtures("demo")
def test_demo_article_carries_the_bar_and_the_call_to_action(client: FlaskClient) -> None:
    html = client.get("/demo/article").get_data(as_text=True)
    assert '<script src="http://localhost/embed.js" async></script>' in html
    assert '<tracker-progress campaign="demo"' in html
    assert 'cta="Do you like this content? Consider helping us!"' in html


@pytest.mark.parametrize(
    "settings",
    [
        {"TRUSTED_HOSTS": "give.example.org, .example.net"},
        {"PUBLIC_URL": "https://give.example.org"},  # its host is the trusted one
    ],
    ids=["trusted-hosts", "public-url"],
)
@pytest.mark.parametrize("path", ["/demo/article", "/campaigns/demo/embed", "/donate/demo"])
def test_a_foreign_host_header_is_refused_where_a_host_is_configured(
    db_url: str, session: Session, settings: dict[str, str], path: str
) -> None:
    seed_demo(session)
    session.commit()
    app = make_app(db_url, **settings)
    client = app.test_client()
    foreign = client.get(path, headers={"Host": "evil.example"})
    assert foreign.status_code == 400
    assert "evil.example&#39; is not trusted" in foreign.get_data(as_text=True)
    good = client.get(path, base_url="https://give.example.org")
    assert good.status_code == 200
    assert "evil.example" not in good.get_data(as_text=True)
    if "TRUSTED_HOSTS" in settings:
        # A listed subdomain wildcard, and the snippet then names the host asked for.
        sub = client.get(path, base_url="http://cdn.example.net")
        assert sub.status_code == 200
    app.extensions["tracker.db"].dispose()


def test_without_a_configured_host_any_host_is_answered(db_url: str, session: Session) -> None:
    # Development: nothing configured. Production sets TRACKER_PUBLIC_URL or
    # TRACKER_TRUSTED_HOSTS (README, configuration).
    seed_demo(session)
    session.commit()
    app = make_app(db_url)
    assert app.config["TRUSTED_HOSTS"] is None
    assert app.test_client().get("/demo/article", headers={"Host": "dev.local"}).status_code == 200
    app.extensions["tracker.db"].dispose()
