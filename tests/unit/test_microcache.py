"""The per-process render cache shared by the public routes."""

from __future__ import annotations

import pytest

from tracker.microcache import RenderCache, Rendered


def test_entries_live_for_the_ttl_then_render_again() -> None:
    calls: list[int] = []

    def build() -> bytes:
        calls.append(1)
        return f"body {len(calls)}".encode()

    cache = RenderCache(ttl=60)
    assert cache.get("a", build).body == b"body 1"
    assert cache.get("a", build).body == b"body 1"
    assert len(calls) == 1
    expired = RenderCache(ttl=0)
    expired.get("a", build)
    assert expired.get("a", build).body == b"body 3"


def test_failures_are_not_cached() -> None:
    cache = RenderCache(ttl=60)

    def fail() -> bytes:
        raise LookupError("no such campaign")

    with pytest.raises(LookupError):
        cache.get("x", fail)
    assert cache.get("x", lambda: b"now it exists").body == b"now it exists"


def test_the_cache_is_bounded_oldest_render_first() -> None:
    cache = RenderCache(ttl=60, max_entries=2)
    cache.get("a", lambda: b"a")
    cache.get("b", lambda: b"b")
    cache.get("c", lambda: b"c")
    assert cache.get("b", lambda: b"rebuilt").body == b"b"
    assert cache.get("a", lambda: b"rebuilt").body == b"rebuilt"


def test_etag_follows_the_body() -> None:
    assert Rendered.of(b"x").etag == Rendered.of(b"x").etag != Rendered.of(b"y").etag
    assert len(Rendered.of(b"x").etag) == 32
