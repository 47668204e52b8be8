"""Helper of bench/embed.py: nginx caching the app per its Cache-Control.

Databases, seeding, gunicorn and wrk come from :mod:`harness`, shared by
every benchmark here.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from string import Template

from bench import harness as h

ROOT = h.ROOT
SLUG = "bench"


@contextmanager
def nginx(
    upstream: str | Sequence[str],
    static: dict[str, bytes],
    cpu: str | None = None,
    *,
    conf: str = "nginx-embed.conf",
    server_options: str = "",
) -> Iterator[str]:
    """nginx caching ``upstream`` per its Cache-Control, and serving ``static`` files.

    :param upstream: one base URL, or several ``host:port`` (or URLs) to balance across.
    :param conf: the configuration template in ``bench/`` (``${SERVERS}``, ``${PORT}``,
        ``${PREFIX}`` are filled in).
    :param server_options: appended to each upstream ``server`` line (``max_fails=1``).
    """
    binary = h.need("nginx")
    upstreams = [upstream] if isinstance(upstream, str) else list(upstream)
    servers = "\n        ".join(
        f"server {u.split('://', 1)[-1]}{' ' + server_options if server_options else ''};"
        for u in upstreams
    )
    port = h.free_port()
    # Its own directory, readable by nginx's workers (they run as "nobody" under root).
    prefix = Path(tempfile.mkdtemp(prefix="tracker-bench-nginx-"))
    try:
        for name, body in static.items():
            path = prefix / "static" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
        (prefix / "cache").mkdir()
        template = Template((ROOT / "bench" / conf).read_text())
        # safe_substitute: nginx's own $variables stay as they are.
        config = template.safe_substitute(PORT=port, SERVERS=servers, PREFIX=prefix)
        conf_path = prefix / "nginx.conf"
        conf_path.write_text(config)
        for path in [prefix, *prefix.rglob("*")]:
            path.chmod(0o777 if path.is_dir() else 0o666)
        args = [binary, "-p", str(prefix), "-c", str(conf_path), "-g", "daemon off;"]
        origin = f"http://127.0.0.1:{port}"
        ready = f"{origin}/static/{next(iter(static))}"
        with h.serving(h.pinned(cpu, args), ready, prefix / "nginx.out", name="nginx"):
            yield origin
    finally:
        shutil.rmtree(prefix, ignore_errors=True)
