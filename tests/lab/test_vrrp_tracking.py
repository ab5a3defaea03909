"""keepalived's trackers as haguard renders them, with the real keepalived: a
`vrrp_script` whose failure lowers the MASTER's priority below its peer's hands the VIPs
over, and its recovery takes them back (preemption)."""

from __future__ import annotations

from pathlib import Path

from tests.lab.conftest import LAB_YAML

TRACKED = """\
scripts:
  - {{name: chk_app, command: [/usr/bin/test, -e, {flag}], interval_s: 1, weight: -60}}
instances:"""


def _director(text: str, name: str, priority: int, state: str, flag: Path) -> str:
    body = text.replace("instances:", TRACKED.format(flag=flag), 1)
    body = body.replace("    vips:", "    track: {scripts: [{name: chk_app}]}\n    vips:", 1)
    return body.replace("name: lb1", f"name: {name}").replace(
        "priority: 150", f"priority: {priority}").replace("state: BACKUP", f"state: {state}")


def test_a_failing_tracked_script_hands_the_vips_over_and_its_recovery_takes_them_back(
        make_lab, tmp_path: Path) -> None:
    text = LAB_YAML.read_text()
    flags = {node: tmp_path / f"{node}.ok" for node in ("lb1", "lb2")}
    for flag in flags.values():
        flag.touch()
    lab = make_lab(_director(text, "lb1", 150, "BACKUP", flags["lb1"]),
                   _director(text, "lb2", 100, "BACKUP", flags["lb2"]))
    assert lab.runner.wait_for_master(30) == "lb1"
    flags["lb1"].unlink()                    # lb1's application fails: 150 - 60 < 100
    lab.runner.wait_for(lambda: lab.runner.master() == "lb2", 30, "lb2 MASTER")
    flags["lb1"].touch()                     # it recovers: 150 again, lb1 preempts
    lab.runner.wait_for(lambda: lab.runner.master() == "lb1", 30, "lb1 MASTER again")
