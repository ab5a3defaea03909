"""keepalived's VRRP vocabulary in haguard's YAML: trackers, scripts, sync groups,
unicast source, preemption delay, the operator's notify commands; each bad key refused
with its file, line and path."""

from __future__ import annotations

import pytest

from haguard.core.config import Config, loads
from haguard.core.vrrpconfig import Tracked
from haguard.errors import ConfigError

BASE = """\
node: {name: lb1}
scripts:
  - {name: chk_app, command: [/usr/local/bin/chk-app, --port, "8080"], weight: -10}
instances:
  - name: VI_A
    interface: eth0
    virtual_router_id: 51
    priority: 150
    vips: [192.0.2.100/32]
  - name: VI_B
    interface: eth1
    virtual_router_id: 52
    priority: 150
    vips: [198.51.100.1/24]
"""


def load(extra_a: str = "", top: str = "") -> Config:
    text = BASE.replace("    vips: [192.0.2.100/32]\n", "    vips: [192.0.2.100/32]\n" + extra_a)
    return loads(text + top, filename="lb1.yaml")


def problems(extra_a: str = "", top: str = "") -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(extra_a, top)
    return info.value.problems


def test_the_whole_vocabulary_loads() -> None:
    config = load("""\
    state: BACKUP
    preempt_delay_s: 30
    unicast_peers: [192.0.2.12]
    unicast_src_ip: 192.0.2.11
    dont_track_primary: true
    track:
      scripts: [{name: chk_app}, ]
      interfaces: [{name: eth1, weight: -20}]
      processes: [{name: haproxy, weight: 0}]
    notify:
      master: [[/usr/sbin/conntrackd, -c]]
      stop: [[/usr/local/bin/page, "{instance} stopped"]]
""", "sync_groups:\n  - {name: NAT, instances: [VI_A, VI_B]}\n")
    a = config.instances[0]
    assert (a.preempt_delay_s, str(a.unicast_src_ip), a.dont_track_primary) == (
        30.0, "192.0.2.11", True)
    assert a.track.scripts == (Tracked("chk_app"),)
    assert a.track.interfaces == (Tracked("eth1", -20),)
    assert a.track.processes == (Tracked("haproxy", 0),)
    assert a.notify.for_state("MASTER") == (("/usr/sbin/conntrackd", "-c"),)
    assert config.sync_group_of("VI_B") is not None and config.sync_groups[0].name == "NAT"
    assert config.scripts[0].command == ("/usr/local/bin/chk-app", "--port", "8080")


@pytest.mark.parametrize("extra, top, expected", [
    ("    track: {scripts: [{name: chk_db}]}\n", "",
     "lb1.yaml:10: instances[0].track.scripts[0].name: 'chk_db' is not in scripts "
     "(known: chk_app)"),
    ("    track: {interfaces: [{name: eth1, weight: 300}]}\n", "",
     "lb1.yaml:10: instances[0].track.interfaces[0].weight: 300 is out of range (-253-253)"),
    ("    preempt_delay_s: 30\n    nopreempt: true\n", "",
     "lb1.yaml:10: instances[0].preempt_delay_s: has no effect with nopreempt (nothing "
     "preempts)"),
    ("    preempt_delay_s: 30\n    state: MASTER\n", "",
     "lb1.yaml:10: instances[0].preempt_delay_s: needs state: BACKUP (keepalived delays "
     "preemption only from an initial BACKUP)"),
    ("    unicast_src_ip: 192.0.2.11\n", "",
     "lb1.yaml:10: instances[0].unicast_src_ip: applies to unicast adverts: list "
     "unicast_peers (multicast adverts leave from the interface's primary address)"),
    ("    notify: {master: [[conntrackd, -c]]}\n", "",
     "lb1.yaml:10: instances[0].notify.master[0][0]: 'conntrackd' must be an absolute path "
     "(commands run without a shell or a PATH search)"),
    ("    notify: {backup: [[/bin/logger, '{vrid}']]}\n", "",
     "lb1.yaml:10: instances[0].notify.backup[0][1]: {vrid} is not a placeholder haguard "
     "fills in (known: {instance}, {state}, {priority})"),
    ("", "sync_groups:\n  - {name: NAT, instances: [VI_A, VI_C]}\n",
     "lb1.yaml:16: sync_groups[0].instances[1]: 'VI_C' is not an instance of this config "
     "(it has: VI_A, VI_B)"),
    ("", "sync_groups:\n  - {name: NAT, instances: [VI_A]}\n",
     "lb1.yaml:16: sync_groups[0].instances: a sync group needs at least two instances "
     "(one alone syncs with nothing)"),
    ("", "sync_groups:\n  - {name: G1, instances: [VI_A, VI_B]}\n"
         "  - {name: G2, instances: [VI_B, VI_A]}\n",
     "lb1.yaml:17: sync_groups[1].instances[0]: 'VI_B' is already in sync group 'G1' (an "
     "instance syncs with one group)"),
])
def test_a_bad_key_is_refused_with_its_place(extra: str, top: str, expected: str) -> None:
    assert expected in problems(extra, top)


def test_a_vrrp_script_argument_keepalived_would_split_is_refused() -> None:
    text = BASE.replace('command: [/usr/local/bin/chk-app, --port, "8080"]',
                        'command: [/usr/local/bin/chk-app, "two words"]')
    with pytest.raises(ConfigError) as info:
        loads(text, filename="lb1.yaml")
    assert info.value.problems == [
        "lb1.yaml:3: scripts[0].command[1]: 'two words': keepalived splits script lines on "
        "white space and quotes; an argument cannot hold them"]


# ------------------------------------------------------------------ service groups

GROUPED = """\
node: {name: lb1}
instances:
  - {name: V, interface: eth0, virtual_router_id: 5, priority: 100,
     vips: [192.0.2.100/32, 192.0.2.101/32]}
ipvs:
  services:
    - {vips: [192.0.2.100, 192.0.2.101], ports: [80, 8080], scheduler: rr,
       real_servers: [{address: 192.0.2.21, weight: 2}]}
"""


def test_a_service_over_several_vips_and_ports_is_one_per_pair_with_the_same_servers() -> None:
    config = loads(GROUPED, filename="lb1.yaml")
    assert config.ipvs is not None
    assert [(str(s.key), [(str(r), r.weight) for r in s.real_servers])
            for s in config.ipvs.services] == [
        ("tcp 192.0.2.100:80", [("192.0.2.21:80", 2)]),
        ("tcp 192.0.2.100:8080", [("192.0.2.21:8080", 2)]),
        ("tcp 192.0.2.101:80", [("192.0.2.21:80", 2)]),
        ("tcp 192.0.2.101:8080", [("192.0.2.21:8080", 2)])]


@pytest.mark.parametrize("change, expected", [
    (("vips: [192.0.2.100, 192.0.2.101]", "vip: 192.0.2.100, vips: [192.0.2.101]"),
     "lb1.yaml:7: ipvs.services[0].vips: does not go with vip (a service has one vip, or the "
     "list vips)"),
    (("ports: [80, 8080]", "ports: []"), "lb1.yaml:7: ipvs.services[0].ports: must list at "
                                         "least one"),
    (("192.0.2.101]", "192.0.2.102]"), "lb1.yaml:7: ipvs.services[0].vip: 192.0.2.102 is not "
                                       "a VIP of any instance"),
])
def test_a_bad_service_group_is_refused_with_its_place(change: tuple[str, str],
                                                       expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        loads(GROUPED.replace(*change), filename="lb1.yaml")
    assert any(p.startswith(expected) for p in info.value.problems), info.value.problems
