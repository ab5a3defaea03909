"""A VIP on another device than its instance's interface (``vips[].interface``, keepalived's
``virtual_ipaddress { ... dev eth1 }``): added there on MASTER, announced there from that
device's own MAC, removed from there on BACKUP, in the real namespace lab."""

from __future__ import annotations

import json
import time

from haguard.lab.runner import read_jsonl
from tests.lab.conftest import LAB_YAML

V4, ON_ETH1 = "192.0.2.100", "198.51.100.100"


def eth1_config() -> str:
    text = LAB_YAML.read_text()
    edited = text.replace(
        "      - {address: 2001:db8::100/64, label: eth0:0}\n",
        "      - {address: 2001:db8::100/64, label: eth0:0}\n"
        "      - {address: 198.51.100.100/24, interface: eth1, label: \"eth1:vip\"}\n")
    assert edited != text
    return edited


def addresses(lab, node: str, ifname: str) -> list[str]:
    return [a.split("/")[0] for a in lab.addresses(node, ifname)]


def test_a_vip_on_another_device_follows_the_master_and_is_announced_from_that_device(
        make_lab) -> None:
    lab = make_lab(eth1_config())
    runner = lab.runner
    assert runner.wait_for_master() == "lb1"
    assert ON_ETH1 in addresses(lab, "lb1", "eth1")
    assert ON_ETH1 not in addresses(lab, "lb1", "eth0")
    assert runner.client_ping(ON_ETH1), "the client cannot reach the VIP on eth1"

    probe_file = f"{runner.lab.workdir}/probe.jsonl"
    probe = runner.start_probe(probe_file, V4, 10)
    try:
        time.sleep(0.3)
        timeline = runner.failover(probe_file, 10, "stop")
    finally:
        runner.stop_probe(probe)
    events = read_jsonl(probe_file)

    assert ON_ETH1 in addresses(lab, "lb2", "eth1")
    assert ON_ETH1 not in addresses(lab, "lb1", "eth1")
    macs = runner.record["directors"]["lb2"]["mac"]
    assert macs["eth0"] != macs["eth1"]
    # Each VIP's gratuitous ARPs came from the device it lives on, none from the other.
    garps = [e for e in events if e.get("kind") == "arp" and e["t"] >= timeline.trigger_at
             and e.get("dir") == "in" and e["spa"] == e["tpa"]]
    assert {e["sha"] for e in garps if e["spa"] == ON_ETH1} == {macs["eth1"]}
    assert {e["sha"] for e in garps if e["spa"] == V4} == {macs["eth0"]}
    # The burst: announce.count (5) replies, 200 ms apart (the re-announcement 5 s later
    # may be in the capture too).
    replies = [e["t"] for e in garps if e["spa"] == ON_ETH1 and e["op"] == 2]
    assert len([t for t in replies if t < replies[0] + 2.0]) == 5
    # The client learned the new owner of both without asking (announce.count: 5).
    assert timeline.client_asked.get(ON_ETH1) is not True
    assert ON_ETH1 in timeline.neighbour_switched_at and V4 in timeline.neighbour_switched_at

    status = lab.haguard("lb2", "status", "-c", lab.config("lb2"), "--json", "--no-wire")
    instance = json.loads(status.stdout or "{}")["instances"][0]
    assert instance["vip_devices"] == {"198.51.100.100/24": "eth1"}
    assert "198.51.100.100/24" in instance["vips_present"]
