"""The install `make run` does first: quiet, as a newcomer expects it to be."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_editable_install_prints_no_setuptools_warning(tmp_path: Path) -> None:
    # The Makefile's own command (pip install --quiet -e), into a throwaway prefix so
    # the test leaves the virtualenv as it was. setuptools used to print its
    # "Editable installation" BuildBackendWarning (a meta path finder, chosen for a
    # flat layout without package-dir) and, before that, a deprecation about
    # project.license: each time, on the first screen of `make run`.
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    done = subprocess.run(
        [*pip, "--prefix", str(tmp_path), "-e", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    # setuptools' warning classes (BuildBackendWarning, SetuptoolsDeprecationWarning);
    # pip's own upper-case "WARNING:" lines about this machine's index are not ours.
    assert "Warning" not in output, output
