"""Real processes for end-to-end tests: gunicorn serving the app, localstripe as Stripe.

Both listen on a free loopback port and are stopped (by their own process id)
when the ``with`` block ends.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent

# localstripe's own start() listens on every interface and reloads a pickle
# from /tmp; this starts its aiohttp app on loopback only, from scratch.
_LOCALSTRIPE = (
    "import sys; from aiohttp import web; from localstripe.server import app; "
    "web.run_app(app, host='127.0.0.1', port=int(sys.argv[1]), print=None)"
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Poll ``url`` until it answers (any HTTP status) or ``process`` exits.

    The timeout bounds a broken start only: booting gunicorn workers on two cores
    busy with other work was seen to take over 30 s (bench.harness.START_TIMEOUT).

    :raise RuntimeError: if the process died or ``timeout`` passed.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def localstripe() -> Iterator[str]:
    """Run localstripe; yields its base URL.

    :raise ImportError: when localstripe is not installed.
    :raise RuntimeError: when it does not start.
    """
    import localstripe as _  # noqa: F401 -- fail early with a clear ImportError

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", _LOCALSTRIPE, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/v1/events", process)
        yield base
    finally:
        _stop(process)


@contextmanager
def gunicorn(
    env: dict[str, str], *, workers: int = 4, log: IO[bytes] | None = None
) -> Iterator[str]:
    """Serve ``wsgi:app`` with ``workers`` sync workers and ``env`` added; yields its base URL.

    The server's own log goes to ``log`` (default: discarded).
    """
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    full_env.update(env)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "wsgi:app",
        ],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=log if log is not None else subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/livez", process)
        yield base
    finally:
        _stop(process)
