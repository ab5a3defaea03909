"""`haguard doctor`'s rules on fabricated observations: one case per mistake, and clean."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from dataclasses import dataclass

import pytest

from haguard.app.doctor import format_text, report
from haguard.core import doctorrules as doctor
from haguard.core.config import Config, loads
from haguard.core.doctorrules import (
    ArpProbe,
    KeepalivedTest,
    NetworkdFile,
    Observations,
    PathCheck,
    diagnose,
    exit_code,
    parse_keepalived,
)
from haguard.core.render import render

DIRECTOR = """\
node: {name: lb1, state_dir: /run/haguard}
keepalived: {config: /etc/keepalived/keepalived.conf, hooks_dir: /usr/local/libexec/haguard}
sysctl: {net.ipv4.ip_nonlocal_bind: 1}
instances:
  - name: VI_1
    interface: eth0
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

REALSERVER = "node: {name: rs1}\nrealserver: {mode: dr, vips: [192.0.2.100]}\n"

HOOK = "/usr/local/libexec/haguard/notify"
OWN_MAC = "02:00:00:00:00:01"
PEER_MAC = "02:00:00:00:00:02"
STRANGER_MAC = "02:00:00:00:00:99"


@dataclass(frozen=True)
class Advert:
    """The shape haguard.adapters.wire.listen reports."""

    interface: str = "eth0"
    source: str = "192.0.2.2"
    source_mac: str = PEER_MAC
    vrid: int = 51
    priority: int = 100
    version: int = 2
    advert_int_s: float = 1.0
    addresses: tuple[str, ...] = ()
    outgoing: bool = False
    at: float = 0.0


def config(text: str = DIRECTOR) -> Config:
    return loads(text, "lb1.yaml", "/etc/haguard/lb1.yaml")


def clean(cfg: Config | None = None) -> Observations:
    """What a healthy BACKUP director sees: its peer is MASTER and answers for the VIP."""
    cfg = cfg or config()
    rendered = render(cfg) if cfg.instances else ""
    return Observations(
        rendered=rendered,
        keepalived_test=KeepalivedTest(ok=True, returncode=5),
        conf_path=cfg.keepalived.config, conf_text=rendered,
        paths=(PathCheck(HOOK, True),),
        sysctls={k: v for k, v, _ in doctor.wanted_sysctls(cfg)},
        ip_vs=(True, "loaded") if cfg.ipvs else None,
        probes=(ArpProbe("192.0.2.100", "eth0", (PEER_MAC,)),),
        adverts=(Advert(), Advert(at=1.0)), wire_seconds=3.0,
        own_addresses=frozenset({"192.0.2.1"}), own_macs=frozenset({OWN_MAC}),
    )


def only(findings: list[doctor.Finding], check: str) -> doctor.Finding:
    """The one finding worse than info, which must belong to ``check``."""
    serious = [f for f in findings if f.severity != "info"]
    assert [f.check for f in serious] == [check], serious
    f = serious[0]
    assert f.what and f.why and f.fix  # every finding says what, why and how to fix
    return f


# --------------------------------------------------------------------------- clean

def test_a_clean_director_has_no_findings_and_exits_0() -> None:
    assert diagnose(config(), clean()) == []
    assert exit_code([]) == 0


def test_a_clean_real_server_has_no_findings() -> None:
    cfg = config(REALSERVER)
    vip = ipaddress.ip_address("192.0.2.100")
    obs = dataclasses.replace(clean(cfg), probes=(), adverts=None,
                              local_addresses={"lo": frozenset({(vip, 32)})})
    assert diagnose(cfg, obs) == []


# --------------------------------------------------------------------------- keepalived -t

def test_keepalived_rejecting_the_rendering_is_an_error_with_its_complaint() -> None:
    obs = dataclasses.replace(clean(), keepalived_test=KeepalivedTest(
        ok=False, returncode=5, complaints=("WARNING - interface eth0 doesn't exist",)))
    f = only(diagnose(config(), obs), "keepalived-test")
    assert f.severity == "error" and "interface eth0 doesn't exist" in f.what


def test_keepalived_not_installed_is_only_a_note() -> None:
    findings = diagnose(config(), dataclasses.replace(clean(), keepalived_test=None))
    assert [(f.check, f.severity) for f in findings] == [("keepalived-test", "info")]
    assert exit_code(findings) == 0


def test_a_stale_rendering_on_disk_is_a_warning() -> None:
    stale = render(config()).replace("priority 150", "priority 90")
    f = only(diagnose(config(), dataclasses.replace(clean(), conf_text=stale)), "keepalived-conf")
    assert f.severity == "warning" and "haguard render" in f.fix


# --------------------------------------------------------------------------- script security

def test_a_missing_hook_is_an_error() -> None:
    obs = dataclasses.replace(clean(), paths=(PathCheck(HOOK, False),))
    f = only(diagnose(config(), obs), "script-security")
    assert f.severity == "error" and "hooks install" in f.fix


def test_a_world_writable_hook_dir_is_an_error_with_script_security_on() -> None:
    problem = "/usr/local/libexec/haguard: writable by group or others (mode 777)"
    obs = dataclasses.replace(clean(), paths=(PathCheck(HOOK, True, (problem,)),))
    f = only(diagnose(config(), obs), "script-security")
    assert f.severity == "error" and problem in f.what and "refuses to run it" in f.why


def test_script_security_off_is_a_warning_and_with_a_writable_path_an_error() -> None:
    conf = render(config()).replace("    enable_script_security\n", "")
    obs = dataclasses.replace(clean(), conf_text=conf)
    findings = [f for f in diagnose(config(), obs) if f.check == "script-security"]
    assert [f.severity for f in findings] == ["warning"]
    obs = dataclasses.replace(obs, paths=(PathCheck(HOOK, True, ("/usr: owned by uid 1000, "
                                                                 "not root",)),))
    findings = [f for f in diagnose(config(), obs) if f.check == "script-security"]
    assert [f.severity for f in findings] == ["error", "warning"]
    assert "gets root" in findings[0].why


# --------------------------------------------------------------------------- nopreempt

NOPREEMPT_CONF = """\
global_defs {
    enable_script_security
    script_user root
}
vrrp_script chk_ipvs {   ! the operator's own check
    script "/usr/local/bin/chk_ipvs"
    weight -60
}
vrrp_instance VI_1
{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 150
    nopreempt
    track_script {
        chk_ipvs
    }
    track_interface { eth1 weight 0 }
}
"""


def test_nopreempt_with_a_weighted_track_script_is_an_error() -> None:
    obs = dataclasses.replace(clean(), conf_text=NOPREEMPT_CONF)
    findings = [f for f in diagnose(config(), obs) if f.check == "nopreempt-weight"]
    assert len(findings) == 1 and findings[0].severity == "error"
    assert "track_script chk_ipvs (weight -60)" in findings[0].what
    assert "weight 0" in findings[0].fix


@pytest.mark.parametrize("conf", [
    NOPREEMPT_CONF.replace("weight -60", "weight 0"),             # FAULT on failure: works
    NOPREEMPT_CONF.replace("    nopreempt\n", ""),                # preemption on: works
    NOPREEMPT_CONF.replace("        chk_ipvs\n", "        chk_ipvs weight 0\n"),
])
def test_fault_trackers_or_preemption_are_fine(conf: str) -> None:
    obs = dataclasses.replace(clean(), conf_text=conf)
    assert not [f for f in diagnose(config(), obs) if f.check == "nopreempt-weight"]


def test_a_weighted_track_interface_counts_and_haguards_own_lever_does_not() -> None:
    conf = NOPREEMPT_CONF.replace("eth1 weight 0", "eth1 weight -10").replace("weight -60",
                                                                              "weight 0")
    stmts = parse_keepalived(conf)
    instance = [s for s in stmts if s.keyword == "vrrp_instance"][0]
    assert doctor.weighted_trackers(stmts, instance) == ["track_interface eth1 (weight -10)"]
    lever = conf.replace("track_interface { eth1 weight -10 }",
                         "track_file {\n haguard_priority_VI_1 weight 1\n }")
    stmts = parse_keepalived(lever)
    assert doctor.weighted_trackers(stmts, [s for s in stmts
                                            if s.keyword == "vrrp_instance"][0]) == []


def test_the_rendering_of_a_nopreempt_instance_is_not_flagged() -> None:
    cfg = config(DIRECTOR.replace("advert_int: 1", "advert_int: 1\n    nopreempt: true"))
    assert diagnose(cfg, clean(cfg)) == []


def test_script_paths_come_from_notify_lines_and_vrrp_scripts() -> None:
    stmts = parse_keepalived(NOPREEMPT_CONF + 'vrrp_instance VI_2 {\n  notify_master '
                             '"/etc/keepalived/up.sh x"\n}\n')
    assert doctor.script_paths(stmts) == ["/usr/local/bin/chk_ipvs", "/etc/keepalived/up.sh"]


# --------------------------------------------------------------------------- networkd

def networkd(*files: NetworkdFile) -> Observations:
    return dataclasses.replace(clean(), networkd=files)


ETH0 = "[Match]\nName=eth0\n\n[Network]\nAddress=192.0.2.1/24\n"


def test_networkd_without_keepconfiguration_on_the_vrrp_interface_is_a_warning() -> None:
    f = only(diagnose(config(), networkd(NetworkdFile("/etc/systemd/network/10-eth0.network",
                                                      ETH0))), "networkd")
    assert f.severity == "warning" and "KeepConfiguration=static" in f.fix
    assert "10-eth0.network" in f.what and f.subject == "eth0"


@pytest.mark.parametrize("keep,flagged", [("static", False), ("yes", False), ("no", True),
                                          ("dhcp", True), ("dynamic-on-stop", True)])
def test_networkd_keepconfiguration_values(keep: str, flagged: bool) -> None:
    nf = NetworkdFile("/etc/systemd/network/10-eth0.network",
                      ETH0 + f"KeepConfiguration={keep}\n")
    assert bool(doctor.check_networkd(config(), networkd(nf))) == flagged


def test_networkd_drop_ins_globs_negation_and_first_match_wins() -> None:
    dropin = (("/etc/systemd/network/10-eth0.network.d/keep.conf",
               "[Network]\nKeepConfiguration=static\n"),)
    assert not doctor.check_networkd(config(), networkd(NetworkdFile("/x/10-eth0.network", ETH0,
                                                                     dropin)))
    assert doctor.check_networkd(config(), networkd(NetworkdFile("/x/10-en.network",
                                                                 "[Match]\nName=en* eth*\n")))
    assert not doctor.check_networkd(config(), networkd(NetworkdFile("/x/10-lo.network",
                                                                     "[Match]\nName=!eth0\n")))
    first = NetworkdFile("/x/05-eth0.network", ETH0 + "KeepConfiguration=static\n")
    assert not doctor.check_networkd(config(), networkd(first, NetworkdFile("/x/10-eth0.network",
                                                                            ETH0)))


# --------------------------------------------------------------------------- sysctls

def test_a_sysctl_not_yet_set_is_a_warning_and_a_missing_key_an_error() -> None:
    obs = dataclasses.replace(clean(), sysctls={"net.ipv4.ip_nonlocal_bind": "0"})
    f = only(diagnose(config(), obs), "sysctl")
    assert f.severity == "warning" and "sysctl -w net.ipv4.ip_nonlocal_bind=1" in f.fix
    obs = dataclasses.replace(clean(), sysctls={"net.ipv4.ip_nonlocal_bind": None})
    assert only(diagnose(config(), obs), "sysctl").severity == "error"


def test_ipvs_sysctls_missing_on_a_kernel_without_ip_vs_point_at_the_module() -> None:
    cfg = config(DIRECTOR + IPVS)
    obs = dataclasses.replace(clean(cfg), sysctls={**clean(cfg).sysctls,
                                                   "net.ipv4.vs.expire_nodest_conn": None})
    f = only(diagnose(cfg, obs), "sysctl")
    assert "modprobe ip_vs" in f.fix


# --------------------------------------------------------------------------- ip_vs

def test_ip_vs_not_loadable_is_an_error_only_with_an_ipvs_section() -> None:
    cfg = config(DIRECTOR + IPVS)
    obs = dataclasses.replace(clean(cfg), ip_vs=(False, "Module ip_vs not found"))
    f = only(diagnose(cfg, obs), "ip_vs")
    assert f.severity == "error" and "Module ip_vs not found" in f.what
    assert diagnose(cfg, clean(cfg)) == []
    assert diagnose(config(), dataclasses.replace(clean(), ip_vs=(False, "x"))) == []


# --------------------------------------------------------------------------- real server

def test_a_real_server_vip_with_a_slash_24_on_lo_is_an_error() -> None:
    cfg = config(REALSERVER)
    vip = ipaddress.ip_address("192.0.2.100")
    obs = dataclasses.replace(clean(cfg), probes=(), adverts=None,
                              local_addresses={"lo": frozenset({(vip, 24)})})
    f = only(diagnose(cfg, obs), "realserver")
    assert f.severity == "error" and "192.0.2.100/24 on lo" in f.what
    assert "192.0.2.0/24" in f.why and "ip addr del 192.0.2.100/24 dev lo" in f.fix


def test_a_real_server_without_its_vip_or_arp_sysctls() -> None:
    cfg = config(REALSERVER)
    obs = dataclasses.replace(clean(cfg), probes=(), adverts=None, local_addresses={})
    assert only(diagnose(cfg, obs), "realserver").severity == "warning"
    vip = ipaddress.ip_address("192.0.2.100")
    obs = dataclasses.replace(obs, local_addresses={"lo": frozenset({(vip, 32)})},
                              sysctls={"net.ipv4.conf.all.arp_ignore": "0",
                                       "net.ipv4.conf.all.arp_announce": "2"})
    f = only(diagnose(cfg, obs), "sysctl")
    assert f.severity == "error" and "steals" in f.why


# --------------------------------------------------------------------------- duplicate address

def test_a_vip_answered_by_a_host_that_is_not_the_master_is_an_error() -> None:
    obs = dataclasses.replace(clean(), probes=(ArpProbe("192.0.2.100", "eth0",
                                                        (STRANGER_MAC,)),))
    f = only(diagnose(config(), obs), "duplicate-address")
    assert f.severity == "error" and STRANGER_MAC in f.what and f.subject == "192.0.2.100"


def test_a_vip_answered_by_two_hosts_is_an_error_even_if_one_is_the_master() -> None:
    obs = dataclasses.replace(clean(), probes=(ArpProbe("192.0.2.100", "eth0",
                                                        (PEER_MAC, STRANGER_MAC)),))
    f = only(diagnose(config(), obs), "duplicate-address")
    assert "2 hosts" in f.what


def test_an_answer_while_the_wire_was_not_watched_is_a_warning() -> None:
    obs = dataclasses.replace(clean(), adverts=None, wire_skipped="x",
                              probes=(ArpProbe("192.0.2.100", "eth0", (STRANGER_MAC,)),))
    assert only(diagnose(config(), obs), "duplicate-address").severity == "warning"


def test_a_vip_on_another_device_answered_by_the_masters_other_mac_is_no_finding() -> None:
    # The MASTER advertises from its eth0 and answers ARP for the eth1 VIP from eth1.
    cfg = config(DIRECTOR.replace("vips: [", "vips: [{address: 198.51.100.10/24, "
                                             "interface: eth1}, "))
    peer_eth1 = "02:00:00:00:01:02"
    obs = dataclasses.replace(clean(cfg), probes=(
        ArpProbe("192.0.2.100", "eth0", (PEER_MAC,)),
        ArpProbe("198.51.100.10", "eth1", (peer_eth1,))))
    assert [f for f in diagnose(cfg, obs) if f.severity != "info"] == []
    # Two answers are still two owners; and without a MASTER on the wire, a stranger.
    obs2 = dataclasses.replace(obs, probes=(ArpProbe("198.51.100.10", "eth1",
                                                     (peer_eth1, STRANGER_MAC)),))
    assert "2 hosts" in only(diagnose(cfg, obs2), "duplicate-address").what
    obs3 = dataclasses.replace(obs, adverts=(), probes=obs.probes[1:])
    assert [f.check for f in diagnose(cfg, obs3) if f.check == "duplicate-address"] == \
        ["duplicate-address"]


# --------------------------------------------------------------------------- VRID collision

@pytest.mark.parametrize("advert,reason", [
    (Advert(source="192.0.2.50", source_mac=STRANGER_MAC, addresses=("192.0.2.200",)),
     "carries addresses 192.0.2.200"),
    (Advert(source="192.0.2.50", source_mac=STRANGER_MAC, advert_int_s=3.0),
     "advert interval 3 s, ours 1 s"),
    (Advert(source="192.0.2.50", source_mac=STRANGER_MAC, version=3), "VRRP version 3"),
])
def test_a_foreign_advert_for_our_vrid_is_a_collision(advert: Advert, reason: str) -> None:
    obs = dataclasses.replace(clean(), adverts=(Advert(), advert))
    f = only(diagnose(config(), obs), "vrid-collision")
    assert f.severity == "error" and reason in f.what and "192.0.2.50" in f.what
    assert f.subject == "VRID 51"


def test_with_unicast_peers_an_advert_from_elsewhere_is_a_collision() -> None:
    cfg = config(DIRECTOR + "    unicast_peers: [192.0.2.2]\n")
    assert diagnose(cfg, clean(cfg)) == []
    obs = dataclasses.replace(clean(cfg), adverts=(Advert(), Advert(source="192.0.2.3",
                                                          source_mac=STRANGER_MAC),))
    assert "not one of our unicast_peers" in only(diagnose(cfg, obs), "vrid-collision").what


def test_our_own_adverts_and_other_vrids_are_not_collisions() -> None:
    obs = dataclasses.replace(clean(), adverts=(
        Advert(source="192.0.2.1", source_mac=OWN_MAC, outgoing=True, advert_int_s=9.0),
        Advert(vrid=52, source="192.0.2.50", source_mac=STRANGER_MAC, addresses=("x",)),
        Advert()))
    assert diagnose(config(), obs) == []


def test_no_advert_at_all_is_a_note_not_a_failure() -> None:
    findings = diagnose(config(), dataclasses.replace(clean(), adverts=(), probes=()))
    assert [(f.check, f.severity) for f in findings] == [("vrid-collision", "info")]
    assert "no VRRP advert for VRID 51" in findings[0].what


# --------------------------------------------------------------------------- exit and output

def test_exit_code_follows_the_worst_severity() -> None:
    def f(sev: doctor.Severity) -> doctor.Finding:
        return doctor.Finding("sysctl", sev, "w", "y", "f")
    assert exit_code([f("info")]) == 0
    assert exit_code([f("info"), f("warning")]) == 3
    assert exit_code([f("warning"), f("error")]) == 1


def test_report_and_text_carry_what_why_fix_and_the_clean_checks() -> None:
    obs = dataclasses.replace(clean(), sysctls={"net.ipv4.ip_nonlocal_bind": "0"})
    data = report(config(), diagnose(config(), obs))
    assert json.loads(json.dumps(data)) == data
    assert data["exit_code"] == 3 and data["summary"] == {"error": 0, "warning": 1, "info": 0}
    assert data["findings"][0]["check"] == "sysctl"
    assert {"check": "ip_vs", "about": "the ip_vs module is loaded or loadable",
            "result": "ok"} not in data["checks"]  # no ipvs section: not applicable
    text = format_text(data)
    assert "WARNING sysctl: net.ipv4.ip_nonlocal_bind is 0, the config needs 1" in text
    assert "        why: " in text and "        fix: " in text
    assert "ok      vrid-collision:" in text
    assert text.endswith("warnings found (exit 3)")


@pytest.mark.parametrize("mode,found", [("control-group", True), ("mixed", True),
                                         ("process", False), ("none", False), (None, False)])
def test_keepalived_killed_with_its_cgroup_is_an_error(mode: str | None, found: bool) -> None:
    findings = diagnose(config(), dataclasses.replace(clean(), killmode=mode))
    assert [f.check for f in findings] == (["keepalived-killmode"] if found else [])
    if found:
        assert findings[0].severity == "error" and "hooks install" in findings[0].fix


def test_an_unsafe_or_missing_agent_command_is_an_error_saying_what_the_agent_does() -> None:
    problem = "/tmp: writable by group or others (mode 1777)"
    obs = dataclasses.replace(clean(), paths=(
        PathCheck(HOOK, True),
        PathCheck("/tmp/check", True, (problem,),
                  "ipvs: tcp 192.0.2.100:80 192.0.2.21:80: script check")))
    f = only(diagnose(config(), obs), "script-security")
    assert f.what == f"tcp 192.0.2.100:80 192.0.2.21:80: script check: /tmp/check is not " \
                     f"safe: {problem}"
    assert "the agent refuses to run it" in f.why
    obs = dataclasses.replace(clean(), paths=(
        PathCheck(HOOK, True), PathCheck("/usr/local/bin/q", False, (),
                                         "ipvs: tcp 192.0.2.100:80: quorum down")))
    f = only(diagnose(config(), obs), "script-security")
    assert f.what == "tcp 192.0.2.100:80: quorum down: /usr/local/bin/q does not exist"
