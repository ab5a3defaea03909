"""tests/ledger.py: which ledgers the first step of a run takes, and that two cleaners
running at once never both take one."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from haguard.adapters import process
from tests import ledger


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _ledger(directory: Path, name: str, pid: int, ticks: int | None) -> Path:
    path = directory / name
    lines = [{"kind": "session", "pid": pid, "start_ticks": ticks, "argv": ["pytest", "x"]},
             {"kind": "tag", "name": "tdeadbe"}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_the_ledger_of_a_live_process_is_left_and_a_dead_ones_is_removed(tmp_path: Path) -> None:
    me = os.getpid()
    live = _ledger(tmp_path, f"{me}.jsonl", me, process.start_ticks(me))
    dead_pid = _dead_pid()
    dead = _ledger(tmp_path, f"{dead_pid}.jsonl", dead_pid, 1)
    # The same pid as a live process but another start time: a reused pid, so dead.
    reused = _ledger(tmp_path, "1.jsonl", me, 1)
    done = ledger.clean_dead(str(tmp_path))
    assert live.exists() and not dead.exists() and not reused.exists()
    assert f"pid {dead_pid} (pytest x) is gone and left:" in done


def test_a_ledger_another_cleaner_holds_is_left_to_it_unless_that_cleaner_died(
        tmp_path: Path) -> None:
    dead_pid = _dead_pid()
    held = _ledger(tmp_path, f"{dead_pid}.jsonl.removing-{os.getpid()}", dead_pid, 1)
    orphaned = _ledger(tmp_path, f"7.jsonl.removing-{_dead_pid()}", dead_pid, 1)
    done = ledger.clean_dead(str(tmp_path))
    assert held.exists(), "a live cleaner's claim was taken from it"
    assert not orphaned.exists() and os.listdir(tmp_path) == [held.name]
    assert len([line for line in done if "is gone and left" in line]) == 1
