"""Public texts in the campaign's language (en, fr, de, es), an explicit locale winning.

HTTP tests on SQLite and PostgreSQL for the iframe page, the SVG, the API's
``texts``, the donate and thanks pages; plural rules; the English fallback;
and the catalogs themselves (complete, compiled, covering every source string).
"""

from __future__ import annotations

import html
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests import factories
from tests.conftest import make_app
from tests.test_donate import submit
from tracker import create_app
from tracker.domain.money import format_money
from tracker.embed.render import donors_text
from tracker.i18n import LANGUAGES, TRANSLATIONS, select_locale
from tracker.models import CampaignStatus

ROOT = Path(__file__).resolve().parent.parent
TRANSLATED = tuple(lang for lang in LANGUAGES if lang != "en")

# What each language must say; amounts are checked separately (Babel formats them).
WORDS = {
    "en_US": {
        "raised_of": " raised of ",
        "donate": "Donate",
        "donors": "2 donors",
        "tier": "tier",
        "title": "Donate: Fund us",
        "pledge": ">Pledge</button>",
        "custom": "Or enter your own amount",
        "recorded": "to Fund us is recorded.",
        "how_to_pay": "How to pay",
        "lang": "en",
    },
    "fr_FR": {
        "raised_of": " collectés sur ",
        "donate": "Faire un don",
        "donors": "2 donateurs",
        "tier": "palier de",
        "title": "Faire un don\u00a0: Fund us",
        "pledge": ">Promettre un don</button>",
        "custom": "Ou saisissez votre montant",
        "recorded": "à Fund us est enregistrée.",
        "how_to_pay": "Comment payer",
        "lang": "fr",
    },
    "de_DE": {
        "raised_of": " von ",
        "donate": "Spenden",
        "donors": "2 Spender",
        "tier": "Stufe",
        "title": "Spenden: Fund us",
        "pledge": ">Spende zusagen</button>",
        "custom": "Oder geben Sie Ihren Betrag ein",
        "recorded": "an Fund us ist gespeichert.",
        "how_to_pay": "So zahlen Sie",
        "lang": "de",
    },
    "es_ES": {
        "raised_of": " recaudados de ",
        "donate": "Donar",
        "donors": "2 donantes",
        "tier": "nivel de",
        "title": "Donar: Fund us",
        "pledge": ">Prometer la donación</button>",
        "custom": "O introduzca su importe",
        "recorded": "a Fund us se ha registrado.",
        "how_to_pay": "Cómo pagar",
        "lang": "es",
    },
}


def fund(session: Session, locale: str) -> None:
    """$3,000 raised of 0 / 2,500 / 5,000 $ by two donors, in ``locale``."""
    factories.campaign(session, "fund", locale=locale)
    factories.pay(session, "fund", "p1", 100_000, donor="a")
    factories.pay(session, "fund", "p2", 200_000, donor="b")


def text(body: str) -> str:
    """The visible text of an HTML or SVG document, tags removed, entities decoded."""
    body = re.sub(r"<(style|script)>.*?</\1>", "", body, flags=re.S)
    # ASCII whitespace only: amounts hold (narrow) no-break spaces.
    return html.unescape(re.sub(r"[ \t\r\n]+", " ", re.sub(r"<[^>]+>", "", body)))


@pytest.mark.parametrize("locale", list(WORDS))
def test_iframe_svg_and_api_speak_the_campaign_language(
    client: FlaskClient, session: Session, locale: str
) -> None:
    fund(session, locale)
    words = WORDS[locale]
    raised = format_money(300_000, "USD", locale, cents=False)
    goal = format_money(500_000, "USD", locale, cents=False)

    frame = client.get("/embed/fund?show-donors=1&cta=Help")
    assert frame.status_code == 200
    assert f'<html lang="{words["lang"]}">' in frame.text
    shown = text(frame.text)
    # German puts the verb last ("3.000 $ von 5.000 $ gesammelt"): still this substring.
    assert f"{raised}{words['raised_of']}{goal}" in shown
    assert words["donors"] in shown
    assert f">{words['donate']}</a>" in frame.text
    assert words["tier"] in html.unescape(frame.text)  # in aria-valuetext

    image = client.get("/campaigns/fund/progress.svg?show-donors=1")
    assert image.status_code == 200
    assert words["raised_of"] in text(image.text)
    assert words["donors"] in text(image.text)

    api = client.get("/api/v1/campaigns/fund").get_json()
    texts = api["texts"]
    assert texts["lang"] == words["lang"]
    assert api["raised_display"] == raised
    assert raised in texts["summary"] and words["raised_of"] in texts["summary"]
    assert words["tier"] in texts["value_text"]
    assert texts["donors"] == words["donors"]
    assert texts["donate"] == words["donate"]


@pytest.mark.parametrize("locale", list(WORDS))
def test_donate_and_thanks_pages_speak_the_campaign_language(
    client: FlaskClient, session: Session, locale: str
) -> None:
    fund(session, locale)
    words = WORDS[locale]
    page = client.get("/donate/fund")
    assert page.status_code == 200
    assert f'<html lang="{words["lang"]}">' in page.text
    assert f"<title>{words['title']}</title>" in html.unescape(page.text)
    assert words["custom"] in page.text
    assert words["pledge"] in html.unescape(page.text)
    assert format_money(2500, "USD", locale, cents=False) in page.text  # a preset

    # An empty amount comes back with the message in the same language.
    refused = submit(client, amount="", custom_amount="")
    assert refused.status_code == 400
    assert f'<html lang="{words["lang"]}">' in refused.text

    pledged = submit(client, amount="", custom_amount="25")
    assert pledged.status_code == 303
    thanks = client.get(pledged.headers["Location"])
    assert thanks.status_code == 200
    shown = text(thanks.text)
    assert words["recorded"] in shown
    assert format_money(2500, "USD", locale, cents=True) in shown
    assert words["how_to_pay"] in shown


def test_donate_form_messages_are_translated(client: FlaskClient, session: Session) -> None:
    fund(session, "fr_FR")
    cases = {
        "": "Saisissez un montant.",
        "10,001": "Les montants en USD ont au plus 2 décimales.",
        "1000000000": "Le montant est trop élevé (au plus 100\u202f000\u202f000 USD).",
        "-5": "Le montant doit être positif.",
    }
    for typed, message in cases.items():
        response = submit(client, amount="custom", custom_amount=typed)
        assert response.status_code == 400
        assert message in html.unescape(response.text), typed
    response = submit(client, email="not-an-email")
    assert "Cette adresse e-mail n'est pas valide." in html.unescape(response.text)
    response = submit(client, message="x" * 1001)
    assert "1\u202f000 caractères au maximum" in html.unescape(response.text)


def test_an_explicit_locale_overrides_the_campaigns(client: FlaskClient, session: Session) -> None:
    fund(session, "fr_FR")
    raised = format_money(300_000, "USD", "de_DE", cents=False)
    frame = client.get("/embed/fund?locale=de-DE")
    assert '<html lang="de">' in frame.text
    assert f"{raised} von " in text(frame.text)
    assert " von " in text(client.get("/campaigns/fund/progress.svg?locale=de_DE").text)
    api = client.get("/api/v1/campaigns/fund?locale=de-DE").get_json()
    assert api["raised_display"] == raised
    assert api["texts"]["lang"] == "de"
    assert api["texts"]["donate"] == "Spenden"
    assert [t["label"] for t in api["tiers"]][-1] == format_money(
        500_000, "USD", "de_DE", cents=False
    )
    # Without the option the same campaign still speaks French.
    assert client.get("/api/v1/campaigns/fund").get_json()["texts"]["donate"] == "Faire un don"


@pytest.mark.parametrize("locale", ["ja_JP", "pt_BR"])
def test_a_locale_without_a_catalog_gets_english_words_and_its_own_amounts(
    client: FlaskClient, session: Session, locale: str
) -> None:
    # The documented rule: words fall back to English; amounts keep the locale's CLDR format.
    factories.campaign(session, "fund", currency="EUR")
    factories.pay(session, "fund", "p1", 281_150, donor="a")
    raised = format_money(281_150, "EUR", locale, cents=False)
    frame = client.get(f"/embed/fund?locale={locale}")
    assert frame.status_code == 200
    assert '<html lang="en">' in frame.text
    assert f"{raised} raised of " in text(frame.text)
    api = client.get(f"/api/v1/campaigns/fund?locale={locale}").get_json()
    assert api["raised_display"] == raised
    assert api["texts"]["donate"] == "Donate"
    assert api["texts"]["lang"] == "en"


def test_a_campaign_in_a_locale_without_a_catalog_speaks_english(
    client: FlaskClient, session: Session
) -> None:
    factories.campaign(session, "fund", locale="ja_JP", currency="JPY", tiers=[0, 100_000])
    page = client.get("/donate/fund")
    assert page.status_code == 200
    assert '<html lang="en">' in page.text
    assert "Or enter your own amount" in page.text
    assert format_money(0, "JPY", "ja_JP") in page.text


@pytest.mark.parametrize("value", ["xx_XX", "fr_FR_XX_YY_ZZ_QQ", "<b>", ""])
def test_an_invalid_locale_option_is_a_400_never_a_500(
    client: FlaskClient, session: Session, value: str
) -> None:
    fund(session, "en_US")
    api = client.get("/api/v1/campaigns/fund", query_string={"locale": value})
    assert api.status_code == 400
    assert api.get_json()["error"] == "bad_request"
    for path in ("/embed/fund", "/campaigns/fund/progress.svg"):
        response = client.get(path, query_string={"locale": value})
        assert response.status_code == 400
        assert value not in response.text or not value
    repeated = client.get("/api/v1/campaigns/fund?locale=fr&locale=de")
    assert repeated.status_code == 400


def test_an_unknown_campaign_is_answered_in_english(client: FlaskClient) -> None:
    page = client.get("/donate/nope")
    assert page.status_code == 404
    assert "Page not found" in page.text
    assert '<html lang="en">' in page.text


# --- plural rules and catalogs (no database) -------------------------------------------


@pytest.fixture(scope="module")
def bare_app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    url = f"sqlite:///{tmp_path_factory.mktemp('i18n') / 'unused.sqlite3'}"
    return create_app({"DATABASE_URL": url, "SECRET_KEY": "k" * 40, "TESTING": True})


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("en_US", ["0 donors", "1 donor", "2 donors", "1000000 donors"]),
        # French counts 0 and 1 as singular.
        ("fr_FR", ["0 donateur", "1 donateur", "2 donateurs", "1000000 donateurs"]),
        ("de_DE", ["0 Spender", "1 Spender", "2 Spender", "1000000 Spender"]),
        ("es_ES", ["0 donantes", "1 donante", "2 donantes", "1000000 donantes"]),
    ],
)
def test_donor_counts_follow_each_languages_plural_rules(
    bare_app: Flask, locale: str, expected: list[str]
) -> None:
    with bare_app.test_request_context():
        select_locale(locale)
        assert [donors_text(n) for n in (0, 1, 2, 1_000_000)] == expected


def _catalog(lang: str):  # type: ignore[no-untyped-def]
    with (TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return read_po(po, locale=lang)


_PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_catalog_is_complete(lang: str) -> None:
    catalog = _catalog(lang)
    messages = [m for m in catalog if m.id]
    assert len(messages) > 50
    for message in messages:
        assert not message.fuzzy, message.id
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert len(strings) == (catalog.num_plurals if message.pluralizable else 1), message.id
        source = message.id[0] if isinstance(message.id, tuple) else message.id
        for string in strings:
            assert string.strip(), f"{lang}: no translation for {source!r}"
            # The same parameters, or the page would raise (or lose an amount).
            assert set(_PLACEHOLDER.findall(string)) == set(_PLACEHOLDER.findall(source)), source


@pytest.mark.parametrize("lang", TRANSLATED)
def test_committed_mo_files_are_compiled_from_the_po_files(lang: str) -> None:
    # The .mo files are committed so a fresh clone or an installed package needs no
    # build step; this keeps them from drifting from their .po (fix: make translations).
    compiled = io.BytesIO()
    write_mo(compiled, _catalog(lang))
    committed = (TRANSLATIONS / lang / "LC_MESSAGES" / "messages.mo").read_bytes()
    assert committed == compiled.getvalue(), f"run `make translations` and commit ({lang})"


def test_the_catalogs_hold_every_string_of_the_sources(tmp_path: Path) -> None:
    pot = tmp_path / "messages.pot"
    subprocess.run(
        [
            str(Path(sys.executable).with_name("pybabel")),
            "-q",
            "extract",
            "-F",
            "babel.cfg",
            "-k",
            "lazy_gettext",
            "-k",
            "N_",
            "-o",
            str(pot),
            ".",
        ],
        cwd=ROOT,
        check=True,
    )
    with pot.open("rb") as source:
        wanted = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(source) if m.id}
    assert "%(raised)s raised of %(goal)s" in wanted
    for lang in TRANSLATED:
        have = {m.id if isinstance(m.id, str) else m.id[0] for m in _catalog(lang) if m.id}
        assert wanted <= have, f"{lang} misses {sorted(wanted - have)}: run `make translations`"


def test_a_long_summary_is_squeezed_beside_the_donor_count_of_a_small_image(
    client: FlaskClient, session: Session
) -> None:
    fund(session, "es_ES")
    query = "?size=compact&show-donors=1"
    # "3.000 US$ recaudados de 5.000 US$" and "2 donantes" do not both fit in 320 units.
    spanish = client.get("/campaigns/fund/progress.svg" + query).text
    fit = re.search(
        r'class="a"[^>]* textLength="([\d.]+)" lengthAdjust="spacingAndGlyphs"', spanish
    )
    assert fit is not None
    assert float(fit.group(1)) < 320 - 2 * 8 - 60
    # English is shorter and is left as it is; so is the full size.
    assert (
        "textLength" not in client.get("/campaigns/fund/progress.svg" + query + "&locale=en").text
    )
    assert "textLength" not in client.get("/campaigns/fund/progress.svg?show-donors=1").text


def test_the_rate_limit_page_speaks_the_campaigns_language(db_url: str, session: Session) -> None:
    fund(session, "de_DE")
    app = make_app(db_url, DONATE_RATE_LIMIT="1 per minute")
    try:
        client = app.test_client()
        assert submit(client, email="bad").status_code == 400
        limited = submit(client)
        assert limited.status_code == 429
        assert "Zu viele Versuche" in limited.text
        assert '<html lang="de">' in limited.text
    finally:
        app.extensions["tracker.db"].dispose()


def test_why_a_campaign_takes_no_donations_is_said_in_its_language(
    client: FlaskClient, session: Session
) -> None:
    factories.campaign(session, "fund", locale="es_ES", status=CampaignStatus.CLOSED)
    page = client.get("/donate/fund")
    assert page.status_code == 200
    assert "Esta campaña está cerrada y ya no acepta donaciones." in page.text
    assert "Gracias por su interés." in page.text
