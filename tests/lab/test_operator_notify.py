"""The operator's own notify commands (instances[].notify) with the real keepalived:
run by haguard after its own work for each change of state, on whichever director it
happens, in hook mode and with the agent alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from haguard.lab.runner import read_jsonl
from tests.conftest import wait_until
from tests.lab.conftest import LAB_YAML

NOTIFY = """\
    notify:
      master: [[/bin/sh, -c, 'echo "$0 {{instance}} {{state}} {{priority}}" >> {out}', MASTER]]
      backup: [[/bin/sh, -c, 'echo "$0 {{instance}} {{state}}" >> {out}', BACKUP]]
      stop: [[/bin/sh, -c, 'echo "$0 {{instance}} {{state}}" >> {out}', STOP]]
"""


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("agent", [False, True], ids=["hook", "agent"])
def test_each_directors_commands_follow_its_changes_of_state(make_lab, tmp_path: Path,
                                                             agent: bool) -> None:
    out = tmp_path / "notified.txt"
    text = LAB_YAML.read_text().replace(
        "    announce:", NOTIFY.format(out=out) + "    announce:")
    assert text != LAB_YAML.read_text()
    lab = make_lab(text, agent=agent)
    lab.runner.wait_for_master()
    # Both directors write to one file: lb1 (150) MASTER, lb2 (100) BACKUP.
    wait_until(lambda: {"MASTER VI_1 MASTER 150", "BACKUP VI_1 BACKUP"} <= set(_lines(out)),
               20, "both directors' commands", step=0.1)
    lab.runner.stop_keepalived("lb1")
    wait_until(lambda: "MASTER VI_1 MASTER 100" in _lines(out), 20,
               "lb2's MASTER command", step=0.1)
    wait_until(lambda: "STOP VI_1 STOP" in _lines(out), 20, "lb1's STOP command", step=0.1)
    for node in ("lb1", "lb2"):
        log = read_jsonl(lab.runner.record["directors"][node]["log_file"])
        ran = [e for e in log if e.get("event") == "notify_command"]
        assert ran and all(e["ok"] for e in ran), ran
        done = [e["ts"] for e in log if e.get("event") == "transition_done"]
        assert min(e["ts"] for e in ran) >= min(done)
