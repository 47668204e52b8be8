"""A per-process cache of rendered public responses, and their conditional answers.

The public routes (the progress API, the iframe page, the SVG) are read by
every article view. Each process renders one of them at most once per
``TRACKER_API_CACHE_SECONDS`` (1 s by default) and answers the rest from
memory, so their cost does not depend on the database or the ledger's size.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from flask import current_app, request

from tracker.ops.metrics import RENDER_CACHE_HIT, RENDER_CACHE_MISS

# Enough for every campaign and option combination a site uses; bounded so that
# crafted query strings cannot grow it without limit.
MAX_ENTRIES = 1024


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered body, its strong ETag (unquoted) and when this process must render it again."""

    body: bytes
    etag: str
    expires: float

    @classmethod
    def of(cls, body: bytes, expires: float = 0.0) -> Rendered:
        """``body`` with its ETag: the first 128 bits of its SHA-256, in hex."""
        return cls(body, hashlib.sha256(body).hexdigest()[:32], expires)


class RenderCache:
    """Rendered bodies by key, safe to share between threads.

    Bounded: past ``max_entries`` the oldest render goes first. Hits do not
    reorder entries, so they take no lock.
    """

    def __init__(self, ttl: float, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, Rendered] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], bytes]) -> Rendered:
        """The fresh entry for ``key``, or ``build()``'s body stored under it.

        Whatever ``build`` raises propagates and nothing is stored, so failures
        (an unknown campaign, a bad option) are never cached.
        """
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and hit.expires > now:
            RENDER_CACHE_HIT.inc()
            return hit
        RENDER_CACHE_MISS.inc()
        body = build()
        rendered = Rendered.of(body, now + self.ttl)
        with self._lock:  # threaded workers share it; evictions must not race
            self._entries[key] = rendered
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return rendered


def render_cache() -> RenderCache:
    """The current app's cache (one per app, so two apps in a process never mix)."""
    cache: RenderCache | None = current_app.extensions.get("tracker.render_cache")
    if cache is None:
        cache = RenderCache(current_app.config["API_CACHE_SECONDS"])
        current_app.extensions["tracker.render_cache"] = cache
    return cache


def not_modified(etag: str) -> bool:
    """Whether the request's ``If-None-Match`` already names ``etag``.

    Only If-None-Match matters for these responses; Werkzeug's make_conditional
    also handles ranges and dates and cost a third of this hot path.
    """
    return "HTTP_IF_NONE_MATCH" in request.environ and request.if_none_match.contains_weak(etag)
