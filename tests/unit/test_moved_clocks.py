"""``--moved-clocks`` (what ``make test`` passes) adds the right runs, and only those.

This file reads no clock itself, so it is one of conftest's CLOCK_FREE files.
"""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import CLOCK_INSTANTS, ROOT


def _collected(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [line for line in done.stdout.splitlines() if "::" in line]


def test_moved_clocks_add_every_instant_on_sqlite_and_leave_process_tests_alone() -> None:
    ids = _collected(
        "--moved-clocks=also",
        "tests/unit/test_clock.py::test_a_moved_clock_stops_every_clock_the_code_reads",
        "tests/test_api.py::test_unknown_and_draft_campaigns_are_404_json",
        "tests/test_packaging.py",
    )
    clock_test = [i for i in ids if "test_a_moved_clock_stops" in i]
    assert sorted(clock_test) == sorted(
        f"tests/unit/test_clock.py::test_a_moved_clock_stops_every_clock_the_code_reads[{name}]"
        for name in ["now", *CLOCK_INSTANTS]
    )
    api = [i for i in ids if "test_unknown_and_draft_campaigns_are_404_json" in i]
    # Both databases on the real clock, SQLite alone at each moved one.
    assert len(api) == 2 + len(CLOCK_INSTANTS)
    assert all("sqlite" in i for i in api if "now" not in i)
    # Tests marked slow (they start gunicorn) keep the real clock and their ids.
    packaging = [i for i in ids if "tests/test_packaging.py" in i]
    assert packaging
    assert not [i for i in packaging if "[" in i]
