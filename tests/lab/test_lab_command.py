"""`haguard lab` as an operator runs it: separate processes, always cleaned up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from haguard.adapters.process import alive  # a zombie waiting for init counts as gone
from haguard.lab import netns
from tests.lab.conftest import LAB_YAML, REPO, lab_name


def haguard(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "haguard", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


def leftovers(name: str) -> list[str]:
    prefix = f"hg-{name}-"
    spaces = [n for n in os.listdir("/run/netns") if n.startswith(prefix)] \
        if os.path.isdir("/run/netns") else []
    if os.path.exists(f"/run/haguard-lab/{name}"):
        spaces.append(f"/run/haguard-lab/{name}")
    return spaces


def test_lab_run_prints_a_timeline_learned_from_our_announcement_and_cleans_up() -> None:
    name = lab_name()
    try:
        proc = haguard("lab", "run", "--name", name, "--json")
        assert proc.returncode == 0, proc.stderr
        timeline = json.loads(proc.stdout)
        assert timeline["learned_from_announcement"] is True
        assert timeline["old_master"] == "lb1" and timeline["new_master"] == "lb2"
        assert timeline["outage_ms"] is not None and timeline["outage_ms"] > 0
        assert timeline["garp_reply_frames"] == 5 and timeline["unsolicited_na_frames"] == 5
        whats = [m["what"] for m in timeline["milestones"]]
        assert "first announcement sent" in whats
        assert any(w.startswith("neighbour entry 192.0.2.100 ->") for w in whats)
    finally:
        assert leftovers(name) == []


def test_lab_up_status_failover_down_as_separate_commands() -> None:
    name = lab_name()
    try:
        up = haguard("lab", "up", "--name", name, "-c", str(LAB_YAML))
        assert up.returncode == 0, up.stderr
        assert "lb1 is MASTER" in up.stderr
        record = json.load(open(f"/run/haguard-lab/{name}/lab.json", encoding="utf-8"))
        status = haguard("lab", "status", "--name", name, "--json")
        assert status.returncode == 0 and json.loads(status.stdout)["master"] == "lb1"
        again = haguard("lab", "up", "--name", name)
        assert again.returncode == 2 and "already up" in again.stderr
        failover = haguard("lab", "failover", "--name", name)
        assert failover.returncode == 0, failover.stderr
        assert "learned the new MAC from haguard's announcement: yes" in failover.stdout
        status = haguard("lab", "status", "--name", name, "--json")
        assert json.loads(status.stdout)["master"] == "lb2"
        down = haguard("lab", "down", "--name", name)
        assert down.returncode == 0 and "deleted namespace" in down.stdout
        for pid in record["pids"].values():
            assert not alive(pid), f"pid {pid} survived lab down"
    finally:
        haguard("lab", "down", "--name", name)
        assert leftovers(name) == []


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_lab_run_removes_everything_it_made(sig: signal.Signals) -> None:
    """Also where SIGINT was inherited ignored, as by a job in a script's background
    (a CI harness that starts the suite so): the run must still hear it and clean up."""
    name = lab_name()
    proc = subprocess.Popen([sys.executable, "-m", "haguard", "lab", "run", "--name", name],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_ignore_sigint)
    try:
        deadline = time.monotonic() + 60
        # Interrupt once both keepalived processes run: the most to clean up.
        while time.monotonic() < deadline:
            try:
                record = json.load(open(f"/run/haguard-lab/{name}/lab.json", encoding="utf-8"))
            except (OSError, ValueError):
                record = {}
            if len(record.get("pids", {})) >= 2:
                break
            time.sleep(0.05)
        assert len(record.get("pids", {})) >= 2, "the lab never came up"
        pids = list(record["pids"].values())
        namespaces = record["namespaces"]
        assert all(netns.exists(n) for n in namespaces)
        proc.send_signal(sig)
        proc.wait(60)
        assert proc.returncode == 130, proc.stderr.read()
        for pid in pids:
            assert not alive(pid), f"pid {pid} survived the interrupted run"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        leftover = leftovers(name)
        if leftover:
            haguard("lab", "down", "--name", name)
        assert leftover == []


def test_lab_refuses_a_config_with_errors_before_making_anything(tmp_path) -> None:
    name = lab_name()
    bad = tmp_path / "lb1.yaml"
    bad.write_text(LAB_YAML.read_text().replace("priority: 150", "priority: 0"))
    proc = haguard("lab", "run", "--name", name, "-c", str(bad))
    assert proc.returncode == 2
    assert "instances[0].priority: 0 is out of range (1-254)" in proc.stderr
    assert leftovers(name) == []


def test_lab_run_works_where_run_is_mounted_noexec() -> None:
    """Debian's initramfs mounts /run noexec, so keepalived could not run hooks kept in
    /run/haguard-lab: the lab puts them in /var/lib/haguard-lab there, and removes them.
    Here /run is a noexec tmpfs in a mount namespace of the run's own."""
    name = lab_name()
    script = ('mount -t tmpfs -o noexec,nosuid,nodev,mode=755 tmpfs /run && '
              'exec "$0" -m haguard lab run --name "$1" --json')
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                           sys.executable, name], capture_output=True, text=True, timeout=300,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["learned_from_announcement"] is True
    assert f"removed /var/lib/haguard-lab/{name}" in proc.stderr
    assert not os.path.exists(f"/var/lib/haguard-lab/{name}")
