"""A loopback HTTP server standing in for Stripe's Checkout Sessions API.

localstripe does not implement Checkout Sessions, so the donate tests point
``TRACKER_STRIPE_API_BASE`` here: it records each request exactly as the stripe
library sent it and answers with a queued reply or a plausible session.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl


@dataclass(frozen=True)
class Recorded:
    """One request as received: method, path, headers (lower-case names) and decoded form."""

    method: str
    path: str
    headers: dict[str, str]
    body: str

    @property
    def form(self) -> dict[str, str]:
        """The form-encoded body as a flat dict (``line_items[0][quantity]`` → ``"1"``)."""
        pairs = parse_qsl(self.body, keep_blank_values=True, strict_parsing=bool(self.body))
        result = dict(pairs)
        assert len(result) == len(pairs), "a form key was sent twice"
        return result


@dataclass
class Reply:
    """A canned answer: HTTP status, JSON body, extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class StripeStub:
    """The running stub: ``url`` for the API base, ``requests`` received, ``replies`` to send."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                with stub._lock:
                    stub.requests.append(
                        Recorded(
                            "POST",
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                        )
                    )
                    reply = stub.replies.popleft() if stub.replies else stub.session_reply()
                payload = json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Request-Id", f"req_{secrets.token_hex(6)}")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            # A short poll makes shutdown() quick; the default 0.5 s adds up over the suite.
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )
        self._thread.start()

    @staticmethod
    def session_reply() -> Reply:
        """A Checkout Session as Stripe returns it (the fields the gateway reads)."""
        session_id = f"cs_test_{secrets.token_hex(12)}"
        return Reply(
            200,
            {
                "id": session_id,
                "object": "checkout.session",
                "url": f"https://checkout.stripe.com/c/pay/{session_id}",
                "livemode": False,
                "status": "open",
                "payment_status": "unpaid",
            },
        )

    def error(self, status: int, error: dict[str, Any]) -> None:
        """Queue a Stripe error answer (Stripe-Should-Retry: false: the client does not retry)."""
        self.replies.append(Reply(status, {"error": error}, {"Stripe-Should-Retry": "false"}))

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextmanager
def running_stub() -> Iterator[StripeStub]:
    """A fresh stub on a loopback port, stopped on leaving the block."""
    stub = StripeStub()
    try:
        yield stub
    finally:
        stub.close()
