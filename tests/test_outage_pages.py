"""A database outage: every route answers 503 in its own type, never a 500.

The database is really taken away (a PostgreSQL database dropped, a SQLite file
replaced by a directory), after the app has served from it.
"""

from __future__ import annotations

import secrets
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import make_url

from tests.conftest import PG_ADMIN_URL, make_app
from tracker import migrate
from tracker.db import Database
from tracker.services.demo import seed_demo

SVG = "{http://www.w3.org/2000/svg}"


def _admin() -> psycopg.Connection:
    url = make_url(PG_ADMIN_URL).set(drivername="postgresql")
    return psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)


@pytest.fixture
def doomed(db_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(kind, URL) of a seeded database of the test's own, which the test may destroy."""
    if db_url.startswith("sqlite"):
        path = tmp_path / "doomed.sqlite3"
        shutil.copyfile(make_url(db_url).database or "", path)
        url = f"sqlite:///{path}"
        kind = "sqlite"
    else:
        name = f"tracker_doomed_{secrets.token_hex(4)}"
        with _admin() as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        url = make_url(db_url).set(database=name).render_as_string(hide_password=False)
        kind = "postgresql"
    database = Database(url)
    if kind == "postgresql":
        migrate.upgrade(database.engine)
    with database.session() as session:
        seed_demo(session)
        session.commit()
    database.dispose()
    try:
        yield kind, url
    finally:
        if kind == "postgresql":
            with _admin() as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


def _take_away(kind: str, url: str, app: Flask) -> None:
    if kind == "postgresql":
        with _admin() as admin:
            admin.execute(f'DROP DATABASE "{make_url(url).database}" WITH (FORCE)')
        return
    app.extensions["tracker.db"].dispose()
    path = Path(make_url(url).database or "")
    for stray in path.parent.glob(path.name + "*"):
        stray.unlink()
    path.mkdir()  # a directory where the file was: SQLite cannot open it


def test_every_route_answers_503_in_its_own_type(doomed: tuple[str, str]) -> None:
    kind, url = doomed
    app = make_app(url, WTF_CSRF_ENABLED=False)
    client = app.test_client()
    assert client.get("/embed/demo").status_code == 200
    _take_away(kind, url, app)

    for path in ("/donate/demo", "/campaigns/demo/embed", "/donate/demo/thanks?t=x"):
        page = client.get(path)
        assert page.status_code == 503, path
        assert page.mimetype == "text/html"
        assert "Temporarily unavailable, try again in a minute." in page.text
        assert page.headers["Retry-After"] == "60"
        assert page.headers["Cache-Control"] == "no-store"
        assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    pledge = client.post("/donate/demo", data={"amount": "2500", "email": "a@example.org"})
    assert pledge.status_code == 503
    assert pledge.mimetype == "text/html"

    # Inside a publisher's iframe: the neutral bar, framable, with the message.
    frame = client.get("/embed/demo?cta=Help+us")
    assert frame.status_code == 503
    assert frame.mimetype == "text/html"
    assert frame.headers["Retry-After"] == "5"
    assert frame.headers["Content-Security-Policy"].startswith("frame-ancestors *")
    assert "X-Frame-Options" not in frame.headers
    assert "Temporarily unavailable, try again in a minute." in frame.text
    assert "raised" not in frame.text and "aria-valuenow" not in frame.text
    assert "Donate</a>" not in frame.text and "Help us" in frame.text

    image = client.get("/campaigns/demo/progress.svg")
    assert image.status_code == 503
    assert image.mimetype == "image/svg+xml"
    svg = ET.fromstring(image.data)
    # The white card and the grey track: no fill, no tier label, no figure.
    assert len(svg.findall(f"{SVG}rect")) == 2
    texts = [t.text for t in svg.findall(f"{SVG}text")]
    assert texts == ["Temporarily unavailable, try again in a minute."]
    assert "$" not in image.text

    api = client.get("/api/v1/campaigns/demo")
    assert api.status_code == 503
    assert api.get_json()["error"] == "unavailable"
    assert api.headers["Retry-After"] == "5"
    assert client.get("/healthz").status_code == 503

    # Pages that need no database still answer.
    assert client.get("/demo/article").status_code == 200
    assert client.get("/").status_code == 200
    app.extensions["tracker.db"].dispose()


def test_the_neutral_bar_speaks_the_locale_option_during_an_outage(
    doomed: tuple[str, str],
) -> None:
    # No campaign's locale can be read while the database is down: the publisher's
    # explicit option is all there is to go by.
    kind, url = doomed
    app = make_app(url)
    client = app.test_client()
    assert client.get("/embed/demo").status_code == 200
    _take_away(kind, url, app)

    frame = client.get("/embed/demo?locale=fr_FR&cta=Aidez-nous")
    assert frame.status_code == 503
    assert '<html lang="fr">' in frame.text
    assert "Temporairement indisponible, réessayez dans une minute." in frame.text
    assert 'aria-label="Progression de la collecte"' in frame.text

    image = client.get("/campaigns/demo/progress.svg?locale=de-DE")
    assert image.status_code == 503
    texts = [t.text for t in ET.fromstring(image.data).findall(f"{SVG}text")]
    assert texts == ["Vorübergehend nicht verfügbar, versuchen Sie es in einer Minute erneut."]
    assert "Spendenfortschritt" in image.text
    # An image cannot wrap: a message wider than the compact image is squeezed into it.
    compact = ET.fromstring(client.get("/campaigns/demo/progress.svg?locale=de&size=compact").data)
    (line,) = compact.findall(f"{SVG}text")
    assert line.text and line.text.startswith("Vorübergehend")
    room = int(compact.get("width") or 0) - 2 * float(line.get("x") or 0)
    assert 0 < float(line.get("textLength") or "inf") <= room
    english = ET.fromstring(client.get("/campaigns/demo/progress.svg").data)
    assert english.find(f"{SVG}text").get("textLength") is None  # type: ignore[union-attr]
    app.extensions["tracker.db"].dispose()


def test_the_neutral_bar_of_an_unknown_campaign_speaks_the_locale_option(
    client: FlaskClient,
) -> None:
    frame = client.get("/embed/nosuch?locale=es_ES")
    assert frame.status_code == 404
    assert '<html lang="es">' in frame.text
    assert 'aria-label="Progreso de la recaudación"' in frame.text
    assert "Donate" not in frame.text and "Donar" not in frame.text


def test_the_landing_page_links_what_a_newcomer_looks_for(db_url: str) -> None:
    client = make_app(db_url).test_client()
    page = client.get("/")
    assert page.status_code == 200
    for href in (
        "/demo/article",
        "/campaigns/demo/embed",
        "/api/v1/campaigns/demo",
        "/donate/demo",
    ):
        assert f'href="{href}"' in page.text, href
    assert "docs/" in page.text and "README.md" in page.text
    # The admin is installed: linked, and it answers (the sign-in page), never a 404.
    assert 'href="/admin/"' in page.text
    assert client.get("/admin/").status_code == 303
