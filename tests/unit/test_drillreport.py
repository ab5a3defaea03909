"""The drill's figures from recorded events (pure)."""

from __future__ import annotations

from haguard.core.drillreport import (
    WireView,
    failure_run,
    ipvs_before_vip,
    live_milestones,
    ping_outage,
)

T = 1000.0
VIEW = WireView(node="lb1", own_macs=frozenset({"02:00:00:00:00:01"}), vrids=frozenset({51}),
                vips=frozenset({"192.0.2.100", "2001:db8::100"}))


def test_ping_outage_is_the_longest_silence_across_the_trigger_less_one_interval() -> None:
    pongs = [T - 0.02, T - 0.01, T + 0.5, T + 0.51]
    outage = ping_outage(pongs, T, 10)
    assert outage.ms == 500.0 and outage.lost == 50 and outage.back_at == T + 0.5


def test_ping_outage_without_an_answer_after_the_trigger_is_not_measured() -> None:
    assert ping_outage([T - 0.01], T, 10).ms is None


def test_failure_run_counts_the_longest_run_of_failed_attempts() -> None:
    events = [{"t": T + i / 100, "ok": not (5 <= i < 30 or 40 <= i < 45)} for i in range(60)]
    outage = failure_run(events, T, lambda e: e["ok"])
    assert outage.ms == 250.0 and outage.lost == 30 and outage.back_at == T + 0.3


def test_ipvs_before_vip_compares_the_first_reconcile_with_the_first_vip_added() -> None:
    log = [{"ts": T + 1, "event": "ipvs_reconciled"}, {"ts": T + 2, "event": "vip_added"}]
    assert ipvs_before_vip(log, T) is True
    assert ipvs_before_vip(list(reversed([{**log[0], "ts": T + 3}, log[1]])), T) is False
    assert ipvs_before_vip([log[1]], T) is None


def test_live_milestones_tell_our_leaving_from_the_peer_taking_over() -> None:
    wire = [
        {"kind": "vrrp", "t": T - 1, "eth_src": "02:00:00:00:00:01", "src": "192.0.2.11",
         "vrid": 51, "priority": 150},
        {"kind": "vrrp", "t": T + 0.001, "eth_src": "02:00:00:00:00:01", "src": "192.0.2.11",
         "vrid": 51, "priority": 0},
        {"kind": "vrrp", "t": T + 0.3, "eth_src": "02:00:00:00:00:09", "src": "198.51.100.9",
         "vrid": 7, "priority": 200},            # another VRID: not our pair
        {"kind": "vrrp", "t": T + 0.6, "eth_src": "02:00:00:00:00:02", "src": "192.0.2.12",
         "vrid": 51, "priority": 100},
        {"kind": "arp", "t": T + 0.61, "eth_src": "02:00:00:00:00:01", "spa": "192.0.2.100",
         "tpa": "192.0.2.100"},                  # ours: not the new MASTER's announcement
        {"kind": "arp", "t": T + 0.7, "eth_src": "02:00:00:00:00:02", "spa": "192.0.2.100",
         "tpa": "192.0.2.100"},
        {"kind": "na", "t": T + 0.71, "eth_src": "02:00:00:00:00:02", "target": "2001:db8::100",
         "S": False},
    ]
    log = [{"ts": T + 0.2, "event": "vip_removed", "vip": "192.0.2.100/32"}]
    found = live_milestones(VIEW, T, wire, log)
    assert found["left_master_ms"] == 1.0
    assert (found["new_master"], found["new_master_mac"], found["new_master_ms"]) == \
        ("192.0.2.12", "02:00:00:00:00:02", 600.0)
    assert found["first_announcement_ms"] == 700.0 and found["announcements_seen"] == 2
    assert [m["what"].split()[0] for m in found["milestones"]] == \
        ["failover", "advertised", "removed", "new", "first"]


def test_live_milestones_without_a_peer_name_no_new_master() -> None:
    found = live_milestones(VIEW, T, [{"kind": "vrrp", "t": T + 0.1, "vrid": 51, "priority": 0,
                                        "eth_src": "02:00:00:00:00:01", "src": "192.0.2.11"}], [])
    assert found["new_master"] is None and found["first_announcement_ms"] is None
