"""`haguard failover-test -c FILE` run on a director of the lab pair as on a live pair:
what it sees from its own node and the wire, its probe point, and its refusals."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

from haguard.lab import netns
from tests.lab.conftest import TICK_S, master_hook_forked

VIP = "192.0.2.100"
PORT = "8080"


def _serve_on_both(lab) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen(netns.ns_exec(lab.ns(node), sys.executable, "-m",
                                           "haguard.adapters.httpprobe", "serve", "--name", node,
                                           "--port", PORT, "--bind", "0.0.0.0"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for node in ("lb1", "lb2")]


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
        proc.wait(10)


def test_a_live_drill_on_the_master_times_the_peer_from_the_wire_and_the_probe_point(
        make_lab) -> None:
    lab = make_lab()
    assert lab.runner.wait_for_master() == "lb1"
    lb2 = next(d for d in lab.lab.directors if d.node == "lb2")
    lb2_address = lb2.legs[0].ipv4.split("/")[0]
    lb2_mac = lab.runner.record["directors"]["lb2"]["mac"][lab.lab.interfaces[0]]
    servers = _serve_on_both(lab)
    # The test's own witness from the client: iputils ping, kernel-side timestamps.
    ping = subprocess.Popen(netns.ns_exec(lab.lab.client.namespace, "ping", "-D", "-n",
                                          "-i", "0.01", "-W", "1", VIP),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        time.sleep(1.0)
        proc = subprocess.run(netns.ns_exec(
            lab.ns("lb1"), sys.executable, "-m", "haguard", "failover-test", "-c",
            lab.config("lb1"), "--probe-from", lab.lab.client.namespace, "--port", PORT,
            "--json"), capture_output=True, text=True, timeout=180)
    finally:
        ping.send_signal(signal.SIGINT)
        out, _ = ping.communicate(timeout=10)
        _stop(servers)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert (report["new_master"], report["new_master_mac"]) == (lb2_address, lb2_mac)
    assert report["left_master_ms"] is not None    # lb1's priority-0 advert
    assert 0 < report["new_master_ms"] <= report["first_announcement_ms"]
    # The first announcement on the wire is lb2's takeover: it follows keepalived's fork of
    # lb2's MASTER hook (how long after depends on the machine's load, not on haguard).
    forked = master_hook_forked(lab, "lb2", since=report["trigger_at"])
    assert forked is not None
    assert forked - TICK_S <= report["trigger_at"] + report["first_announcement_ms"] / 1000
    assert any(m["what"].startswith("removed 192.0.2.100") for m in report["milestones"])
    replies = [float(m.group(1)) for m in re.finditer(r"^\[(\d+\.\d+)\] \d+ bytes from", out,
                                                      re.M)]
    after = [t for t in replies if t >= report["trigger_at"] - 0.2]
    mine_ms = max(b - a for a, b in zip(after, after[1:])) * 1000 - 10
    # The drill's probe and this witness each sample the outage every 10 ms: they agree
    # within 20 %, or within two intervals for a short one. A demotion can hand over in
    # well under 100 ms (lb2 announcing while lb1's hook removes), so the outage has no
    # floor here; the milestones above prove the failover happened.
    assert abs(report["outage_ms"] - mine_ms) <= max(0.2 * mine_ms, 20), \
        (report["outage_ms"], mine_ms)
    assert report["tcp_outage_ms"] > 0 and report["connections"] == 5
    # put back: lb1 preempts, the lever is cleared, the audit log says so
    assert report["failback_ms"] > 0 and "MASTER again" in report["restored"]
    # The drill ends with lb1 MASTER again; lb2 lets go on its own BACKUP transition,
    # which may still be running then.
    assert lab.runner.wait_for_master() == "lb1"
    lever_dir = os.path.join(os.path.dirname(lab.config("lb1")), "levers")
    assert open(os.path.join(lever_dir, "track", "VI_1.demote")).read().strip() == "0"
    actions = [json.loads(line)["action"]
               for line in open(os.path.join(lever_dir, "audit.log"), encoding="utf-8")]
    assert actions[-2:] == ["demote", "drill_undo"]
    state_dir = lab.runner.record["directors"]["lb1"]["state_dir"]
    assert not [n for n in os.listdir(state_dir) if n.startswith("drill-")]  # cleaned up


def test_a_live_drill_on_the_backup_refuses_and_names_the_master(make_lab) -> None:
    lab = make_lab()
    assert lab.runner.wait_for_master() == "lb1"
    lb1_address = next(d for d in lab.lab.directors if d.node == "lb1").legs[0].ipv4
    proc = lab.haguard("lb2", "failover-test", "-c", lab.config("lb2"))
    assert proc.returncode == 1, proc.stderr
    assert "not MASTER: run the drill on the MASTER" in proc.stderr
    assert lb1_address.split("/")[0] in proc.stderr
    assert lab.runner.master() == "lb1"
    assert not os.path.exists(os.path.join(os.path.dirname(lab.config("lb2")), "levers",
                                           "audit.log"))


def test_a_live_drill_without_a_peer_undoes_its_trigger_and_fails(make_lab) -> None:
    lab = make_lab()
    assert lab.runner.wait_for_master() == "lb1"
    lab.runner.stop_keepalived("lb2")
    proc = lab.haguard("lb1", "failover-test", "-c", lab.config("lb1"))
    assert proc.returncode == 1, proc.stderr
    assert "no peer advertised as MASTER" in proc.stderr
    lab.runner.wait_for(lambda: lab.runner.masters() == ["lb1"], 20, "lb1 MASTER again")
    assert sorted(lab.addresses("lb1")) and lab.runner.master() == "lb1"
