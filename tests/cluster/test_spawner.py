"""The cluster's app servers share one session (so one scheduler autogroup), apart from ours."""

from __future__ import annotations

import os
from pathlib import Path

from tests.cluster import services


def test_every_spawned_server_is_in_one_session_of_its_own_group_and_stops(
    tmp_path: Path,
) -> None:
    # Linux shares a contended CPU between sessions (autogroups): if the two hosts'
    # gunicorns had a session each, they would get twice the CPU of one host's.
    with services.spawner() as spawner:
        started = [
            spawner.spawn(["sleep", "60"], {"PATH": os.environ["PATH"]}, tmp_path / f"{n}.log")
            for n in range(2)
        ]
        try:
            sessions = {os.getsid(p.pid) for p in started}
            assert len(sessions) == 1 and sessions != {os.getsid(0)}
            # Its own process group each: a fault or a stop signals one server only.
            assert [os.getpgid(p.pid) for p in started] == [p.pid for p in started]
            assert all(p.poll() is None for p in started)
        finally:
            for process in started:
                process.stop()
        assert [p.poll() for p in started] == [0, 0]
