"""The project's own docs say what the code does (checked where a test can check)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tracker.services.demo import seed_demo

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_docs_link_only_to_files_the_project_has() -> None:
    for doc in DOCS:
        text = doc.read_text()
        # DESIGN.md is not part of the project: the contract lives in docs/api.md.
        assert "DESIGN.md" not in text, doc.name
        for target in re.findall(r"\]\(((?:\.\./|docs/)?[\w./-]+\.md)(?:#[\w-]+)?\)", text):
            assert (doc.parent / target).resolve().exists(), (doc.name, target)
    assert "](docs/api.md)" in (ROOT / "README.md").read_text()


def test_docs_say_proxyfix_is_wired() -> None:
    text = (ROOT / "docs/donate.md").read_text()
    assert "not wired yet" not in text.lower()
    assert "TRACKER_TRUSTED_PROXIES" in text


def test_the_etag_is_the_first_128_bits_of_the_bodys_sha256(
    client: FlaskClient, session: Session
) -> None:
    seed_demo(session)
    session.commit()
    response = client.get("/api/v1/campaigns/demo")
    assert response.headers["ETag"] == f'"{hashlib.sha256(response.data).hexdigest()[:32]}"'
    for doc in ("README.md", "docs/api.md"):
        assert "first 128 bits" in (ROOT / doc).read_text(), doc
