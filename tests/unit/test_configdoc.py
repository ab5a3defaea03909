"""haguard.yaml(5)'s model (core/configdoc.py) says exactly the keys the validator takes:
a config that uses every section is loaded while each mapping read is recorded."""

from __future__ import annotations

from typing import Any

import pytest

from haguard.core import checker
from haguard.core.config import loads
from haguard.core.configdoc import SECTIONS, keys_by_path

EVERY_SECTION = """\
node: {name: lb1, state_dir: /run/haguard, log_file: /var/log/haguard.jsonl,
       lever_dir: /var/lib/haguard}
keepalived: {config: /etc/keepalived/keepalived.conf, version: 2,
             hooks_dir: /usr/local/libexec/haguard, pid_file: /run/keepalived.pid,
             vrrp_pid_file: /run/vrrp.pid}
sysctl: {net.ipv4.ip_nonlocal_bind: 1}
scripts:
  - {name: chk, command: [/usr/bin/true], interval_s: 2, timeout_s: 1, rise: 1, fall: 1,
     weight: -20, user: nobody}
sync_groups:
  - {name: PAIR, instances: [VI_1, VI_2]}
instances:
  - name: VI_1
    interface: eth0
    virtual_router_id: 51
    priority: 150
    state: BACKUP
    advert_int: 1
    nopreempt: false
    auth_pass: "1111"
    unicast_peers: [192.0.2.12]
    unicast_src_ip: 192.0.2.11
    preempt_delay_s: 10
    dont_track_primary: false
    vips: [{address: 192.0.2.100/32, label: "eth0:1", interface: eth0}]
    announce: {count: 5, interval_ms: 200, repeat_after_s: 5, refresh_s: 0}
    track: {scripts: [{name: chk, weight: 10}], interfaces: [{name: eth1, weight: 0}],
            processes: [{name: haproxy, weight: 0}]}
    notify: {master: [[/usr/bin/true]], backup: [[/usr/bin/true]], fault: [[/usr/bin/true]],
             stop: [[/usr/bin/true]], timeout_s: 5}
  - {name: VI_2, interface: eth1, virtual_router_id: 52, priority: 150,
     vips: [198.51.100.100]}
ipvs:
  on_backup: keep
  sync: {interface: eth0, syncid: 51}
  timeouts: {tcp_s: 900, tcpfin_s: 120, udp_s: 300}
  services:
    - vip: 192.0.2.100
      port: 443
      protocol: tcp
      scheduler: wlc
      flags: []
      persistence: {timeout_s: 300, netmask: 255.255.255.255}
      health:
        - {check: https, interval_s: 2, timeout_s: 1, retries: 1, retry_interval_s: 1, rise: 1,
           port: 443, on_down: remove, start: up,
           http: {path: /, status: [200], host: www.example.org, body: ok},
           tls: {verify: false, sni: www.example.org},
           notify: {up: [/usr/bin/true], down: [/usr/bin/true]}}
        - {check: script, script: {command: [/usr/bin/true], user: nobody,
                                   dynamic_weight: false}}
      quorum: {weight: 1, hysteresis: 0, up: [/usr/bin/true], down: [/usr/bin/true]}
      sorry_server: {address: 192.0.2.30, port: 443, forwarding: dr, weight: 1}
      real_servers:
        - {address: 192.0.2.21, port: 443, forwarding: dr, weight: 1, upper_threshold: 0,
           lower_threshold: 0, health: [{check: tcp}]}
        - {address: 192.0.2.22, health: {check: tcp}}
    - {vip: 198.51.100.100, port: 53, protocol: udp, ops: true,
       health: {check: dns, dns: {name: example.org, type: A}},
       real_servers: [{address: 198.51.100.21, forwarding: tun, tunnel_type: gue,
                       tunnel_port: 6080}]}
    - {fwmark: 7, family: inet, real_servers: [{address: 192.0.2.21}]}
    - {vips: [192.0.2.100], ports: [8080], real_servers: [{address: 192.0.2.21}]}
realserver: {mode: dr, vips: [192.0.2.100]}
agent: {fifo: /run/haguard/notify.fifo, metrics: {listen: "127.0.0.1:9650"}}
"""


def _read_mappings(monkeypatch: pytest.MonkeyPatch) -> dict[str, frozenset[str]]:
    seen: dict[str, frozenset[str]] = {}
    original = checker.Checker.mapping

    def recording(self: checker.Checker, value: Any, path: tuple[Any, ...], allowed: Any,
                  required: Any = ()) -> dict[str, Any]:
        allowed = tuple(allowed)
        where = ".".join(str(p) for p in path if not isinstance(p, int))
        seen[where] = seen.get(where, frozenset()) | frozenset(allowed)
        return original(self, value, path, allowed, required)

    monkeypatch.setattr(checker.Checker, "mapping", recording)
    loads(EVERY_SECTION, filename="every-section.yaml")
    return seen


def test_every_mapping_the_validator_reads_is_documented_with_exactly_its_keys(
        monkeypatch: pytest.MonkeyPatch) -> None:
    read = _read_mappings(monkeypatch)
    documented = keys_by_path()
    assert {p: sorted(k) for p, k in read.items()} == \
        {p: sorted(k) for p, k in documented.items()}


def test_every_documented_key_has_a_value_and_a_meaning() -> None:
    for section in SECTIONS:
        assert section.text.strip(), section.path
        names = [k.name for k in section.keys]
        assert len(names) == len(set(names)), section.path
        for key in section.keys:
            assert key.value.strip() and key.text.strip().endswith("."), \
                f"{section.path}.{key.name}"
