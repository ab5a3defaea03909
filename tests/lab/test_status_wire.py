"""`haguard status` tells the truth from the wire: who advertises each VRID."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from haguard.lab import netns
from tests.conftest import wait_until

SENDER = """
import sys, time
from scapy.all import Ether, IP, sendp
from scapy.layers.vrrp import VRRP
frame = (Ether(dst="01:00:5e:00:00:12") / IP(src="192.0.2.200", dst="224.0.0.18", ttl=255)
         / VRRP(vrid=int(sys.argv[1]), priority=200, addrlist=["198.51.100.9"], adv=1))
end = time.time() + float(sys.argv[2])
while time.time() < end:
    sendp(frame, iface="eth0", verbose=False)
    time.sleep(0.3)
"""


def _status(lab, node: str, *extra: str) -> tuple[int, dict, float]:
    started = time.monotonic()
    proc = lab.haguard(node, "status", "-c", lab.config(node), "--json", *extra)
    return proc.returncode, json.loads(proc.stdout), time.monotonic() - started


def test_status_sees_the_master_advertising_and_calls_the_pair_healthy(make_lab) -> None:
    lab = make_lab()
    lab.runner.wait_for_master()
    code, report, _ = _status(lab, "lb2")
    wire = report["instances"][0]["wire"]
    assert code == 0, report["problems"]
    assert [s["source"] for s in wire["speakers"]] == ["192.0.2.11"]
    assert wire["speakers"][0]["priority"] == 150 and not wire["speakers"][0]["this_node"]
    code, report, _ = _status(lab, "lb1")
    assert code == 0 and report["instances"][0]["wire"]["speakers"][0]["this_node"]


def test_status_detects_a_split_brain_within_three_seconds(make_lab) -> None:
    lab = make_lab()
    lab.runner.wait_for_master()
    # lb2 may have won the first election before lb1 came up: its BACKUP hook removes the
    # VIPs first and records BACKUP last, so until then its record still says MASTER.
    # Start from a settled BACKUP, or that stale record passes for the split below.
    wait_until(lambda: lab.runner.states()["lb2"]["instances"]["VI_1"]["state"] == "BACKUP",
               15, "lb2 to record BACKUP", step=0.1)
    # A firewall dropping VRRP on both directors: keepalived hears nothing, both become
    # MASTER; the wire (seen before the firewall) still carries both.
    for node in ("lb1", "lb2"):
        netns.run(netns.ns_exec(lab.ns(node), "iptables", "-A", "INPUT", "-p", "112",
                                "-j", "DROP"))
    wait_until(lambda: "lb2" in lab.runner.masters(), 15,
               "lb2 to become MASTER (holding the VIPs) behind the firewall", step=0.1)
    code, report, took = _status(lab, "lb1", "--wire-seconds", "3")
    assert code == 1
    wire = report["instances"][0]["wire"]
    assert wire["split_brain"] and wire["listened_s"] == 3
    assert any("split brain" in p for p in report["problems"]), report["problems"]
    # The window asked for, not until something else ends it (a Python start on top:
    # seconds on a loaded machine, so only a hang fails this).
    assert took < 3 + 20


def test_status_names_a_foreign_router_on_our_vrid(make_lab) -> None:
    lab = make_lab()
    lab.runner.wait_for_master()
    sender = subprocess.Popen(netns.ns_exec(lab.lab.client.namespace, sys.executable, "-c",
                                            SENDER, "51", "6"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)
        code, report, _ = _status(lab, "lb2", "--wire-seconds", "3")
    finally:
        sender.wait(20)
    assert code == 1
    foreign = [s for s in report["instances"][0]["wire"]["speakers"] if s["foreign"]]
    assert [s["source"] for s in foreign] == ["192.0.2.200"]
    assert "198.51.100.9" in foreign[0]["foreign_reason"]
    assert any("foreign router 192.0.2.200" in p for p in report["problems"])
