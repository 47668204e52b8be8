"""Take the README's screenshot of the demo article: ``python -m tests.browser.screenshot``.

Serves a fresh SQLite database with the demo campaign on loopback, opens
``/demo/article`` in Debian's headless Chromium and saves ``docs/demo-article.png``.
"""

from __future__ import annotations

import sys
import tempfile
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright
from werkzeug.serving import make_server

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tracker import create_app, migrate
from tracker.db import Database
from tracker.services.demo import seed_demo

OUT = Path(__file__).resolve().parents[2] / "docs" / "demo-article.png"


def main(out: Path = OUT) -> None:
    """Serve the demo, load the article, wait for the bar, save a screenshot to ``out``."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/demo.sqlite3"
        database = Database(url)
        migrate.upgrade(database.engine)
        with database.session() as session:
            seed_demo(session)
            session.commit()
        database.dispose()
        app = create_app({"DATABASE_URL": url, "SECRET_KEY": "s" * 40})
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1100, "height": 800})
                page.emulate_media(reduced_motion="reduce")
                page.goto(f"http://127.0.0.1:{server.server_port}/demo/article")
                page.wait_for_function(
                    "document.querySelector('tracker-progress').shadowRoot"
                    ".querySelector('.b[aria-valuenow]') !== null"
                )
                page.screenshot(path=str(out), full_page=True)
                browser.close()
        finally:
            server.shutdown()
            server.server_close()
            app.extensions["tracker.db"].dispose()
    print(f"saved {out}", file=sys.stderr)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
