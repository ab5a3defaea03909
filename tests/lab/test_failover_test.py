"""`haguard failover-test` on the lab pair: its figures against the test's own probe,
the SLO gate, and an interrupted drill leaving one MASTER."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

from haguard.lab import netns
from haguard.lab.runner import LabRunner, read_jsonl

VIP = "192.0.2.100"


def _drill(lab, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "haguard", "failover-test", "--lab", lab.name,
                           *args], capture_output=True, text=True, timeout=180)


def test_the_drill_reports_the_outage_an_independent_probe_measures(make_lab) -> None:
    lab = make_lab()
    assert lab.runner.wait_for_master() == "lb1"
    # The test's own witness: iputils ping every 10 ms with kernel-side timestamps.
    ping = subprocess.Popen(netns.ns_exec(lab.lab.client.namespace, "ping", "-D", "-n",
                                          "-i", "0.01", "-W", "1", VIP),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        time.sleep(1.0)
        proc = _drill(lab, "--json", "--failback")
    finally:
        ping.send_signal(signal.SIGINT)
        out, _ = ping.communicate(timeout=10)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    replies = [float(m.group(1)) for m in re.finditer(r"^\[(\d+\.\d+)\] \d+ bytes from", out,
                                                      re.M)]
    trigger = report["trigger_at"]
    after = [t for t in replies if t >= trigger - 0.2]
    gaps = [b - a for a, b in zip(after, after[1:])]
    mine_ms = max(gaps) * 1000 - 10   # a gap between replies spans one interval of its own
    # Both probes sample every 10 ms: they agree within 20 %, or within two intervals for
    # a short outage. The drill demotes, and a demotion can hand over in under 100 ms
    # (lb2 announcing while lb1's hook removes), so the outage has no floor here.
    assert abs(report["outage_ms"] - mine_ms) <= max(0.2 * mine_ms, 20), \
        (report["outage_ms"], mine_ms)
    assert report["old_master"] == "lb1" and report["new_master"] == "lb2"
    assert report["connections"] == 5 and report["tcp_outage_ms"] > 0
    assert report["failback_ms"] > 0 and lab.runner.master() == "lb1"  # --failback waited
    # the metrics textfile carries the drill and the transitions
    state_dir = lab.runner.record["directors"]["lb2"]["state_dir"]
    metrics = open(os.path.join(state_dir, "metrics.prom"), encoding="utf-8").read()
    assert f'haguard_last_drill_outage_seconds{{node="lb2"}} ' \
           f'{report["outage_ms"] / 1000:.6f}' in metrics
    assert re.search(r'haguard_transitions_total\{node="lb2",instance="VI_1"\} [2-9]', metrics)
    assert re.search(r'haguard_announcements_total\{node="lb2",instance="VI_1"\} 1', metrics)


def test_the_slo_gate_fails_the_drill_when_the_outage_is_longer(make_lab) -> None:
    lab = make_lab()
    lab.runner.wait_for_master()
    proc = _drill(lab, "--max-outage-ms", "1", "--method", "stop")
    assert proc.returncode == 1
    assert "SLO: outage" in proc.stdout and "MISSED" in proc.stdout
    # stop: keepalived was started again on the old MASTER, which preempts back
    # (the drill records the new keepalived in the lab's record; read it afresh)
    assert LabRunner.attach(lab.name).states()["lb1"]["keepalived_pid"] is not None
    lab.runner.wait_for(lambda: lab.runner.master() == "lb1", 20, "lb1 to preempt back")


def _what_happened(lab, states: dict, drill_stderr: bytes) -> str:
    """The states, the drill's stderr and each director's last log events, for a failure
    message (the lab is gone by the time anyone reads it)."""
    lines = [f"states: {json.dumps(states, sort_keys=True)}",
             f"drill stderr: {drill_stderr.decode(errors='replace')[-1500:]}"]
    for node, info in lab.runner.record["directors"].items():
        for event in read_jsonl(info["log_file"])[-25:]:
            lines.append(f"{node}: {event.get('ts')} {event.get('event')} "
                         f"{event.get('state', '')} {event.get('order', '')} "
                         f"{event.get('error', '')}")
    return "\n".join(lines)


def test_a_drill_interrupted_halfway_leaves_one_master_with_the_vips(make_lab) -> None:
    lab = make_lab()
    lab.runner.wait_for_master()
    lever = os.path.join(os.path.dirname(lab.config("lb1")), "levers", "track", "VI_1.demote")
    proc = subprocess.Popen([sys.executable, "-m", "haguard", "failover-test", "--lab",
                             lab.name], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if os.path.exists(lever) and open(lever).read().strip() == "1":
            break
        time.sleep(0.01)
    else:
        proc.kill()
        raise AssertionError("the drill never pulled the lever")
    proc.send_signal(signal.SIGTERM)   # halfway: the failover is under way
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0, (out, err)
    assert open(lever).read().strip() == "0"
    assert b"the pair may still hand over and back" in out + err, (out, err)
    # The drill pulled the lever and released it within milliseconds: keepalived may act
    # on the pull after the drill has exited (lb1 MASTER, then FAULT for the pulled lever,
    # then back), so the pair is judged once it has stopped moving, not at one instant.
    master = lab.runner.wait_for_master(timeout=30, steady_s=3.0)
    states = lab.runner.states()
    holders = [n for n, s in states.items()
               if any(i["vips_present"] for i in s["instances"].values())]
    assert holders == [master], _what_happened(lab, states, err)
