"""Waiting in tests for something another thread or process does, bounded."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``check`` until true; the seconds it took. Fails the test after ``timeout``.

    Timeouts are bounds for a broken run, not figures: starting a scheduler process on
    two cores busy with other work was seen to take over 20 s.
    """
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - started
