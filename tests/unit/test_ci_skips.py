"""A test skipped for a missing service fails the run under CI=true (pytester, not mocks)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytest_plugins = ["pytester"]

SKIPPING = """
import pytest

def test_needs_a_service():
    pytest.skip("PostgreSQL unavailable")

@pytest.mark.skip(reason="no browser")
def test_marked():
    pass

def test_runs():
    assert True
"""


# A skip marker acts during setup, so under CI it shows as an error, not a failure.
@pytest.mark.parametrize(("ci", "failed", "errors", "skipped"), [("true", 1, 1, 0), ("", 0, 0, 2)])
def test_skips_fail_only_under_ci(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    ci: str,
    failed: int,
    errors: int,
    skipped: int,
) -> None:
    monkeypatch.setenv("CI", ci)
    # The project's hook, from its conftest (which reads CI when imported).
    pytester.makeconftest(
        f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n"
        "from tests.conftest import pytest_runtest_makereport  # noqa: F401\n"
    )
    pytester.makepyfile(SKIPPING)
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=failed, errors=errors, skipped=skipped)
    if ci:
        result.stdout.fnmatch_lines(["*skipped under CI=true*PostgreSQL unavailable*"])
