"""Transitions against the real keepalived: who holds the VIPs in every state."""

from __future__ import annotations

import json
import signal
import time

from haguard.lab import netns
from haguard.lab.runner import read_jsonl
from tests.conftest import wait_until

VIPS = ["192.0.2.100/32", "2001:db8::100/64"]


def vips_on(lab, node: str) -> list[str]:
    return sorted(a for a in lab.addresses(node) if a in VIPS)


def recorded(lab, node: str, instance: str = "VI_1") -> dict:
    state_dir = lab.runner.record["directors"][node]["state_dir"]
    with open(f"{state_dir}/{instance}.json", encoding="utf-8") as fh:
        return json.load(fh)


def test_master_holds_every_vip_and_backup_none(make_lab) -> None:
    lab = make_lab()
    master = lab.runner.wait_for_master()
    assert master == "lb1"  # priority 150 against the derived peer's 100
    assert vips_on(lab, "lb1") == sorted(VIPS)
    assert vips_on(lab, "lb2") == []
    assert recorded(lab, "lb1")["state"] == "MASTER"
    assert wait_until(lambda: recorded(lab, "lb2").get("state") == "BACKUP", 5, "lb2 BACKUP")
    # keepalived itself was given no VIPs: the rendered config has none.
    conf = open(lab.runner.record["directors"]["lb1"]["config"].replace(
        "haguard.yaml", "keepalived.conf"), encoding="utf-8").read()
    assert "virtual_ipaddress {" not in conf and "notify \"" in conf


def test_stop_removes_vips_and_peer_takes_over_within_master_down(make_lab) -> None:
    lab = make_lab()
    lab.runner.wait_for_master()
    trigger = time.time()
    lab.runner.stop_keepalived("lb1", signal.SIGTERM, wait=False)
    wait_until(lambda: vips_on(lab, "lb2") == sorted(VIPS), 10, "lb2 to hold the VIPs")
    taken = time.time() - trigger
    # master_down = 3 x advert_int + skew ((256 - 100) / 256 x advert_int) for lb2
    master_down = 3 * 1 + (256 - 100) / 256
    assert taken <= master_down + 1, f"takeover took {taken:.2f} s"
    wait_until(lambda: vips_on(lab, "lb1") == [], 5, "lb1's STOP hook to remove its VIPs")
    # A STOP removes the VIPs first and records the state last: wait for the record too.
    wait_until(lambda: recorded(lab, "lb1").get("state") == "STOP", 5, "lb1 to record STOP")
    wait_until(lambda: recorded(lab, "lb2").get("state") == "MASTER", 5, "lb2 to record MASTER")


def test_sigkill_of_master_keepalived_moves_vips_within_master_down_plus_one(make_lab) -> None:
    lab = make_lab()
    lab.runner.wait_for_master()
    trigger = time.time()
    lab.runner.stop_keepalived("lb1", signal.SIGKILL, wait=False)
    wait_until(lambda: vips_on(lab, "lb2") == sorted(VIPS), 10, "lb2 to hold the VIPs")
    taken = time.time() - trigger
    master_down = 3 * 1 + (256 - 100) / 256
    assert taken <= master_down + 1, f"takeover took {taken:.2f} s"
    wait_until(lambda: recorded(lab, "lb2").get("state") == "MASTER", 5, "lb2 to record MASTER")


def test_fault_removes_vips_when_the_vrrp_interface_goes_down(make_lab) -> None:
    lab = make_lab()
    lab.runner.wait_for_master()
    netns.link_down(lab.ns("lb1"), "eth0")
    wait_until(lambda: recorded(lab, "lb1").get("state") == "FAULT", 10, "lb1 FAULT")
    wait_until(lambda: vips_on(lab, "lb1") == [], 5, "lb1 without VIPs")
    wait_until(lambda: vips_on(lab, "lb2") == sorted(VIPS), 10, "lb2 to take over")
    netns.link_up(lab.ns("lb1"), "eth0")
    # preemption is on and lb1 has the higher priority: it comes back as MASTER
    wait_until(lambda: vips_on(lab, "lb1") == sorted(VIPS) and vips_on(lab, "lb2") == [],
               15, "lb1 to preempt back and lb2 to release")
    # lb2's BACKUP transition removed the VIPs first; its record is written last.
    wait_until(lambda: recorded(lab, "lb2").get("state") == "BACKUP", 5, "lb2 to record BACKUP")


def test_second_master_event_adds_nothing_and_announces_again(make_lab) -> None:
    lab = make_lab()
    lab.runner.wait_for_master()
    log_file = lab.runner.record["directors"]["lb1"]["log_file"]
    start = time.time()
    for _ in range(2):
        proc = lab.haguard("lb1", "notify", "-c", lab.config("lb1"), "INSTANCE", "VI_1", "MASTER",
                           "150")
        assert proc.returncode == 0, proc.stderr
    addrs = lab.addresses("lb1")
    assert addrs.count("192.0.2.100/32") == 1 and addrs.count("2001:db8::100/64") == 1
    events = [e for e in read_jsonl(log_file) if e.get("ts", 0) >= start]
    assert len([e for e in events if e.get("event") == "announced"]) == 2
    assert [e for e in events if e.get("event") == "vip_added"] == []
