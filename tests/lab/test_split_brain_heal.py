"""A split brain heals: the MASTER that hears the other's lower priority announces its
VIPs again (keepalived's notify_master_rx_lower_pri, rendered for the hook), so the
switches and the client learn the VIP back from the director that keeps it."""

from __future__ import annotations

import time

from haguard.lab import netns
from haguard.lab.runner import read_jsonl
from tests.conftest import wait_until

V4 = "192.0.2.100"


def _vrrp_firewall(lab, node: str, action: str) -> None:
    netns.run(netns.ns_exec(lab.ns(node), "iptables", action, "INPUT", "-p", "112",
                            "-j", "DROP"))


def test_the_master_announces_again_when_it_hears_the_split_brain_heal(make_lab) -> None:
    lab = make_lab()
    lab.runner.wait_for_master()
    wait_until(lambda: lab.runner.states()["lb2"]["instances"]["VI_1"]["state"] == "BACKUP",
               15, "lb2 to record BACKUP", step=0.1)
    lb1_mac = lab.runner.record["directors"]["lb1"]["mac"]["eth0"]
    lb2_mac = lab.runner.record["directors"]["lb2"]["mac"]["eth0"]
    assert lab.runner.client_ping(V4)            # the client knows the VIP at lb1
    probe_file = f"{lab.runner.lab.workdir}/probe.jsonl"
    probe = lab.runner.start_probe(probe_file, None)
    try:
        for node in ("lb1", "lb2"):
            _vrrp_firewall(lab, node, "-A")
        wait_until(lambda: "lb2" in lab.runner.masters(), 15,
                   "lb2 to become MASTER behind the firewall", step=0.1)
        time.sleep(6)       # lb1's announcements of its own takeover are long over
        # lb1 hears lb2's lower priority first (if lb2 heard lb1 first it would turn
        # BACKUP silently, and keepalived has nothing to tell lb1: that order is the
        # same with keepalived's own VIPs).
        healed = time.time()
        _vrrp_firewall(lab, "lb1", "-D")
        wait_until(lambda: any(e.get("kind") == "arp" and e["t"] >= healed
                               and e["sha"] == lb1_mac for e in read_jsonl(probe_file)),
                   15, "lb1 to announce the VIP again", step=0.1)
        _vrrp_firewall(lab, "lb2", "-D")
        wait_until(lambda: lab.runner.states()["lb2"]["instances"]["VI_1"]["state"]
                   == "BACKUP", 15, "lb2 to fall back to BACKUP", step=0.1)
        time.sleep(1)
    finally:
        lab.runner.stop_probe(probe)
    events = read_jsonl(probe_file)
    neigh = [e for e in events if e.get("kind") == "neigh" and e["ip"] == V4]
    # The client learnt lb2's MAC during the split, and lb1's again after it.
    assert lb2_mac in {e["mac"] for e in neigh if e["t"] < healed}, neigh
    assert neigh[-1]["mac"] == lb1_mac, neigh
    log = read_jsonl(lab.runner.record["directors"]["lb1"]["log_file"])
    again = [e for e in log if e.get("event") == "notify_received"
             and e.get("forked_at", 0) >= healed - 0.5]
    assert again and again[0]["state"] == "MASTER", again
