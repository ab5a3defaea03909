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
import time
from pathlib import Path

import yaml

from haguard.adapters import keepalived as keepalived_adapter
from haguard.app.migrate import migrate_file
from haguard.lab import netns
from haguard.lab.runner import read_jsonl
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


def _addresses(lab, node: str) -> set[str]:
    """Every global address on the director's eth0 (its own and the VIPs)."""
    out = netns.run(["ip", "-n", lab.ns(node), "-j", "addr", "show", "dev", "eth0"]).stdout
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
        workdir = tmp_path / "keepalived"
        workdir.mkdir()
        log = open(workdir / "keepalived.log", "ab")
        keepalived = subprocess.Popen(
            netns.ns_exec(lab.ns("lb1"), keepalived_adapter.binary() or "keepalived",
                          "--dont-fork", "--log-console", "--vrrp", "--use-file", str(original),
                          "--pid", str(workdir / "k.pid"), "--vrrp_pid", str(workdir / "v.pid")),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()
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
