"""The installed notify hook on a real interface: ordering, idempotence, bad input."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from haguard.app.hooks import install
from haguard.lab import netns
from tests.lab.conftest import VIPS, Node


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("last", ["MASTER", "BACKUP"])
def test_fifty_forked_transitions_end_in_the_state_of_the_last(node: Node, last: str) -> None:
    rng = random.Random(51)
    states = [rng.choice(["MASTER", "BACKUP", "FAULT", "STOP"]) for _ in range(49)] + [last]
    procs = []
    for state in states:  # forked one after another, as keepalived forks a flapping instance
        procs.append(subprocess.Popen(node.hook("-c", str(node.config), "INSTANCE", "VI_1",
                                                state, "150"),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    for proc in procs:
        assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""
    # STOP runs detached (setsid -f); give any stragglers their moment.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and netns.pids_in(node.name):
        time.sleep(0.05)
    record = node.record()
    assert record["state"] == last
    assert record["complete"] is True
    assert node.vips() == (sorted(VIPS) if last == "MASTER" else [])
    events = [json.loads(line) for line in open(node.log, encoding="utf-8")]
    applied = [e for e in events if e.get("event") == "transition_done"]
    dropped = [e for e in events if e.get("event") == "event_superseded"]
    assert len(applied) + len(dropped) == len(states)
    # Nothing was applied after the last event: its transition is the last one done.
    assert applied[-1]["state"] == last


def test_same_master_twice_leaves_exactly_one_address(node: Node) -> None:
    for _ in range(2):
        proc = run(node.hook("-c", str(node.config), "INSTANCE", "VI_1", "MASTER", "150"))
        assert proc.returncode == 0, proc.stderr
    out = netns.run(["ip", "-n", node.name, "-o", "addr", "show", "dev", "eth0"]).stdout
    assert out.count("192.0.2.100/32") == 1 and out.count("2001:db8::100/64") == 1


def test_per_state_hook_forms_apply_their_state(node: Node) -> None:
    proc = run(node.hook("-c", str(node.config), "VI_1", name="notify_master"))
    assert proc.returncode == 0, proc.stderr
    assert node.vips() == sorted(VIPS) and node.record()["state"] == "MASTER"
    proc = run(node.hook("-c", str(node.config), "VI_1", name="notify_backup"))
    assert proc.returncode == 0, proc.stderr
    assert node.vips() == [] and node.record()["state"] == "BACKUP"
    proc = run(node.hook("-c", str(node.config), name="notify_fault"))
    assert proc.returncode == 2 and "usage" in proc.stderr


BAD_INPUT = {
    "invalid-yaml": ("instances: [\n  - name: VI_1\n    vips: [192.0.2.100/32\n",
                     None, "invalid YAML"),
    "unknown-key": (None, ("    priority: 150\n", "    priority: 150\n    prority: 100\n"),
                    "instances[0].prority: unknown key (did you mean 'priority'?)"),
    "bad-address": (None, ("192.0.2.100/32, {", "192.0.2.300/32, {"),
                    "instances[0].vips[0]: '192.0.2.300/32' is not an IP network"),
}


@pytest.mark.parametrize("state", ["MASTER", "BACKUP"])
@pytest.mark.parametrize("case", list(BAD_INPUT), ids=list(BAD_INPUT))
def test_bad_config_exits_2_with_the_path_and_changes_nothing(node: Node, case: str,
                                                              state: str) -> None:
    # Start from the opposite state, so applying the event would change the addresses.
    opposite = "BACKUP" if state == "MASTER" else "MASTER"
    assert run(node.hook("-c", str(node.config), "INSTANCE", "VI_1", opposite)).returncode == 0
    before = node.vips()
    text, edit, message = BAD_INPUT[case]
    good = node.config.read_text()
    if text is None:
        assert edit[0] in good
        text = good.replace(edit[0], edit[1])
    bad = node.config.with_name("bad.yaml")
    bad.write_text(text)
    proc = run(node.hook("-c", str(bad), "INSTANCE", "VI_1", state))
    assert proc.returncode == 2
    assert message in proc.stderr and str(bad) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert node.vips() == before


@pytest.mark.parametrize("words,message", [
    (("INSTANCE", "VI_9", "MASTER"), "instance 'VI_9' is not in"),
    (("INSTANCE", "VI_1", "LEADER"), "state 'LEADER' is not one of"),
    (("SERVICE", "VI_1", "MASTER"), "type 'SERVICE' is not one of"),
], ids=["unknown-instance", "unknown-state", "unknown-type"])
def test_unknown_instance_or_state_exits_2_and_changes_nothing(node: Node, words, message) -> None:
    assert run(node.hook("-c", str(node.config), "INSTANCE", "VI_1", "MASTER")).returncode == 0
    before = node.vips()
    record = node.record()
    proc = run(node.hook("-c", str(node.config), *words))
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert node.vips() == before == sorted(VIPS)
    assert node.record() == record


def test_hook_install_refuses_nothing_it_needs_and_reports_insecure_paths(tmp_path: Path) -> None:
    target = tmp_path / "world" / "hooks"
    target.parent.mkdir()
    os.chmod(target.parent, 0o777)
    lines = install(str(target))
    assert any("enable_script_security will refuse" in line for line in lines)
    assert any(f"{target.parent}: writable by group or others" in line for line in lines)
    assert os.access(target / "notify_master", os.X_OK)
    assert f"HAGUARD_PYTHON='{sys.executable}'" in (target / "haguard.env").read_text()


def test_master_reannounces_after_repeat_and_refresh_until_it_is_no_longer_master(
        node: Node) -> None:
    node.config.write_text(node.config.read_text().replace(
        "announce: {count: 1, interval_ms: 0, repeat_after_s: 0}",
        "announce: {count: 2, interval_ms: 50, repeat_after_s: 1, refresh_s: 1}"))
    out = node.config.with_name("wire.jsonl")
    probe = subprocess.Popen(netns.ns_exec(node.name, sys.executable, "-m", "haguard.adapters.witness",
                                           "--out", str(out), "--iface", "peer0"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and '"ready"' not in (out.read_text() if out.exists() else ""):
            time.sleep(0.05)
        start = time.time()
        assert run(node.hook("-c", str(node.config), "INSTANCE", "VI_1", "MASTER")).returncode == 0
        time.sleep(3.4)
        assert run(node.hook("-c", str(node.config), "INSTANCE", "VI_1", "BACKUP")).returncode == 0
        stopped = time.time()
        time.sleep(2.0)
    finally:
        probe.terminate()
        probe.wait(10)
    frames = [json.loads(line) for line in out.read_text().splitlines()]
    sent = sorted(f["t"] for f in frames if f.get("kind") == "arp" and f.get("op") == 2
                  and f.get("spa") == "192.0.2.100")
    assert sent and sent[0] >= start
    garps = [t - sent[0] for t in sent]
    # Times from the first frame: the burst (2 rounds 50 ms apart), the repeat after 1 s,
    # refreshes every 1 s while MASTER; nothing once BACKUP.
    assert len([t for t in garps if t < 0.3]) == 2
    assert len([t for t in garps if 0.8 < t < 1.4]) == 2
    assert len([t for t in garps if 1.8 < t < 2.4]) == 2
    assert not [t for t in sent if t > stopped + 0.1]
    assert node.record()["announcer_pid"] is None
