"""`haguard migrate` keeps what the network sees of a director: the same director, first
run by the real keepalived from an operator's keepalived.conf, then by haguard from the
migrated YAML, holds the same VIPs and sends the same adverts (VRID, priority, interval,
version). The IPVS side is compared in the real-kernel tier (the host has no IPVS).

One difference is haguard's by design: its adverts carry no addresses (keepalived.conf
as haguard renders it has no virtual_ipaddress; the VIPs are haguard's).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from haguard.adapters import keepalived as keepalived_adapter
from haguard.app.migrate import migrate_file
from haguard.lab import netns
from haguard.lab.runner import read_jsonl
from haguard.lab.topology import DIRECTOR_HOST_BASE, SEGMENTS_V4
from tests.conftest import wait_until

# An operator's file, as keepalived reads it: VIPs with and without a prefix, a label,
# an IPv6 VIP where an IPv4 instance takes one (excluded from the adverts),
# authentication, keepalived's own garp settings.
ORIGINAL = """\
! lb1
global_defs {
    router_id lb1
}
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass s3cret
    }
    virtual_ipaddress {
        192.0.2.100
        192.0.2.101/24 dev eth0 label eth0:1
    }
    virtual_ipaddress_excluded {
        2001:db8::100/64
    }
    garp_master_repeat 3
}
"""


def _keepalived(lab, node: str, conf: Path, workdir: Path) -> subprocess.Popen[bytes]:
    """The real keepalived (VRRP only) from ``conf``, alone in ``node``'s namespace."""
    workdir.mkdir()
    with open(workdir / "keepalived.log", "ab") as log:
        return subprocess.Popen(
            netns.ns_exec(lab.ns(node), keepalived_adapter.binary() or "keepalived",
                          "--dont-fork", "--log-console", "--vrrp", "--use-file", str(conf),
                          "--pid", str(workdir / "k.pid"), "--vrrp_pid", str(workdir / "v.pid")),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)


def _addresses(lab, node: str, device: str = "eth0") -> set[str]:
    """Every global address on one of the director's devices (its own and the VIPs)."""
    out = netns.run(["ip", "-n", lab.ns(node), "-j", "addr", "show", "dev", device]).stdout
    return {f"{a['local']}/{a['prefixlen']}" for link in json.loads(out)
            for a in link.get("addr_info", []) if a.get("scope") == "global"}


def _adverts(probe_file: str, mac: str, since: float) -> list[dict]:
    return [e for e in read_jsonl(probe_file) if e.get("kind") == "vrrp"
            and e["eth_src"] == mac and e["t"] >= since]


def _seen(adverts: list[dict]) -> dict:
    """What a peer learns from a director's adverts."""
    gaps = [b["t"] - a["t"] for a, b in zip(adverts, adverts[1:])]
    return {"vrid": {a["vrid"] for a in adverts}, "priority": {a["priority"] for a in adverts},
            "version": {a["version"] for a in adverts},
            "interval_s": round(sorted(gaps)[len(gaps) // 2]) if gaps else None}


def test_a_migrated_director_holds_the_same_vips_and_sends_the_same_adverts(
        make_lab, tmp_path: Path) -> None:
    original = tmp_path / "keepalived.conf"
    original.write_text(ORIGINAL)
    migrated = migrate_file(str(original))
    assert not [f for f in migrated.findings if f.decision] and not migrated.problems
    lab = make_lab(migrated.text)
    lab.runner.wait_for_master()
    mac = lab.runner.record["directors"]["lb1"]["mac"]["eth0"]
    probe_file = f"{lab.runner.lab.workdir}/probe.jsonl"
    probe = lab.runner.start_probe(probe_file, None)
    keepalived = None
    try:
        # haguard, from the migrated YAML: lb2 is stopped, lb1 alone advertises.
        lab.runner.stop_keepalived("lb2")
        since = time.time()
        time.sleep(5)
        held = _addresses(lab, "lb1")
        adverts = _seen(_adverts(probe_file, mac, since))
        lab.runner.stop_keepalived("lb1")
        own = lab.runner.wait_for(lambda: _addresses(lab, "lb1") < held and
                                  _addresses(lab, "lb1"), 15,
                                  "haguard's STOP hook to remove the VIPs")
        by_haguard = {"vips": held - own, **adverts}
        # keepalived alone, from the operator's file, in the same namespace.
        keepalived = _keepalived(lab, "lb1", original, tmp_path / "keepalived")
        wait_until(lambda: _addresses(lab, "lb1") - own, 30, "keepalived to add the VIPs",
                   step=0.1)
        since = time.time()
        time.sleep(5)
        by_keepalived = {"vips": _addresses(lab, "lb1") - own,
                         **_seen(_adverts(probe_file, mac, since))}
    finally:
        if keepalived is not None:
            os.killpg(keepalived.pid, 15)
            keepalived.wait(20)
        lab.runner.stop_probe(probe)
    assert by_haguard == by_keepalived
    assert by_haguard["vips"] == {"192.0.2.100/32", "192.0.2.101/24", "2001:db8::100/64"}
    assert by_haguard["vrid"] == {51} and by_haguard["priority"] == {150}
    assert by_haguard["interval_s"] == 1
    doc = yaml.safe_load(migrated.text)
    assert doc["instances"][0]["auth_pass"] == "s3cret"


# A second operator's file: unicast adverts between the pair, a sync group of two
# instances, preempt_delay, a tracked interface with a weight (eth1, which a VIP puts in
# the lab: keepalived ignores tracking an instance's own interface) and
# dont_track_primary.
# @LB1@ and @LB2@: the lab's director addresses on eth0.
UNICAST_GROUP = """\
global_defs {
    router_id lb1
}
vrrp_sync_group G1 {
    group {
        VI_1
        VI_2
    }
}
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 61
    priority 140
    advert_int 1
    preempt_delay 5
    unicast_src_ip @LB1@
    unicast_peer {
        @LB2@
    }
    track_interface {
        eth1 weight 20
    }
    virtual_ipaddress {
        192.0.2.100
        198.51.100.100/24 dev eth1
    }
}
vrrp_instance VI_2 {
    state BACKUP
    interface eth0
    virtual_router_id 62
    priority 130
    advert_int 1
    dont_track_primary
    unicast_src_ip @LB1@
    unicast_peer {
        @LB2@
    }
    virtual_ipaddress {
        192.0.2.101
    }
}
"""

VIPS_2 = {"192.0.2.100/32", "198.51.100.100/24", "192.0.2.101/32"}
_OWN_ADVERTS = ("import json, sys; from haguard.adapters.wire import listen; "
                "print(json.dumps([vars(a) for a in listen(['eth0'], float(sys.argv[1])) "
                "if a.outgoing]))")


def _own_adverts(lab, node: str, seconds: float) -> dict:
    """Per VRID, what the director's own adverts say (unicast ones too, which a client
    on the segment does not see)."""
    out = netns.run(netns.ns_exec(lab.ns(node), sys.executable, "-c", _OWN_ADVERTS,
                                  str(seconds))).stdout
    found: dict[int, dict] = {}
    for advert in json.loads(out):
        seen = found.setdefault(advert["vrid"], {"priority": set(), "destination": set(),
                                                 "version": set(), "interval_s": set(),
                                                 "source": set()})
        for key, field in (("priority", "priority"), ("destination", "destination"),
                           ("version", "version"), ("interval_s", "advert_int_s"),
                           ("source", "source")):
            seen[key].add(advert[field])
    return found


def _held(lab, node: str) -> set[str]:
    return _addresses(lab, node) | _addresses(lab, node, "eth1")


def test_unicast_peers_a_sync_group_and_tracking_migrate_to_the_same_adverts(
        make_lab, tmp_path: Path) -> None:
    lb1 = str(SEGMENTS_V4[0].network_address + DIRECTOR_HOST_BASE)
    lb2 = str(SEGMENTS_V4[0].network_address + DIRECTOR_HOST_BASE + 1)
    original = tmp_path / "keepalived.conf"
    original.write_text(UNICAST_GROUP.replace("@LB1@", lb1).replace("@LB2@", lb2))
    migrated = migrate_file(str(original))
    assert not [f for f in migrated.findings if f.decision] and not migrated.problems, \
        migrated.findings
    doc = yaml.safe_load(migrated.text)
    assert doc["sync_groups"] == [{"name": "G1", "instances": ["VI_1", "VI_2"]}]
    lab = make_lab(migrated.text)
    lab.runner.wait_for_master()
    keepalived = None
    try:
        lab.runner.stop_keepalived("lb2")
        time.sleep(1)
        by_haguard = {"vips": _held(lab, "lb1"), "adverts": _own_adverts(lab, "lb1", 4)}
        lab.runner.stop_keepalived("lb1")
        own = lab.runner.wait_for(lambda: not _held(lab, "lb1") & VIPS_2 and
                                  _held(lab, "lb1"), 15,
                                  "haguard's STOP hook to remove the VIPs")
        by_haguard["vips"] -= own
        keepalived = _keepalived(lab, "lb1", original, tmp_path / "keepalived")
        wait_until(lambda: len(_held(lab, "lb1") - own) == 3, 30,
                   "keepalived to add every VIP", step=0.1)
        time.sleep(1)
        by_keepalived = {"vips": _held(lab, "lb1") - own,
                         "adverts": _own_adverts(lab, "lb1", 4)}
    finally:
        if keepalived is not None:
            os.killpg(keepalived.pid, 15)
            keepalived.wait(20)
    assert by_haguard == by_keepalived
    assert by_haguard["vips"] == VIPS_2
    assert set(by_haguard["adverts"]) == {61, 62}
    for vrid in (61, 62):
        assert by_haguard["adverts"][vrid]["destination"] == {lb2}       # unicast
        assert by_haguard["adverts"][vrid]["source"] == {lb1}
