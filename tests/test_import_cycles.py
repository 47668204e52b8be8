"""Every module of tracker imports on its own, first, in a fresh interpreter.

An import cycle only shows when a module of the cycle is imported before the
others (``import tracker.scheduler.cli`` before ``tracker.cli`` used to fail),
and a test run imports modules in whatever order the tests happen to, so here
each module is the very first of tracker's to load in its own process.

A fresh ``python`` per module would cost a second each (Flask, SQLAlchemy,
Babel...). Cycles among tracker's modules do not depend on third-party
packages, so one helper process loads those once, then forks a child per module
that imports it with no tracker module loaded yet.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Not importable outside their tool: Alembic runs env.py (and the revisions) itself.
SKIP = ("tracker.migrations.env", "tracker.migrations.versions.")


def tracker_modules() -> list[str]:
    """Every module of the package, found from its files (importing nothing)."""
    names = []
    for path in sorted((ROOT / "tracker").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if not name.startswith(SKIP):
            names.append(name)
    return names


# Imports every module of tracker; prints, in load order, the modules outside it.
OUTSIDE = r"""
import importlib, json, sys

for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
print(json.dumps([m for m in sys.modules if m != "tracker" and not m.startswith("tracker.")]))
"""

# Loads those modules (not tracker's: their import-time state, such as metrics
# registered with prometheus_client, must be made by the child), then forks one
# child per module, whose import is the first of any tracker module in its process.
HELPER = r"""
import importlib, json, os, sys, traceback

names, outside = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for name in outside:
    try:
        importlib.import_module(name)
    except Exception:
        pass  # a private module that loads only as a part of its package, which did
assert not [m for m in sys.modules if m == "tracker" or m.startswith("tracker.")]
failed = {}
for name in names:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(name)
        except BaseException:
            os.write(write, traceback.format_exc().encode())
            os._exit(1)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        error = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    if status:
        failed[name] = error or f"exit status {status}"
print(json.dumps(failed))
"""


def _python(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_every_module_imports_first_on_its_own() -> None:
    names = tracker_modules()
    assert "tracker.scheduler.cli" in names and "tracker.cli" in names
    outside = _python(OUTSIDE, json.dumps(names))
    failed = json.loads(_python(HELPER, json.dumps(names), outside))
    assert failed == {}, "\n".join(f"{name}:\n{error}" for name, error in failed.items())
