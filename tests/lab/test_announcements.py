"""The client learns the new owner from haguard's announcements, and only from them."""

from __future__ import annotations

import time

from haguard.lab.runner import read_jsonl
from tests.lab.conftest import LAB_YAML

V4, V6 = "192.0.2.100", "2001:db8::100"


def drill(lab):
    """Prime the client's neighbour entries, watch a SIGTERM failover, return the timeline."""
    lab.runner.wait_for_master()
    for vip in (V4, V6):
        assert lab.runner.client_ping(vip), f"client cannot reach {vip} before the failover"
    probe_file = f"{lab.runner.lab.workdir}/probe.jsonl"
    probe = lab.runner.start_probe(probe_file, V4, 10)
    try:
        time.sleep(0.3)
        timeline = lab.runner.failover(probe_file, 10, "stop")
    finally:
        lab.runner.stop_probe(probe)
    return timeline, read_jsonl(probe_file)


def test_client_neighbour_entry_follows_vip_because_of_haguards_announcement(make_lab) -> None:
    lab = make_lab()
    tl, events = drill(lab)
    new_mac = lab.runner.record["directors"]["lb2"]["mac"]["eth0"]
    old_mac = lab.runner.record["directors"]["lb1"]["mac"]["eth0"]
    # Before: the client held lb1's MAC in a live entry, learned the normal way.
    before = [e for e in events if e.get("kind") == "neigh" and e["ip"] == V4 and e["t"] < tl.trigger_at]
    assert before and before[-1]["mac"] == old_mac
    assert before[-1]["state"] in ("REACHABLE", "STALE", "DELAY")
    # After: lb2's MAC, for both families, and the client never asked for it.
    assert set(tl.neighbour_switched_at) == {V4, V6}
    assert tl.client_asked == {V4: False, V6: False}
    assert tl.learned_from_announcement
    # The switch happened after the first announcement reached the client.
    assert tl.first_announcement_seen_at is not None
    assert min(tl.neighbour_switched_at.values()) >= tl.first_announcement_seen_at
    assert tl.new_mac == new_mac


def test_switch_that_learns_only_from_replies_sees_reply_form_garps(make_lab) -> None:
    lab = make_lab()
    tl, events = drill(lab)
    new_mac = lab.runner.record["directors"]["lb2"]["mac"]["eth0"]
    replies = [e for e in events if e.get("kind") == "arp" and e["op"] == 2 and e["t"] >= tl.trigger_at
               and e["spa"] == V4 == e["tpa"] and e["sha"] == new_mac]
    assert len(replies) == 5 == tl.garp_replies  # announce.count in conf/lab.yaml
    assert all(r["eth_dst"] == "ff:ff:ff:ff:ff:ff" for r in replies)
    requests = [e for e in events if e.get("kind") == "arp" and e["op"] == 1 and e["t"] >= tl.trigger_at
                and e["spa"] == V4 == e["tpa"] and e["sha"] == new_mac]
    assert len(requests) == 5 and all(r["tha"] == "00:00:00:00:00:00" for r in requests)


def test_ipv6_vip_is_learned_through_unsolicited_na(make_lab) -> None:
    lab = make_lab()
    tl, events = drill(lab)
    new_mac = lab.runner.record["directors"]["lb2"]["mac"]["eth0"]
    nas = [e for e in events if e.get("kind") == "na" and e["t"] >= tl.trigger_at
           and e["target"] == V6 and e["dir"] == "in"]
    assert len(nas) == 5
    for na in nas:
        assert (na["dst"], na["hlim"], na["O"], na["R"], na["S"], na["tll"]) == \
            ("ff02::1", 255, True, False, False, new_mac)
    assert V6 in tl.neighbour_switched_at


def test_without_haguards_announcements_the_client_keeps_the_old_mac(make_lab) -> None:
    """Control: keepalived has no VIPs, so with haguard silent nobody announces."""
    silent = LAB_YAML.read_text().replace(
        "announce: {count: 5, interval_ms: 200, repeat_after_s: 5, refresh_s: 0}",
        "announce: {count: 0}")
    assert silent != LAB_YAML.read_text()
    lab = make_lab(silent)
    lab.runner.wait_for_master()
    assert lab.runner.client_ping(V4)
    old_mac = lab.runner.record["directors"]["lb1"]["mac"]["eth0"]
    new_mac = lab.runner.record["directors"]["lb2"]["mac"]["eth0"]
    probe_file = f"{lab.runner.lab.workdir}/probe.jsonl"
    probe = lab.runner.start_probe(probe_file, None)
    try:
        trigger = time.time()
        lab.runner.stop_keepalived("lb1")
        lab.runner.wait_for(lambda: lab.runner.master() == "lb2", 10, "lb2 MASTER")
        time.sleep(2.0)
    finally:
        lab.runner.stop_probe(probe)
    events = read_jsonl(probe_file)
    garps = [e for e in events if e.get("kind") in ("arp", "na") and e["t"] >= trigger
             and e.get("sha", e.get("tll")) == new_mac]
    assert garps == [], "something announced the VIP although haguard was told not to"
    neigh = [e for e in events if e.get("kind") == "neigh" and e["ip"] == V4]
    assert neigh and neigh[-1]["mac"] == old_mac
