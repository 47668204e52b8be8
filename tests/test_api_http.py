"""The progress API's HTTP behaviour: ETag and 304, caching and CORS headers, no cookies."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tracker.services.demo import seed_demo

URL = "/api/v1/campaigns/demo"


@pytest.fixture
def demo(session: Session) -> None:
    seed_demo(session)
    session.commit()


@pytest.mark.usefixtures("demo")
def test_document_headers(client: FlaskClient) -> None:
    response = client.get(URL)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["ETag"].startswith('"')
    assert response.headers["Cache-Control"] == "public, max-age=2, stale-while-revalidate=10"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Access-Control-Expose-Headers"] == "ETag"
    assert int(response.headers["Content-Length"]) == len(response.data)
    assert "Set-Cookie" not in response.headers
    # Each header once, whatever the path through the cache.
    names = [name.lower() for name, _ in response.headers]
    assert len(names) == len(set(names))


@pytest.mark.usefixtures("demo")
def test_if_none_match_gives_304(client: FlaskClient) -> None:
    etag = client.get(URL).headers["ETag"]
    response = client.get(URL, headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == etag
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert client.get(URL, headers={"If-None-Match": '"other"'}).status_code == 200
    assert client.get(URL, headers={"If-None-Match": f"W/{etag}"}).status_code == 304


@pytest.mark.usefixtures("demo")
def test_cached_response_is_the_same(app_cached: FlaskClient) -> None:
    first = app_cached.get(URL)
    second = app_cached.get(URL)
    assert first.data == second.data
    assert first.headers["ETag"] == second.headers["ETag"]
    assert sorted(first.headers.keys()) == sorted(second.headers.keys())
    assert app_cached.get(URL, headers={"If-None-Match": first.headers["ETag"]}).status_code == 304


@pytest.fixture
def app_cached(db_url: str) -> Iterator[FlaskClient]:
    from tests.conftest import make_app

    app = make_app(db_url, API_CACHE_SECONDS=60)
    yield app.test_client()
    app.extensions["tracker.db"].dispose()


@pytest.mark.usefixtures("demo")
def test_preflight_allows_revalidation(client: FlaskClient) -> None:
    response = client.options(
        URL,
        headers={
            "Origin": "https://news.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "if-none-match",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "GET" in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["Access-Control-Allow-Headers"] == "If-None-Match"
    assert response.headers["Access-Control-Max-Age"] == "86400"


def test_unknown_campaign_is_a_json_404_with_cors(client: FlaskClient) -> None:
    response = client.get("/api/v1/campaigns/nope")
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
