"""`haguard doctor` on real namespaces: each mistake seeded for real, and a clean node.

The segment is two namespaces joined by a veth pair: ``dr`` (the director doctor runs
in) and ``other`` (a second host on the same wire, which can hold a VIP or speak VRRP).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from haguard.app.hooks import install
from haguard.core.config import loads
from haguard.core.render import render
from haguard.lab import netns
from tests.lab.conftest import lab_name

CONFIG = """\
node: {{name: lb1, state_dir: {root}/state}}
keepalived: {{config: {root}/keepalived.conf, hooks_dir: {root}/hooks,
             pid_file: {root}/keepalived.pid}}
sysctl: {{net.ipv4.ip_nonlocal_bind: 1}}
instances:
  - name: VI_1
    interface: {iface}
    virtual_router_id: 51
    priority: 150
    advert_int: 1
    vips: [192.0.2.100/32]
"""

IPVS = """\
ipvs:
  services:
    - vip: 192.0.2.100
      port: 80
      protocol: tcp
      scheduler: rr
      real_servers:
        - {address: 192.0.2.21, port: 80, forwarding: dr, weight: 1}
"""


def doctor_command() -> list[str]:
    return [sys.executable, "-m", "haguard", "doctor"]


class Segment:
    def __init__(self, tmp_path: Path) -> None:
        tag = lab_name()
        self.dr = f"hg-{tag}-dr"
        self.other = f"hg-{tag}-ot"
        # Under /run (root, 0755): script security checks every component of the hook path.
        self.root = f"/run/haguard-lab/{self.dr}"
        self.tmp = tmp_path
        self.networkd = tmp_path / "networkd"
        self.networkd.mkdir()
        for ns in (self.dr, self.other):
            netns.create(ns)
        netns.run(["ip", "-n", self.dr, "link", "add", "eth0", "type", "veth", "peer", "name",
                   "eth0", "netns", self.other])
        for ns, address in ((self.dr, "192.0.2.1/24"), (self.other, "192.0.2.2/24")):
            netns.add_address(ns, "eth0", address)
            netns.link_up(ns, "eth0")
        # Clean by default; a test seeds one mistake on top.
        netns.set_sysctl(self.dr, "net.ipv4.ip_nonlocal_bind", "1")
        install(f"{self.root}/hooks")

    def config(self, text: str | None = None, iface: str = "eth0", extra: str = "",
               rendered: bool = True) -> Path:
        path = self.tmp / "lb1.yaml"
        path.write_text((text or CONFIG.format(root=self.root, iface=iface)) + extra)
        if rendered:  # keepalived.conf on disk is haguard's rendering, as after `render -o`
            conf = loads(path.read_text(), str(path), str(path))
            Path(conf.keepalived.config).write_text(render(conf))
        return path

    def doctor(self, config: Path, *args: str, ns: str | None = None,
               wire: bool = False) -> tuple[int, dict[str, Any]]:
        extra = [] if wire else ["--skip-wire"]
        proc = subprocess.run(netns.ns_exec(ns or self.dr, *doctor_command(), "-c", str(config),
                                            "--json", "--networkd-dir", str(self.networkd),
                                            *extra, *args),
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode in (0, 1, 3), proc.stderr
        return proc.returncode, json.loads(proc.stdout)

    def close(self) -> None:
        for ns in (self.dr, self.other):
            netns.kill_all_in(ns)
            netns.delete(ns)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def segment(tmp_path: Path) -> Iterator[Segment]:
    seg = Segment(tmp_path)
    try:
        yield seg
    finally:
        seg.close()
    assert not netns.exists(seg.dr) and not netns.exists(seg.other)


def serious(report: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f["check"], f["severity"]) for f in report["findings"] if f["severity"] != "info"]


def finding(report: dict[str, Any], check: str) -> dict[str, str]:
    found = [f for f in report["findings"] if f["check"] == check and f["severity"] != "info"]
    assert len(found) == 1, report["findings"]
    return found[0]


def test_a_clean_director_is_reported_clean_with_the_wire_watched(segment: Segment) -> None:
    code, report = segment.doctor(segment.config(), "--wire-seconds", "1", wire=True)
    assert serious(report) == [] and code == 0 and report["exit_code"] == 0
    checks = {c["check"]: c["result"] for c in report["checks"]}
    assert checks["keepalived-test"] == checks["script-security"] == checks["sysctl"] == "ok"
    # Nothing answered the probe and no advert came: noted, not failed.
    assert checks["duplicate-address"] == "ok"
    assert any("no VRRP advert for VRID 51" in f["what"] for f in report["findings"])


def test_keepalived_t_failing_on_the_rendering(segment: Segment) -> None:
    # The classic: the config names an interface this host does not have.
    code, report = segment.doctor(segment.config(iface="bond0"))
    f = finding(report, "keepalived-test")
    assert code == 1 and f["severity"] == "error" and "bond0" in f["what"]


def test_a_world_writable_hooks_dir(segment: Segment) -> None:
    os.chmod(f"{segment.root}/hooks", 0o777)
    code, report = segment.doctor(segment.config())
    f = finding(report, "script-security")
    assert code == 1 and f"{segment.root}/hooks: writable by group or others (mode 777)" in f["what"]


def test_hooks_not_installed(segment: Segment) -> None:
    os.unlink(f"{segment.root}/hooks/notify")
    code, report = segment.doctor(segment.config())
    assert code == 1 and "does not exist" in finding(report, "script-security")["what"]


def test_nopreempt_with_a_weighted_tracker_in_keepalived_conf(segment: Segment) -> None:
    config = segment.config()
    conf = Path(f"{segment.root}/keepalived.conf")
    # The operator's own health check, weighted, on an instance with nopreempt.
    conf.write_text('vrrp_script chk_lvs {\n    script "/bin/true"\n    weight -60\n}\n'
                    + conf.read_text().replace("    priority 150\n", "    priority 150\n"
                                               "    nopreempt\n"
                                               "    track_script {\n        chk_lvs\n    }\n"))
    code, report = segment.doctor(config)
    f = finding(report, "nopreempt-weight")
    assert code == 1 and "track_script chk_lvs (weight -60)" in f["what"]


def test_networkd_managing_the_vrrp_interface_without_keepconfiguration(segment: Segment) -> None:
    (segment.networkd / "10-eth0.network").write_text(
        "[Match]\nName=eth0\n\n[Network]\nAddress=192.0.2.1/24\n")
    code, report = segment.doctor(segment.config())
    assert code == 3 and serious(report) == [("networkd", "warning")]
    (segment.networkd / "10-eth0.network.d").mkdir()
    (segment.networkd / "10-eth0.network.d" / "haguard.conf").write_text(
        "[Network]\nKeepConfiguration=static\n")
    code, report = segment.doctor(segment.config())
    assert code == 0 and serious(report) == []


def test_a_required_sysctl_not_set(segment: Segment) -> None:
    netns.set_sysctl(segment.dr, "net.ipv4.ip_nonlocal_bind", "0")
    code, report = segment.doctor(segment.config())
    f = finding(report, "sysctl")
    assert code == 3 and f["what"] == "net.ipv4.ip_nonlocal_bind is 0, the config needs 1"


def test_ip_vs_not_loadable(segment: Segment) -> None:
    code, report = segment.doctor(segment.config(extra=IPVS))
    if os.path.exists("/proc/net/ip_vs"):
        assert not [f for f in report["findings"] if f["check"] == "ip_vs"]
        return
    # This host's kernel has no IPVS at all: the mistake is seeded by the machine.
    assert code == 1 and finding(report, "ip_vs")["severity"] == "error"
    # ... and IPVS's own sysctls are missing with it.
    assert any(f["check"] == "sysctl" and f["subject"] == "net.ipv4.vs.expire_nodest_conn"
               and f["severity"] == "error" for f in report["findings"])


def test_a_real_server_with_the_vip_on_lo_as_a_slash_24(segment: Segment) -> None:
    netns.set_sysctl(segment.other, "net.ipv4.conf.all.arp_ignore", "1")
    netns.set_sysctl(segment.other, "net.ipv4.conf.all.arp_announce", "2")
    netns.run(["ip", "-n", segment.other, "addr", "add", "192.0.2.100/24", "dev", "lo",
               "label", "lo:1"])
    config = segment.tmp / "rs1.yaml"
    config.write_text("node: {name: rs1}\nrealserver: {mode: dr, vips: [192.0.2.100]}\n")
    code, report = segment.doctor(config, ns=segment.other)
    f = finding(report, "realserver")
    assert code == 1 and f["what"].startswith("192.0.2.100/24 on lo")
    netns.run(["ip", "-n", segment.other, "addr", "del", "192.0.2.100/24", "dev", "lo"])
    netns.run(["ip", "-n", segment.other, "addr", "add", "192.0.2.100/32", "dev", "lo"])
    code, report = segment.doctor(config, ns=segment.other)
    assert code == 0 and report["findings"] == []


def test_the_vip_answered_by_another_host(segment: Segment) -> None:
    netns.add_address(segment.other, "eth0", "192.0.2.100/32")  # a leftover alias
    mac = netns.mac_of(segment.other, "eth0")
    code, report = segment.doctor(segment.config(), "--wire-seconds", "1", wire=True)
    f = finding(report, "duplicate-address")
    assert code == 1 and f["severity"] == "error" and mac in f["what"]
    assert f["subject"] == "192.0.2.100"


SEND_ADVERTS = """\
import sys, time
from scapy.config import conf
conf.route_autoload = False
from scapy.layers.l2 import Ether
from scapy.layers.inet import IP
from scapy.layers.vrrp import VRRP
frame = bytes(Ether(src=sys.argv[1], dst="01:00:5e:00:00:12")
              / IP(src="192.0.2.2", dst="224.0.0.18", ttl=255)
              / VRRP(vrid=51, priority=200, adv=1, addrlist=["192.0.2.200"]))
sock = conf.L2socket(iface="eth0")
print("sending", flush=True)
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    sock.send(frame)
    time.sleep(0.2)
"""


def test_a_foreign_vrrp_router_with_our_vrid(segment: Segment) -> None:
    mac = netns.mac_of(segment.other, "eth0")
    sender = subprocess.Popen(netns.ns_exec(segment.other, sys.executable, "-c", SEND_ADVERTS,
                                            mac, "20"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert sender.stdout is not None and sender.stdout.readline().strip() == "sending"
        code, report = segment.doctor(segment.config(), "--wire-seconds", "2", wire=True)
    finally:
        sender.kill()  # by its pid (Popen); the namespace teardown catches any straggler
        sender.wait(10)
    f = finding(report, "vrid-collision")
    assert code == 1 and "VRID 51 on eth0 is also used by 192.0.2.2" in f["what"]
    assert "carries addresses 192.0.2.200" in f["what"]


def test_a_running_pair_with_real_keepalived_is_clean_on_both_directors(make_lab: Any) -> None:
    # The BACKUP's probe is answered by the MASTER and the wire carries the MASTER's
    # adverts: that is how a pair looks, and neither may be reported as a mistake.
    lab = make_lab()
    master = lab.runner.wait_for_master()
    backup = "lb2" if master == "lb1" else "lb1"
    for node in ("lb1", "lb2"):  # persisted by the operator, as doctor's fix says
        netns.set_sysctl(lab.ns(node), "net.ipv4.ip_nonlocal_bind", "1")
    reports = {}
    for node in (master, backup):
        proc = subprocess.run(netns.ns_exec(lab.ns(node), *doctor_command(), "-c",
                                            lab.config(node), "--json", "--wire-seconds", "3",
                                            "--networkd-dir", "/nonexistent"),
                              capture_output=True, text=True, timeout=120)
        reports[node] = json.loads(proc.stdout)
        assert proc.returncode == 0 and serious(reports[node]) == [], reports[node]["findings"]
    master_mac = netns.mac_of(lab.ns(master), "eth0")
    wire = reports[backup]["wire"]
    assert {"vip": "192.0.2.100", "interface": "eth0", "replies": [master_mac]} in wire["probes"]
    assert any(a["vrid"] == 51 and a["source_mac"] == master_mac and not a["outgoing"]
               for a in wire["adverts"])
    assert any(a["vrid"] == 51 and a["outgoing"] for a in reports[master]["wire"]["adverts"])
