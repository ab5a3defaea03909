"""Tests for haguard.core.ipvsconfig: the ``ipvs`` and ``realserver`` sections.

Every bad section must be rejected with a ``ConfigError`` whose ``problems`` are exactly
the expected ``file:line: path: message`` lines. The director cases are small additions
to ``BASE``, a valid document whose line numbers the expected messages refer to:

    line  1  node:                      line 12  ipvs:
    line  2    name: lb1                line 13    on_backup: keep
    line  3  instances:                 line 14    sync: {interface: eth1, syncid: 7}
    line  4    - name: VI_1             line 15    services:
    line  5      interface: eth0        line 16      - vip: 192.0.2.100
    line  6      virtual_router_id: 51  line 17        port: 80
    line  7      priority: 150          line 18        scheduler: wrr
    line  8      vips:                  line 19        real_servers:
    line  9        - 192.0.2.100/24     line 20          - {address: 192.0.2.11, weight: 2}
    line 10        - 192.0.2.101/24     line 21          - {address: 192.0.2.12}
    line 11        - 2001:db8::100/64

``service(...)`` appends one more service whose first line is line 22. The real server
cases use ``RS_BASE`` (a ``realserver:`` node, its VIP list on lines 5-6).
"""

from __future__ import annotations

import ipaddress

import pytest

from haguard.core.config import loads
from haguard.core.ipvsconfig import (
    IpvsSettings,
    Persistence,
    RealServer,
    RealServerRole,
    ServiceKey,
    SyncSettings,
    VirtualService,
    parse_service_name,
)
from tests.unit.yamlcases import FILENAME, at, edit, problems_of

BASE = """\
node:
  name: lb1
instances:
  - name: VI_1
    interface: eth0
    virtual_router_id: 51
    priority: 150
    vips:
      - 192.0.2.100/24
      - 192.0.2.101/24
      - 2001:db8::100/64
ipvs:
  on_backup: keep
  sync: {interface: eth1, syncid: 7}
  services:
    - vip: 192.0.2.100
      port: 80
      scheduler: wrr
      real_servers:
        - {address: 192.0.2.11, weight: 2}
        - {address: 192.0.2.12}
"""

RS_BASE = """\
node:
  name: rs1
realserver:
  mode: dr
  vips:
    - 192.0.2.100
"""


def base(*changes: tuple[str, str]) -> str:
    return edit(BASE, *changes)


def service(*lines: str) -> str:
    """BASE plus one more service; ``lines[0]`` is line 22, ``lines[1]`` line 23, ..."""
    body = "".join(("    - " if i == 0 else "      ") + line + "\n"
                   for i, line in enumerate(lines))
    return BASE + body


def rs_base(*changes: tuple[str, str]) -> str:
    return edit(RS_BASE, *changes)


S1 = "ipvs.services[1]"
RS0 = "ipvs.services[1].real_servers[0]"


def test_base_documents_are_valid() -> None:
    """Guards the tables below: every case must fail only because of its own edit."""
    config = loads(BASE, filename=FILENAME)
    assert config.ipvs is not None
    assert [str(s.key) for s in config.ipvs.services] == ["tcp 192.0.2.100:80"]
    assert loads(service("vip: 192.0.2.101", "port: 443"), filename=FILENAME).ipvs is not None
    assert loads(RS_BASE, filename=FILENAME).realserver is not None


# --------------------------------------------------------------------------- ipvs: section

IPVS_CASES = [
    # ---- keys
    pytest.param(
        base(("  on_backup: keep\n", "  on_backup: keep\n  on_bakup: remove\n")),
        [at(14, "ipvs.on_bakup: unknown key (did you mean 'on_backup'?)")],
        id="unknown-ipvs-key-did-you-mean",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443", "schedular: rr"),
        [at(24, f"{S1}.schedular: unknown key (did you mean 'scheduler'?)")],
        id="unknown-service-key-did-you-mean",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443", "zzzz: 1"),
        [at(24, f"{S1}.zzzz: unknown key (known keys: vip, port, protocol, fwmark, family, "
                "scheduler, flags, persistence, health, quorum, sorry_server, real_servers, ops, vips, ports)")],
        id="unknown-service-key-lists-known-keys",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443",
                "real_servers: [{address: 192.0.2.11, wieght: 3}]"),
        [at(24, f"{RS0}.wieght: unknown key (did you mean 'weight'?)")],
        id="unknown-real-server-key-did-you-mean",
    ),
    pytest.param(
        base(("  sync: {interface: eth1, syncid: 7}", "  sync: {interface: eth1, sync_id: 7}")),
        [at(14, "ipvs.sync.sync_id: unknown key (did you mean 'syncid'?)")],
        id="unknown-sync-key-did-you-mean",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443",
                "persistence: {timeout_s: 300, net_mask: 255.255.255.0}"),
        [at(24, f"{S1}.persistence.net_mask: unknown key (did you mean 'netmask'?)")],
        id="unknown-persistence-key-did-you-mean",
    ),
    # ---- what identifies a service
    pytest.param(
        service("fwmark: 5", "vip: 192.0.2.101", "port: 443", "protocol: tcp"),
        [at(23, f"{S1}.vip: does not go with fwmark (the mark selects the packets; "
                "drop vip, port and protocol)"),
         at(24, f"{S1}.port: does not go with fwmark (the mark selects the packets; "
                "drop vip, port and protocol)"),
         at(25, f"{S1}.protocol: does not go with fwmark (the mark selects the packets; "
                "drop vip, port and protocol)")],
        id="fwmark-with-vip-port-and-protocol",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443", "family: inet"),
        [at(24, f"{S1}.family: only applies to fwmark services (a VIP has its own)")],
        id="family-on-a-vip-service",
    ),
    pytest.param(
        service("port: 443", "scheduler: rr"),
        [at(22, f"{S1}: missing required key 'vip' (or 'fwmark')")],
        id="missing-vip",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "scheduler: rr"),
        [at(22, f"{S1}: missing required key 'port'")],
        id="missing-port",
    ),
    pytest.param(
        BASE + "    - {}\n",
        [at(22, f"{S1}: is empty; give vip, port and real_servers (or fwmark)")],
        id="empty-service",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443", "protocol: icmp"),
        [at(24, f"{S1}.protocol: 'icmp' is not one of: tcp, udp, sctp")],
        id="bad-protocol",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 0"),
        [at(23, f"{S1}.port: 0 is out of range (1-65535)")],
        id="port-0",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 65536"),
        [at(23, f"{S1}.port: 65536 is out of range (1-65535)")],
        id="port-65536",
    ),
    pytest.param(
        service("vip: 192.0.2.101/32", "port: 443"),
        [at(22, f"{S1}.vip: '192.0.2.101/32' is not an IP address without a prefix")],
        id="vip-with-prefix",
    ),
    pytest.param(
        service("fwmark: 0"),
        [at(22, f"{S1}.fwmark: 0 is out of range (1-4294967295)")],
        id="fwmark-0",
    ),
    pytest.param(
        service("fwmark: 5", "family: inet4"),
        [at(23, f"{S1}.family: 'inet4' is not one of: inet, inet6")],
        id="fwmark-bad-family",
    ),
    # ---- scheduler and flags
    pytest.param(
        service("vip: 192.0.2.101", "port: 443", "scheduler: roundrobin"),
        [at(24, f"{S1}.scheduler: 'roundrobin' is not one of: rr, wrr, lc, wlc, lblc, lblcr, "
                "dh, sh, sed, nq, fo, ovf, mh, twos")],
        id="unknown-scheduler",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443", "scheduler: wrr", "flags: [sh-port]"),
        [at(25, f"{S1}.flags[0]: sh-port is a flag of the sh scheduler, not of wrr")],
        id="flag-of-another-scheduler",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443", "flags: [mh-port]"),
        [at(24, f"{S1}.flags[0]: mh-port is a flag of the mh scheduler, not of wlc")],
        id="flag-of-another-scheduler-than-the-default-wlc",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443", "scheduler: sh", "flags: [sh-port, one-packet]"),
        [at(25, f"{S1}.flags[1]: 'one-packet' is not one of: sh-fallback, sh-port, "
                "mh-fallback, mh-port")],
        id="unknown-flag",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443", "scheduler: sh",
                "flags: [sh-port, sh-fallback, sh-port]"),
        [at(25, f"{S1}.flags[2]: sh-port is listed twice")],
        id="duplicated-flag",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443", "scheduler: sh", "flags: sh-port"),
        [at(25, f"{S1}.flags: must be a list, not a string")],
        id="flags-not-a-list",
    ),
    # ---- persistence
    pytest.param(
        service("vip: 192.0.2.101", "port: 443", "persistence: {timeout_s: 0}"),
        [at(24, f"{S1}.persistence.timeout_s: 0 is out of range (1-2678400)")],
        id="persistence-timeout-0",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443", "persistence: {timeout_s: 2678401}"),
        [at(24, f"{S1}.persistence.timeout_s: 2678401 is out of range (1-2678400)")],
        id="persistence-timeout-above-31-days",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443", "persistence: {netmask: 255.255.255.0}"),
        [at(24, f"{S1}.persistence: missing required key 'timeout_s'")],
        id="persistence-without-timeout",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443",
                "persistence: {timeout_s: 300, netmask: 255.0.255.0}"),
        [at(24, f"{S1}.persistence.netmask: '255.0.255.0' is not an IPv4 netmask "
                "(like 255.255.255.0)")],
        id="ipv4-netmask-non-contiguous",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443", "persistence: {timeout_s: 300, netmask: 24}"),
        [at(24, f"{S1}.persistence.netmask: 24 is not an IPv4 netmask (like 255.255.255.0)")],
        id="ipv4-netmask-prefix-length",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443", "persistence: {timeout_s: 300, netmask: abc}"),
        [at(24, f"{S1}.persistence.netmask: 'abc' is not an IPv4 netmask "
                "(like 255.255.255.0)")],
        id="ipv4-netmask-garbage",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443",
                "persistence: {timeout_s: 300, netmask: '24'}"),
        [at(24, f"{S1}.persistence.netmask: '24' is not an IPv4 netmask "
                "(like 255.255.255.0)")],
        id="ipv4-netmask-prefix-length-as-text",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443",
                "persistence: {timeout_s: 300, netmask: 0.0.0.255}"),
        [at(24, f"{S1}.persistence.netmask: '0.0.0.255' is not an IPv4 netmask "
                "(like 255.255.255.0)")],
        id="ipv4-netmask-wildcard-hostmask",
    ),
    pytest.param(
        service("vip: 2001:db8::100", "port: 443", "persistence: {timeout_s: 300, netmask: 129}"),
        [at(24, f"{S1}.persistence.netmask: 129 is out of range (1-128)")],
        id="ipv6-netmask-129",
    ),
    pytest.param(
        service("vip: 2001:db8::100", "port: 443",
                "persistence: {timeout_s: 300, netmask: 'ffff:ffff::'}"),
        [at(24, f"{S1}.persistence.netmask: must be an integer, not 'ffff:ffff::'")],
        id="ipv6-netmask-not-a-prefix-length",
    ),
    # ---- real servers
    pytest.param(
        service("vip: 192.0.2.101", "port: 443", "real_servers: [{address: 192.0.2.300}]"),
        [at(24, f"{RS0}.address: '192.0.2.300' is not an IP address")],
        id="real-server-bad-address",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443", "real_servers: [{address: 192.0.2.11/32}]"),
        [at(24, f"{RS0}.address: '192.0.2.11/32' is not an IP address without a prefix")],
        id="real-server-address-with-prefix",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443", "real_servers: [{weight: 1}]"),
        [at(24, f"{RS0}: missing required key 'address'")],
        id="real-server-without-address",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443", "real_servers: [{address: '2001:db8::11'}]"),
        [at(24, f"{RS0}.address: 2001:db8::11 is IPv6 but the service is IPv4")],
        id="real-server-family-mismatch",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443",
                "real_servers: [{address: 192.0.2.11, port: 8443}]"),
        [at(24, f"{RS0}.port: 8443 differs from the service port 443; a DR real server "
                "receives the packet unchanged, so it must listen on the service port "
                "(use forwarding: nat to map ports)")],
        id="dr-real-server-port-differs",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443",
                "real_servers: [{address: 192.0.2.11, port: 8443, forwarding: tun}]"),
        [at(24, f"{RS0}.port: 8443 differs from the service port 443; a TUN real server "
                "receives the packet unchanged, so it must listen on the service port "
                "(use forwarding: nat to map ports)")],
        id="tun-real-server-port-differs",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443",
                "real_servers: [{address: 192.0.2.11, forwarding: masq}]"),
        [at(24, f"{RS0}.forwarding: 'masq' is not one of: nat, tun, dr")],
        id="real-server-bad-forwarding",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443", "real_servers: [{address: 192.0.2.11, weight: -1}]"),
        [at(24, f"{RS0}.weight: -1 is out of range (0-65535)")],
        id="weight-minus-1",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443",
                "real_servers: [{address: 192.0.2.11, weight: 65536}]"),
        [at(24, f"{RS0}.weight: 65536 is out of range (0-65535)")],
        id="weight-65536",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443",
                "real_servers: [{address: 192.0.2.11, upper_threshold: 5, lower_threshold: 10}]"),
        [at(24, f"{RS0}.lower_threshold: 10 is above upper_threshold 5")],
        id="lower-threshold-above-upper",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443",
                "real_servers: [{address: 192.0.2.11, tunnel_type: gue, tunnel_port: 6080}]"),
        [at(24, f"{RS0}.tunnel_type: only applies to forwarding: tun")],
        id="tunnel-type-on-a-dr-server",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443",
                "real_servers: [{address: 192.0.2.11, forwarding: nat, tunnel_port: 6080}]"),
        [at(24, f"{RS0}.tunnel_port: only applies to forwarding: tun")],
        id="tunnel-port-on-a-nat-server",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443",
                "real_servers: [{address: 192.0.2.11, forwarding: tun, tunnel_type: gue}]"),
        [at(24, f"{RS0}: tunnel_type: gue needs tunnel_port (the real server's GUE port)")],
        id="gue-without-tunnel-port",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443",
                "real_servers: [{address: 192.0.2.11, forwarding: tun, tunnel_port: 6080}]"),
        [at(24, f"{RS0}.tunnel_port: only applies to tunnel_type: gue")],
        id="tunnel-port-on-ipip",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443",
                "real_servers: [{address: 192.0.2.11, forwarding: tun, tunnel_type: vxlan}]"),
        [at(24, f"{RS0}.tunnel_type: 'vxlan' is not one of: ipip, gue, gre")],
        id="unknown-tunnel-type",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443", "real_servers:",
                "  - {address: 192.0.2.11}",
                "  - {address: 192.0.2.12}",
                "  - {address: 192.0.2.11, weight: 5}"),
        [at(27, f"{S1}.real_servers[2]: 192.0.2.11:443 is already real_servers[0]")],
        id="duplicate-real-server",
    ),
    pytest.param(
        service("vip: 192.0.2.101", "port: 443", "real_servers: {address: 192.0.2.11}"),
        [at(24, f"{S1}.real_servers: must be a list, not a mapping")],
        id="real-servers-not-a-list",
    ),
    # ---- the services list
    pytest.param(
        service("vip: 192.0.2.100", "port: 80", "scheduler: rr"),
        [at(22, f"{S1}: tcp 192.0.2.100:80 is already services[0]")],
        id="duplicate-service",
    ),
    pytest.param(
        service("vip: 192.0.2.200", "port: 80"),
        [at(22, f"{S1}.vip: 192.0.2.200 is not a VIP of any instance; haguard moves a "
                "service's VIP with its instance, so list it under instances[].vips")],
        id="service-vip-not-an-instance-vip",
    ),
    pytest.param(
        base(("  on_backup: keep", "  on_backup: delete")),
        [at(13, "ipvs.on_backup: 'delete' is not one of: keep, remove")],
        id="on-backup-invalid",
    ),
    pytest.param(
        base(("  sync: {interface: eth1, syncid: 7}", "  sync: {syncid: 7}")),
        [at(14, "ipvs.sync: missing required key 'interface'")],
        id="sync-without-interface",
    ),
    pytest.param(
        base(("  sync: {interface: eth1, syncid: 7}", "  sync: {interface: eth1, syncid: 256}")),
        [at(14, "ipvs.sync.syncid: 256 is out of range (0-255)")],
        id="syncid-256",
    ),
    pytest.param(
        base(("  sync: {interface: eth1, syncid: 7}", "  sync: eth1")),
        [at(14, "ipvs.sync: must be a mapping, not a string")],
        id="sync-not-a-mapping",
    ),
    pytest.param(
        base(("  services:\n", "  services: {}\n  old_services:\n")),
        [at(16, "ipvs.old_services: unknown key (did you mean 'services'?)"),
         at(15, "ipvs.services: must be a list, not a mapping")],
        id="services-not-a-list",
    ),
    pytest.param(
        BASE.split("ipvs:\n")[0] + "ipvs:\n",
        [at(12, "ipvs: must be a mapping, not empty")],
        id="ipvs-null",
    ),
]


@pytest.mark.parametrize(("text", "expected"), IPVS_CASES)
def test_bad_ipvs_section_is_reported_with_file_line_and_path(text: str,
                                                              expected: list[str]) -> None:
    assert problems_of(text) == expected


# --------------------------------------------------------------------------- realserver:

REALSERVER_CASES = [
    pytest.param(
        rs_base(("  mode: dr", "  mode: nat")),
        [at(4, "realserver.mode: 'nat' is not one of: dr, tun")],
        id="mode-invalid",
    ),
    pytest.param(
        rs_base(("  vips:\n    - 192.0.2.100\n", "  vips: []\n")),
        [at(5, "realserver.vips: must list at least one VIP")],
        id="vips-empty",
    ),
    pytest.param(
        rs_base(("  vips:\n    - 192.0.2.100\n", "")),
        [at(4, "realserver: missing required key 'vips'")],
        id="vips-missing",
    ),
    pytest.param(
        rs_base(("  vips:", "  vip:")),
        [at(5, "realserver.vip: unknown key (did you mean 'vips'?)"),
         at(4, "realserver: missing required key 'vips'")],
        id="unknown-key-did-you-mean",
    ),
    pytest.param(
        rs_base(("    - 192.0.2.100\n", "    - 192.0.2.100/24\n")),
        [at(6, "realserver.vips[0]: '192.0.2.100/24': a real server holds the VIP as a host "
               "address (/32); a /24 on lo makes it claim the whole subnet and answer for "
               "its neighbours (the seed runbook's lo:1 netmask 255.255.255.0 mistake)")],
        id="ipv4-vip-with-a-subnet-prefix",
    ),
    pytest.param(
        rs_base(("    - 192.0.2.100\n", "    - 2001:db8::1/64\n")),
        [at(6, "realserver.vips[0]: '2001:db8::1/64': a real server holds the VIP as a host "
               "address (/128); a /64 on lo makes it claim the whole subnet and answer for "
               "its neighbours (the seed runbook's lo:1 netmask 255.255.255.0 mistake)")],
        id="ipv6-vip-with-a-subnet-prefix",
    ),
    pytest.param(
        rs_base(("    - 192.0.2.100\n", "    - 192.0.2.300\n")),
        [at(6, "realserver.vips[0]: '192.0.2.300' is not an IP address")],
        id="vip-not-an-address",
    ),
    pytest.param(
        rs_base(("    - 192.0.2.100\n", "    - 192.0.2.100\n    - 192.0.2.100/32\n")),
        [at(7, "realserver.vips[1]: 192.0.2.100 is listed twice")],
        id="duplicate-vip",
    ),
    pytest.param(
        rs_base(("  vips:\n    - 192.0.2.100\n", "  vips: 192.0.2.100\n")),
        [at(5, "realserver.vips: must be a list, not a string")],
        id="vips-not-a-list",
    ),
    pytest.param(
        "node:\n  name: rs1\n",
        [at(1, "(top level): missing required key 'instances' (a director) or 'realserver' "
               "(a real server)")],
        id="only-node",
    ),
]


@pytest.mark.parametrize(("text", "expected"), REALSERVER_CASES)
def test_bad_realserver_section_is_reported_with_file_line_and_path(
        text: str, expected: list[str]) -> None:
    assert problems_of(text) == expected


def test_bad_config_tables_have_distinct_documents() -> None:
    texts = [p.values[0] for p in IPVS_CASES + REALSERVER_CASES]
    assert len(texts) == len(set(texts))
    assert len(texts) >= 35


def test_all_ipvs_problems_are_reported_together_in_document_order() -> None:
    text = base(("  on_backup: keep", "  on_backup: delete"),
                ("syncid: 7", "syncid: 256"),
                ("        - {address: 192.0.2.12}\n",
                 "        - {address: 192.0.2.12, weight: -1}\n"))
    assert problems_of(text) == [
        at(13, "ipvs.on_backup: 'delete' is not one of: keep, remove"),
        at(14, "ipvs.sync.syncid: 256 is out of range (0-255)"),
        at(21, "ipvs.services[0].real_servers[1].weight: -1 is out of range (0-65535)"),
    ]


# --------------------------------------------------------------------------- accepted

def test_nat_real_server_may_listen_on_another_port() -> None:
    config = loads(service("vip: 192.0.2.101", "port: 443",
                           "real_servers: [{address: 192.0.2.11, port: 8443, forwarding: nat}]"),
                   filename=FILENAME)
    assert config.ipvs is not None
    assert config.ipvs.services[1].real_servers == (
        RealServer(address=ipaddress.ip_address("192.0.2.11"), port=8443, forwarding="nat"),)


def test_service_vip_is_matched_to_instance_vips_as_an_address_not_as_text() -> None:
    config = loads(service("vip: '2001:db8:0::100'", "port: 80", "protocol: udp"),
                   filename=FILENAME)
    assert config.ipvs is not None
    assert config.ipvs.services[1].key == ServiceKey(6, "udp", "2001:db8::100", 80)


def test_fwmark_dr_real_server_takes_any_port_and_defaults_to_0() -> None:
    config = loads(service("fwmark: 5", "real_servers:",
                           "  - {address: 192.0.2.11}", "  - {address: 192.0.2.12, port: 80}"),
                   filename=FILENAME)
    assert config.ipvs is not None
    assert [rs.port for rs in config.ipvs.services[1].real_servers] == [0, 80]


def test_ipv4_netmask_is_normalised_to_a_dotted_mask() -> None:
    config = loads(service("vip: 192.0.2.101", "port: 443",
                           "persistence: {timeout_s: 300, netmask: 255.255.255.0}"),
                   filename=FILENAME)
    assert config.ipvs is not None
    assert config.ipvs.services[1].persistence == Persistence(300, "255.255.255.0")


def test_persistence_netmask_defaults_to_a_host_mask_per_family() -> None:
    config = loads(service("vip: 2001:db8::100", "port: 443", "persistence: {timeout_s: 60}")
                   + "    - {vip: 192.0.2.101, port: 443, persistence: {timeout_s: 60}}\n",
                   filename=FILENAME)
    assert config.ipvs is not None
    assert [s.persistence for s in config.ipvs.services[1:]] == [
        Persistence(60, "128"), Persistence(60, "255.255.255.255")]


def test_realserver_vip_with_a_host_prefix_is_accepted_as_the_address() -> None:
    config = loads(rs_base(("    - 192.0.2.100\n",
                            "    - 192.0.2.100/32\n    - 2001:db8::1/128\n")),
                   filename=FILENAME)
    assert config.realserver == RealServerRole(
        mode="dr", vips=(ipaddress.ip_address("192.0.2.100"),
                         ipaddress.ip_address("2001:db8::1")))


def test_file_with_only_node_and_realserver_is_a_real_server_config() -> None:
    config = loads(rs_base(("  mode: dr", "  mode: tun")), filename=FILENAME)
    assert config.instances == ()
    assert config.ipvs is None
    assert config.realserver == RealServerRole(mode="tun",
                                               vips=(ipaddress.ip_address("192.0.2.100"),))
    assert config.realserver.interface == "tunl0"


def test_realserver_mode_defaults_to_dr_on_lo() -> None:
    config = loads(rs_base(("  mode: dr\n", "")), filename=FILENAME)
    assert config.realserver is not None
    assert config.realserver.mode == "dr"
    assert config.realserver.interface == "lo"


def test_empty_ipvs_mapping_takes_the_defaults() -> None:
    config = loads(BASE.split("ipvs:\n")[0] + "ipvs: {}\n", filename=FILENAME)
    assert config.ipvs == IpvsSettings(on_backup="keep", sync=None, services=())


RICH = """\
node:
  name: lb1
instances:
  - name: VI_1
    interface: eth0
    virtual_router_id: 51
    priority: 150
    vips: [192.0.2.100/24, 2001:db8::100/64]
ipvs:
  on_backup: remove
  sync: {interface: eth1}
  services:
    - vip: 192.0.2.100
      port: 80
      scheduler: sh
      flags: [sh-port, sh-fallback]
      persistence: {timeout_s: 300, netmask: 255.255.255.0}
      real_servers:
        - {address: 192.0.2.11, weight: 3, upper_threshold: 100, lower_threshold: 50}
        - {address: 192.0.2.12, weight: 0}
    - vip: 192.0.2.100
      port: 53
      protocol: udp
      scheduler: rr
      real_servers:
        - {address: 10.0.0.11, port: 5353, forwarding: nat}
    - vip: 192.0.2.100
      port: 3868
      protocol: sctp
      real_servers:
        - {address: 192.0.2.21, forwarding: tun, tunnel_type: gue, tunnel_port: 6080}
        - {address: 192.0.2.22, forwarding: tun, tunnel_type: gre}
        - {address: 192.0.2.23, forwarding: tun}
    - fwmark: 10
      scheduler: mh
      flags: [mh-port]
      real_servers: [{address: 192.0.2.31}]
    - fwmark: 10
      family: inet6
      persistence: {timeout_s: 60, netmask: 64}
      real_servers: [{address: '2001:db8::31'}]
    - vip: 2001:db8::100
      port: 443
      real_servers: [{address: '2001:db8::41'}]
"""


def test_rich_ipvs_section_becomes_exact_dataclasses() -> None:
    ip = ipaddress.ip_address
    config = loads(RICH, filename=FILENAME)
    assert config.ipvs == IpvsSettings(
        on_backup="remove",
        sync=SyncSettings(interface="eth1", syncid=0),
        services=(
            VirtualService(
                key=ServiceKey(4, "tcp", "192.0.2.100", 80), scheduler="sh",
                flags=("sh-fallback", "sh-port"),  # kernel bit order, not the YAML's
                persistence=Persistence(timeout_s=300, netmask="255.255.255.0"),
                real_servers=(
                    RealServer(ip("192.0.2.11"), 80, "dr", 3, 100, 50),
                    RealServer(ip("192.0.2.12"), 80, "dr", 0),
                )),
            VirtualService(
                key=ServiceKey(4, "udp", "192.0.2.100", 53), scheduler="rr",
                real_servers=(RealServer(ip("10.0.0.11"), 5353, "nat"),)),
            VirtualService(
                key=ServiceKey(4, "sctp", "192.0.2.100", 3868), scheduler="wlc",
                real_servers=(
                    RealServer(ip("192.0.2.21"), 3868, "tun", tunnel_type="gue",
                               tunnel_port=6080),
                    RealServer(ip("192.0.2.22"), 3868, "tun", tunnel_type="gre"),
                    RealServer(ip("192.0.2.23"), 3868, "tun", tunnel_type="ipip"),
                )),
            VirtualService(
                key=ServiceKey(4, "fwmark", "10", 0), scheduler="mh", flags=("mh-port",),
                real_servers=(RealServer(ip("192.0.2.31"), 0, "dr"),)),
            VirtualService(
                key=ServiceKey(6, "fwmark", "10", 0), scheduler="wlc",
                persistence=Persistence(timeout_s=60, netmask="64"),
                real_servers=(RealServer(ip("2001:db8::31"), 0, "dr"),)),
            VirtualService(
                key=ServiceKey(6, "tcp", "2001:db8::100", 443),
                real_servers=(RealServer(ip("2001:db8::41"), 443, "dr"),)),
        ),
        nat=True)


def test_the_same_mark_in_both_families_is_two_services() -> None:
    config = loads(RICH, filename=FILENAME)
    assert config.ipvs is not None
    assert [str(s.key) for s in config.ipvs.services] == [
        "tcp 192.0.2.100:80", "udp 192.0.2.100:53", "sctp 192.0.2.100:3868", "fwmark 10",
        "fwmark 10 (IPv6)", "tcp [2001:db8::100]:443"]


# --------------------------------------------------------------------------- model

KEY = ServiceKey(4, "tcp", "192.0.2.100", 80)


@pytest.mark.parametrize(
    ("flags", "persistence", "bits"),
    [((), None, 0x00),
     ((), Persistence(300, "255.255.255.255"), 0x01),
     (("sh-fallback",), None, 0x08),
     (("sh-port",), None, 0x10),
     (("sh-fallback", "sh-port"), Persistence(300, "255.255.255.255"), 0x19),
     (("mh-fallback", "mh-port"), None, 0x18)],
    ids=["none", "persistent", "sh-fallback", "sh-port", "all-sh-and-persistent",
         "mh-flags-share-the-sched-bits"])
def test_flag_bits_are_the_kernel_service_flags(flags: tuple[str, ...],
                                                persistence: Persistence | None,
                                                bits: int) -> None:
    assert VirtualService(KEY, "sh", flags, persistence).flag_bits == bits


@pytest.mark.parametrize(
    ("key", "text"),
    [(ServiceKey(4, "tcp", "192.0.2.100", 80), "tcp 192.0.2.100:80"),
     (ServiceKey(4, "udp", "192.0.2.100", 53), "udp 192.0.2.100:53"),
     (ServiceKey(4, "sctp", "192.0.2.100", 3868), "sctp 192.0.2.100:3868"),
     (ServiceKey(6, "tcp", "2001:db8::100", 443), "tcp [2001:db8::100]:443"),
     (ServiceKey(4, "fwmark", "10", 0), "fwmark 10"),
     (ServiceKey(6, "fwmark", "10", 0), "fwmark 10 (IPv6)")],
    ids=["tcp", "udp", "sctp", "ipv6-bracketed", "fwmark", "fwmark-ipv6"])
def test_service_key_reads_like_ipvsadm(key: ServiceKey, text: str) -> None:
    assert str(key) == text


def test_real_server_str_brackets_ipv6() -> None:
    assert str(RealServer(ipaddress.ip_address("192.0.2.11"), 80)) == "192.0.2.11:80"
    assert str(RealServer(ipaddress.ip_address("2001:db8::11"), 80)) == "[2001:db8::11]:80"


# --------------------------------------------------------------------------- sysctls

FAILOVER = (("net.ipv4.vs.expire_nodest_conn", "1"),
            ("net.ipv4.vs.expire_quiescent_template", "1"))
NAT = (("net.ipv4.vs.conntrack", "1"), ("net.ipv4.ip_forward", "1"))


def test_director_sysctls_with_dr_services_are_the_failover_defaults() -> None:
    assert loads(BASE, filename=FILENAME).director_sysctls() == FAILOVER


def test_director_sysctls_add_conntrack_and_forwarding_when_a_nat_server_exists() -> None:
    config = loads(service("vip: 192.0.2.101", "port: 443",
                           "real_servers: [{address: 10.0.0.11, forwarding: nat}]"),
                   filename=FILENAME)
    assert config.director_sysctls() == FAILOVER + NAT


def test_director_sysctls_user_value_overrides_the_default_in_place() -> None:
    text = base(("instances:\n", "sysctl:\n  net.ipv4.vs.expire_nodest_conn: 0\n"
                                 "  net.ipv4.ip_nonlocal_bind: 1\ninstances:\n"))
    assert loads(text, filename=FILENAME).director_sysctls() == (
        ("net.ipv4.vs.expire_nodest_conn", "0"),
        ("net.ipv4.vs.expire_quiescent_template", "1"),
        ("net.ipv4.ip_nonlocal_bind", "1"),
    )


def test_director_sysctls_without_services_are_only_the_user_ones() -> None:
    head = BASE.split("ipvs:\n")[0]
    user = "sysctl:\n  net.ipv4.ip_nonlocal_bind: 1\n"
    assert loads(user + head, filename=FILENAME).director_sysctls() == (
        ("net.ipv4.ip_nonlocal_bind", "1"),)
    assert loads(user + head + "ipvs: {services: []}\n",
                 filename=FILENAME).director_sysctls() == (("net.ipv4.ip_nonlocal_bind", "1"),)


# --------------------------------------------------------------------------- known gaps
# Each test below states the behaviour the contract asks for and fails against the
# current source; see the module report.


def test_problems_inside_a_service_are_reported_even_when_its_vip_is_bad() -> None:
    """Every problem is collected: a bad port must not hide the real servers' problems."""
    text = service("vip: 192.0.2.101", "port: 0",
                   "real_servers: [{address: 192.0.2.11, wieght: 3}]")
    assert problems_of(text) == [
        at(23, f"{S1}.port: 0 is out of range (1-65535)"),
        at(24, f"{RS0}.wieght: unknown key (did you mean 'weight'?)"),
    ]


@pytest.mark.parametrize(
    ("interface", "message"),
    [("eth 1", "'eth 1' is not a valid interface name"),
     ("averyveryverylongname", "'averyveryverylongname' is not a valid interface name "
                               "(1-15 characters)")],
    ids=["with-a-space", "longer-than-ifnamsiz"])
def test_sync_interface_is_checked_like_an_instance_interface(interface: str,
                                                              message: str) -> None:
    text = base(("sync: {interface: eth1, syncid: 7}",
                 f"sync: {{interface: '{interface}', syncid: 7}}"))
    assert problems_of(text) == [at(14, f"ipvs.sync.interface: {message}")]


def test_realserver_vip_with_a_non_numeric_prefix_is_not_called_a_subnet() -> None:
    text = rs_base(("    - 192.0.2.100\n", "    - 192.0.2.100/abc\n"))
    assert problems_of(text) == [
        at(6, "realserver.vips[0]: '192.0.2.100/abc' is not an IP address "
              "(prefix must be a length)")]


def test_real_server_address_must_be_a_unicast_address() -> None:
    text = service("vip: 192.0.2.101", "port: 443", "real_servers:",
                   "  - {address: 0.0.0.0}", "  - {address: 224.0.0.1}")
    assert problems_of(text) == [
        at(25, f"{S1}.real_servers[0].address: '0.0.0.0' cannot be a real server "
               "(multicast or unspecified)"),
        at(26, f"{S1}.real_servers[1].address: '224.0.0.1' cannot be a real server "
               "(multicast or unspecified)"),
    ]


def test_realserver_vip_is_held_to_the_same_rule_as_an_instance_vip() -> None:
    text = rs_base(("    - 192.0.2.100\n", "    - 0.0.0.0\n    - 127.0.0.1/32\n"))
    assert problems_of(text) == [
        at(6, "realserver.vips[0]: '0.0.0.0' cannot be a VIP (multicast, unspecified, "
              "loopback or link-local)"),
        at(7, "realserver.vips[1]: '127.0.0.1' cannot be a VIP (multicast, unspecified, "
              "loopback or link-local)"),
    ]


@pytest.mark.parametrize("key", [
    ServiceKey(4, "tcp", "192.0.2.100", 80), ServiceKey(4, "sctp", "192.0.2.100", 9),
    ServiceKey(6, "udp", "2001:db8::100", 53), ServiceKey(4, "fwmark", "7", 0),
    ServiceKey(6, "fwmark", "4294967295", 0)], ids=str)
def test_a_service_name_as_haguard_prints_it_names_that_service(key: ServiceKey) -> None:
    assert parse_service_name(str(key)) == key


@pytest.mark.parametrize("text", [
    "", "192.0.2.100:80", "tcp 192.0.2.100", "tcp 192.0.2.300:80", "tcp 192.0.2.100:0",
    "tcp 192.0.2.100:65536", "http 192.0.2.100:80", "tcp 2001:db8::100:53",
    "tcp [192.0.2.100]x:80", "fwmark", "fwmark 0", "fwmark 4294967296", "fwmark 7 (IPv4)",
    "fwmark x", "tcp 192.0.2.100:80 extra"])
def test_anything_else_is_not_a_service_name(text: str) -> None:
    assert parse_service_name(text) is None


def test_a_service_name_is_normalised_like_the_config() -> None:
    assert parse_service_name("udp [2001:DB8:0::100]:53") == ServiceKey(6, "udp",
                                                                       "2001:db8::100", 53)
    assert parse_service_name("  fwmark  007 ") == ServiceKey(4, "fwmark", "7", 0)


def test_director_sysctls_count_a_nat_sorry_server_and_stay_whatever_health_takes_out(
        ) -> None:
    import dataclasses

    config = loads("agent: {}\n" + service(
        "vip: 192.0.2.101", "port: 443",
        "sorry_server: {address: 10.0.0.30, port: 443, forwarding: nat}",
        "real_servers: [{address: 192.0.2.21}]"), filename=FILENAME)
    assert config.director_sysctls() == FAILOVER + NAT
    assert config.ipvs is not None
    # the table as health may leave it (the NAT server out) asks the same of MASTER
    emptied = dataclasses.replace(config.ipvs, services=tuple(
        dataclasses.replace(s, real_servers=()) for s in config.ipvs.services))
    assert dataclasses.replace(config, ipvs=emptied).director_sysctls() == FAILOVER + NAT
