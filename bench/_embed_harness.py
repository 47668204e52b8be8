"""Helper of bench/embed.py: nginx caching the app per its Cache-Control.

Databases, seeding, gunicorn and wrk come from :mod:`harness`, shared by
every benchmark here.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from string import Template

from bench import harness as h

ROOT = h.ROOT
SLUG = "bench"


@contextmanager
def nginx(upstream: str, static: dict[str, bytes], cpu: str | None = None) -> Iterator[str]:
    """nginx caching ``upstream`` per its Cache-Control, and serving ``static`` files."""
    binary = h.need("nginx")
    port = h.free_port()
    # Its own directory, readable by nginx's workers (they run as "nobody" under root).
    prefix = Path(tempfile.mkdtemp(prefix="tracker-bench-nginx-"))
    try:
        for name, body in static.items():
            path = prefix / "static" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
        (prefix / "cache").mkdir()
        template = Template((ROOT / "bench" / "nginx-embed.conf").read_text())
        # safe_substitute: nginx's own $variables stay as they are.
        config = template.safe_substitute(
            PORT=port, UPSTREAM=upstream.rsplit(":", 1)[1], PREFIX=prefix
        )
        conf = prefix / "nginx.conf"
        conf.write_text(config)
        for path in [prefix, *prefix.rglob("*")]:
            path.chmod(0o777 if path.is_dir() else 0o666)
        args = [binary, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"]
        origin = f"http://127.0.0.1:{port}"
        ready = f"{origin}/static/{next(iter(static))}"
        with h.serving(h.pinned(cpu, args), ready, prefix / "nginx.out", name="nginx"):
            yield origin
    finally:
        shutil.rmtree(prefix, ignore_errors=True)
