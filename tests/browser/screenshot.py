"""Take the README's screenshot of the demo article: ``python -m tests.browser.screenshot``.

Serves a fresh SQLite database with the demo campaign on loopback, opens
``/demo/article`` in Debian's headless Chromium and saves ``docs/demo-article.png``.

``python -m tests.browser.screenshot --closed OUT_DIR`` closes the demo campaign
first and saves the article (the widget with final figures and no Donate) at
1,100 and 390 px: ``closed-widget-wide.png`` and ``closed-widget-narrow.png``.
"""

from __future__ import annotations

import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tracker import create_app, migrate
from tracker.db import Database
from tracker.models import CampaignStatus
from tracker.services.campaigns import update_campaign
from tracker.services.demo import DEMO_SLUG, seed_demo

OUT = Path(__file__).resolve().parents[2] / "docs" / "demo-article.png"


@contextmanager
def served(seed: Callable[[Session], None]) -> Iterator[tuple[str, Browser]]:
    """A fresh SQLite database seeded by ``seed``, served on loopback, and a Chromium.

    The screenshot scripts' common ground (this one and ``admin_screenshots``).

    :param seed: fills the database in one session, committed after it.
    :returns: the app's base URL (``http://127.0.0.1:PORT``) and the browser.
    """
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/shots.sqlite3"
        database = Database(url)
        migrate.upgrade(database.engine)
        with database.session() as session:
            seed(session)
            session.commit()
        database.dispose()
        app = create_app({"DATABASE_URL": url, "SECRET_KEY": "s" * 40})
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    yield f"http://127.0.0.1:{server.server_port}", browser
                finally:
                    browser.close()
        finally:
            server.shutdown()
            server.server_close()
            app.extensions["tracker.db"].dispose()


def main(out: Path = OUT, *, closed: bool = False) -> None:
    """Serve the demo, load the article, wait for the bar, save a screenshot to ``out``.

    :param closed: close the demo campaign first; ``out`` is then a directory that
        receives the article at 1,100 px (``closed-widget-wide.png``) and 390 px
        (``closed-widget-narrow.png``).
    """

    def seed(session: Session) -> None:
        seed_demo(session)
        if closed:
            update_campaign(session, DEMO_SLUG, {"status": CampaignStatus.CLOSED}, "shots")

    wide, narrow = out / "closed-widget-wide.png", out / "closed-widget-narrow.png"
    shots = [(1100, wide), (390, narrow)] if closed else [(1100, out)]
    with served(seed) as (base, browser):
        for width, path in shots:
            page = browser.new_page(viewport={"width": width, "height": 800})
            page.emulate_media(reduced_motion="reduce")
            page.goto(f"{base}/demo/article")
            page.wait_for_function(
                "document.querySelector('tracker-progress').shadowRoot"
                ".querySelector('.b[aria-valuenow]') !== null"
            )
            page.screenshot(path=str(path), full_page=True)
            print(f"saved {path}", file=sys.stderr)
            page.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--closed"]:
        main(Path(sys.argv[2] if len(sys.argv) > 2 else "/tmp"), closed=True)
    else:
        main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
