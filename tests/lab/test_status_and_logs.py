"""`haguard status` against reality, and the structured log of every action."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

from haguard.lab import netns
from haguard.lab.runner import read_jsonl
from tests.lab.conftest import Node
from tests.lab.test_transitions import wait_until


def test_status_reports_state_vips_and_keepalived_on_both_directors(make_lab) -> None:
    lab = make_lab()
    lab.runner.wait_for_master()
    wait_until(lambda: (json.loads(lab.haguard("lb2", "status", "--no-wire", "-c", lab.config("lb2"), "--json")
                                   .stdout)["instances"][0]["state"] == "BACKUP"), 5, "lb2 BACKUP")
    for node_name, state, held in (("lb1", "MASTER", ["192.0.2.100/32", "2001:db8::100/64"]),
                                   ("lb2", "BACKUP", [])):
        proc = lab.haguard(node_name, "status", "--no-wire", "-c", lab.config(node_name), "--json")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        report = json.loads(proc.stdout)
        inst = report["instances"][0]
        assert (inst["state"], inst["vips_present"]) == (state, held)
        assert report["keepalived"]["running"] is True
        assert report["keepalived"]["pid"] == lab.runner.record["pids"][node_name]
        assert inst["last_transition_ms"] > 0 and inst["since"] > 0
        text = lab.haguard(node_name, "status", "--no-wire", "-c", lab.config(node_name)).stdout
        assert f"VI_1 (VRID 51 on eth0): {state}" in text and "healthy" in text


def test_status_exits_1_when_a_backup_holds_a_vip_or_keepalived_is_down(make_lab) -> None:
    lab = make_lab()
    lab.runner.wait_for_master()
    wait_until(lambda: lab.haguard("lb2", "status", "--no-wire", "-c", lab.config("lb2")).returncode == 0,
               5, "lb2 healthy")
    netns.add_address(lab.ns("lb2"), "eth0", "192.0.2.100/32")
    proc = lab.haguard("lb2", "status", "--no-wire", "-c", lab.config("lb2"), "--json")
    assert proc.returncode == 1
    assert "BACKUP but holding 192.0.2.100/32" in json.loads(proc.stdout)["problems"]
    lab.runner.stop_keepalived("lb1")
    proc = lab.haguard("lb1", "status", "--no-wire", "-c", lab.config("lb1"))
    assert proc.returncode == 1 and "keepalived: NOT running" in proc.stdout


def test_every_action_is_one_structured_event_with_its_facts(make_lab) -> None:
    lab = make_lab()
    lab.runner.wait_for_master()
    events = read_jsonl(lab.runner.record["directors"]["lb1"]["log_file"])
    added = [e for e in events if e.get("event") == "vip_added"]
    assert {e["vip"] for e in added} == {"192.0.2.100/32", "2001:db8::100/64"}
    for e in added + [e for e in events if e.get("event") in ("announced", "sysctl_set")]:
        assert e["instance"] == "VI_1" and e["state"] == "MASTER" and e["node"] == "lb1"
        assert e["outcome"] == "ok" and e["duration_ms"] >= 0 and e["ts"] > 0
    recorded = [e["state"] for e in events if e.get("event") == "state_recorded"]
    assert recorded[-1] == "MASTER" and set(recorded) <= {"BACKUP", "MASTER"}
    announced = next(e for e in events if e.get("event") == "announced")
    assert announced["frames"] == 3  # GARP request + reply for IPv4, one NA for IPv6


def test_events_reach_the_syslog_socket(node: Node, tmp_path: Path) -> None:
    path = str(tmp_path / "dev-log")
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(path)
    sink.settimeout(5)
    try:
        proc = subprocess.run(node.hook("-c", str(node.config), "INSTANCE", "VI_1", "MASTER"),
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "HAGUARD_SYSLOG_SOCKET": path})
        assert proc.returncode == 0, proc.stderr
        messages = []
        while True:
            try:
                messages.append(sink.recv(65536).decode())
            except TimeoutError:
                break
            if '"transition_done"' in messages[-1]:
                break
    finally:
        sink.close()
    assert messages and all(m.startswith("<30>haguard[") for m in messages)
    bodies = [json.loads(m.split(": ", 1)[1]) for m in messages]
    assert [b["event"] for b in bodies if b["event"] == "vip_added"] == ["vip_added", "vip_added"]
