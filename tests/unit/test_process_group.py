"""Ending a child that leads a process group: what it started ends with it."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from haguard.adapters import process


def _started(argv: list[str], pidfile: Path) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen(argv, start_new_session=True, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not pidfile.exists() or not pidfile.read_text().strip():
        assert time.monotonic() < deadline, "the grandchild never started"
        time.sleep(0.01)
    return proc, int(pidfile.read_text())


def test_stop_group_ends_the_command_a_shell_was_waiting_for(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    proc, grandchild = _started(
        ["bash", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], pidfile)
    process.stop_group(proc, grace_s=5)
    assert proc.returncode is not None
    assert not process.alive(grandchild)
    assert not process.group_alive(proc.pid)


def test_stop_group_kills_what_ignores_sigterm_after_the_grace(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    proc, grandchild = _started(
        ["bash", "-c", f"trap '' TERM; sh -c 'trap \"\" TERM; echo $$ > {pidfile}; "
                       "while :; do sleep 0.05; done' & wait"], pidfile)
    start = time.monotonic()
    process.stop_group(proc, grace_s=0.5)
    assert time.monotonic() - start >= 0.5
    assert not process.alive(grandchild)
    assert not process.group_alive(proc.pid)
