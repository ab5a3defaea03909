"""Tests for haguard.core.config: the node config contract.

Every bad config must be rejected with a ``ConfigError`` whose ``problems`` are exactly
the expected ``file:line: path: message`` lines: no traceback, no missing problem and
no spurious extra one. The bad configs are small edits of ``BASE``, a valid document
whose line numbers the expected messages refer to:

    line  1  node:                      line 11      priority: 150
    line  2    name: lb1                line 12      state: BACKUP
    line  3  keepalived:                line 13      advert_int: 1
    line  4    version: 2               line 14      auth_pass: "secret"
    line  5  sysctl:                    line 15      unicast_peers: [192.0.2.2]
    line  6    net.ipv4....: 1          line 16      vips:
    line  7  instances:                 line 17        - 192.0.2.100/24
    line  8    - name: VI_1             line 18        - {address: 192.0.2.101/24, ...}
    line  9      interface: eth0        line 19      announce: {count: 5, ...}
    line 10      virtual_router_id: 51

``SECOND`` is a second instance appended at lines 20-24 (vips on line 24).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from haguard.core.config import Announce, Config, Instance, KeepalivedSettings, loads
from haguard.errors import ConfigError
from tests.unit.yamlcases import FILENAME, at, edit, problems_of

LAB_YAML = Path(__file__).resolve().parents[2] / "conf" / "lab.yaml"

BASE = """\
node:
  name: lb1
keepalived:
  version: 2
sysctl:
  net.ipv4.ip_nonlocal_bind: 1
instances:
  - name: VI_1
    interface: eth0
    virtual_router_id: 51
    priority: 150
    state: BACKUP
    advert_int: 1
    auth_pass: "secret"
    unicast_peers: [192.0.2.2]
    vips:
      - 192.0.2.100/24
      - {address: 192.0.2.101/24, label: "eth0:1"}
    announce: {count: 5, interval_ms: 200}
"""

SECOND = """\
  - name: VI_2
    interface: eth1
    virtual_router_id: 52
    priority: 100
    vips: [198.51.100.10/24]
"""

VIPS_BLOCK = """\
    vips:
      - 192.0.2.100/24
      - {address: 192.0.2.101/24, label: "eth0:1"}
"""

BEFORE_INSTANCES = BASE.split("instances:\n")[0]


def base(*changes: tuple[str, str]) -> str:
    return edit(BASE, *changes)


def two(*second_changes: tuple[str, str]) -> str:
    """BASE plus SECOND (lines 20-24) with edits applied to the second instance."""
    return BASE + edit(SECOND, *second_changes)


# VRRPv3 variant: same lines up to 13 (advert_int); auth_pass is gone, so line 14 on
# moves up by one.
BASE_V3 = base(("version: 2", "version: 3"), ('    auth_pass: "secret"\n', ""))


def v3(*changes: tuple[str, str]) -> str:
    return edit(BASE_V3, *changes)


def test_base_document_is_valid() -> None:
    """Guards the table below: every case must fail only because of its own edit."""
    config = loads(BASE, filename=FILENAME)
    assert [inst.name for inst in config.instances] == ["VI_1"]
    assert loads(two(), filename=FILENAME).instance("VI_2") is not None
    assert loads(BASE_V3, filename=FILENAME).keepalived.version == 3


# --------------------------------------------------------------------------- the document

DOCUMENT_CASES = [
    pytest.param(
        base(("    priority: 150\n", "    priority: 150\n   bad: x\n")),
        [at(12, "invalid YAML: while parsing a block collection, expected <block end>, "
               "but found '<block mapping start>'")],
        id="yaml-syntax-bad-indentation-gives-line",
    ),
    pytest.param(
        base(("    priority: 150\n", "\tpriority: 150\n")),
        [at(11, "invalid YAML: while scanning for the next token, found character '\\t' "
               "that cannot start any token")],
        id="yaml-syntax-tab-gives-line",
    ),
    pytest.param(
        base(("  name: lb1\n", "  name: !foo lb1\n")),
        [at(2, "invalid YAML: could not determine a constructor for the tag '!foo'")],
        id="yaml-unknown-tag",
    ),
    pytest.param(
        BASE + "---\nnode: {name: lb2}\n",
        # The parser's "problem" alone reads "but found another document"; the context
        # ("expected a single document in the stream") is what makes it a sentence.
        [at(20, "invalid YAML: expected a single document in the stream, "
                "but found another document")],
        id="yaml-second-document",
    ),
    pytest.param(
        base(("    priority: 150\n", "    priority: 150\n    priority: 100\n")),
        [at(12, "instances[0].priority: duplicate key")],
        id="duplicate-instance-key",
    ),
    pytest.param(
        BASE + "node:\n  name: lb2\n",
        [at(20, "node: duplicate key")],
        id="duplicate-top-level-key",
    ),
    pytest.param(
        base(("    priority: 150\n", "    priority: 150\n    1: x\n")),
        [at(12, "instances[0]: key 1 is not a string")],
        id="non-string-key",
    ),
    pytest.param(
        "",
        [at(1, "the file is empty; it needs 'node' and 'instances' (a director) or 'realserver' (a real server)")],
        id="empty-file",
    ),
    pytest.param(
        "# nothing but a comment\n",
        [at(1, "the file is empty; it needs 'node' and 'instances' (a director) or 'realserver' (a real server)")],
        id="comment-only-file",
    ),
    pytest.param(
        "- node\n- instances\n",
        [at(1, "(top level): must be a mapping, not a list")],
        id="top-level-list",
    ),
    pytest.param(
        "lb1\n",
        [at(1, "(top level): must be a mapping, not a string")],
        id="top-level-scalar",
    ),
    pytest.param(
        "{}\n",
        [at(1, "(top level): missing required key 'node'"),
         at(1, "(top level): missing required key 'instances' (a director) or 'realserver' (a real server)")],
        id="top-level-empty-mapping",
    ),
]


@pytest.mark.parametrize(("text", "expected"), DOCUMENT_CASES)
def test_unusable_document_is_reported_with_file_and_line(text: str,
                                                          expected: list[str]) -> None:
    assert problems_of(text) == expected


# --------------------------------------------------------------------------- keys

KEY_CASES = [
    pytest.param(
        base(("sysctl:", "sysctls:")),
        [at(5, "sysctls: unknown key (did you mean 'sysctl'?)")],
        id="unknown-top-level-key-did-you-mean",
    ),
    pytest.param(
        base(("  version: 2\n", "  version: 2\n  confg: /etc/keepalived/k.conf\n")),
        [at(5, "keepalived.confg: unknown key (did you mean 'config'?)")],
        id="unknown-keepalived-key-did-you-mean",
    ),
    pytest.param(
        base(("    advert_int: 1", "    advert_itn: 1")),
        [at(13, "instances[0].advert_itn: unknown key (did you mean 'advert_int'?)")],
        id="unknown-instance-key-did-you-mean",
    ),
    pytest.param(
        # A misspelt required key is also missing: both are true, the hint comes first.
        base(("    priority: 150", "    priorty: 150")),
        [at(11, "instances[0].priorty: unknown key (did you mean 'priority'?)"),
         at(8, "instances[0]: missing required key 'priority'")],
        id="misspelt-required-instance-key",
    ),
    pytest.param(
        base(("    priority: 150\n", "    priority: 150\n    zzzz: 1\n")),
        [at(12, "instances[0].zzzz: unknown key (known keys: name, interface, "
                "virtual_router_id, priority, state, advert_int, nopreempt, auth_pass, "
                "unicast_peers, vips, announce, unicast_src_ip, preempt_delay_s, track, "
                "dont_track_primary, notify)")],
        id="unknown-key-no-close-match-lists-known-keys",
    ),
    pytest.param(
        base(("interval_ms: 200", "interval: 200")),
        [at(19, "instances[0].announce.interval: unknown key (did you mean 'interval_ms'?)")],
        id="unknown-announce-key-did-you-mean",
    ),
    pytest.param(
        base(("node:\n  name: lb1\n", "")),
        [at(1, "(top level): missing required key 'node'")],
        id="missing-node",
    ),
    pytest.param(
        base(("  name: lb1\n", "  state_dir: /run/haguard\n")),
        [at(2, "node: missing required key 'name'")],
        id="missing-node-name",
    ),
    pytest.param(
        base(("node:\n  name: lb1\n", "node:\n")),
        [at(1, "node: must be a mapping, not empty")],
        id="node-empty",
    ),
    pytest.param(
        BEFORE_INSTANCES,
        [at(1, "(top level): missing required key 'instances' (a director) or 'realserver' (a real server)")],
        id="missing-instances",
    ),
    pytest.param(
        BEFORE_INSTANCES + "instances: []\n",
        [at(7, "instances: must list at least one VRRP instance")],
        id="empty-instances-list",
    ),
    pytest.param(
        BEFORE_INSTANCES + "instances:\n",
        [at(7, "instances: must be a list, not empty")],
        id="instances-null",
    ),
    pytest.param(
        BEFORE_INSTANCES + "instances:\n  - {}\n",
        [at(8, f"instances[0]: missing required key '{key}'")
         for key in ("name", "interface", "virtual_router_id", "priority", "vips")],
        id="empty-instance-lists-every-missing-key",
    ),
    pytest.param(
        base((VIPS_BLOCK, "")),
        [at(8, "instances[0]: missing required key 'vips'")],
        id="missing-vips",
    ),
]


@pytest.mark.parametrize(("text", "expected"), KEY_CASES)
def test_unknown_or_missing_key_is_named_with_a_hint(text: str, expected: list[str]) -> None:
    assert problems_of(text) == expected


# --------------------------------------------------------------------------- types

TYPE_CASES = [
    pytest.param(
        base(("virtual_router_id: 51", "virtual_router_id: '51'")),
        [at(10, "instances[0].virtual_router_id: must be an integer, not '51'")],
        id="string-for-integer",
    ),
    pytest.param(
        base(("priority: 150", "priority: true")),
        [at(11, "instances[0].priority: must be an integer, not True")],
        id="boolean-for-integer",
    ),
    pytest.param(
        base(("advert_int: 1", "advert_int: '1'")),
        [at(13, "instances[0].advert_int: must be an integer, not '1'")],
        id="string-for-advert-int",
    ),
    pytest.param(
        base(("node:\n  name: lb1\n", "node:\n  - name: lb1\n")),
        [at(2, "node: must be a mapping, not a list")],
        id="list-for-node-mapping",
    ),
    pytest.param(
        base(("announce: {count: 5, interval_ms: 200}", "announce: [5, 200]")),
        [at(19, "instances[0].announce: must be a mapping, not a list")],
        id="list-for-announce-mapping",
    ),
    pytest.param(
        BEFORE_INSTANCES + "instances: {VI_1: {}}\n",
        [at(7, "instances: must be a list, not a mapping")],
        id="mapping-for-instances-list",
    ),
    pytest.param(
        base(("  - name: VI_1\n", "  - VI_1\n  - name: VI_1\n")),
        [at(8, "instances[0]: must be a mapping, not a string")],
        id="string-for-instance",
    ),
    pytest.param(
        base(("state: BACKUP", "state: BACKUP\n    nopreempt: 'yes'")),
        [at(13, "instances[0].nopreempt: must be true or false, not 'yes'")],
        id="string-for-boolean",
    ),
    pytest.param(
        base(("interface: eth0", "interface: 0")),
        [at(9, "instances[0].interface: must be a non-empty string, not 0")],
        id="integer-for-interface",
    ),
    pytest.param(
        base(("  name: lb1\n", "  name: 1\n")),
        [at(2, "node.name: must be a non-empty string, not 1")],
        id="integer-for-node-name",
    ),
    pytest.param(
        base((VIPS_BLOCK, "    vips: 192.0.2.100/24\n")),
        [at(16, "instances[0].vips: must be a list, not a string")],
        id="string-for-vips-list",
    ),
    pytest.param(
        base((VIPS_BLOCK, "    vips: {192.0.2.100/24: eth0}\n")),
        [at(16, "instances[0].vips: must be a list, not a mapping")],
        id="mapping-for-vips-list",
    ),
    pytest.param(
        base((VIPS_BLOCK, "    vips:\n")),
        [at(16, "instances[0].vips: must be a list, not empty")],
        id="null-for-vips-list",
    ),
    pytest.param(
        base((VIPS_BLOCK, "    vips: 5\n")),
        [at(16, "instances[0].vips: must be a list, not an integer")],
        id="integer-for-vips-list",
    ),
    pytest.param(
        base(("[192.0.2.2]", "192.0.2.2")),
        [at(15, "instances[0].unicast_peers: must be a list, not a string")],
        id="string-for-unicast-peers-list",
    ),
]


@pytest.mark.parametrize(("text", "expected"), TYPE_CASES)
def test_wrong_type_names_expected_type_and_found_value(text: str,
                                                        expected: list[str]) -> None:
    assert problems_of(text) == expected


# --------------------------------------------------------------------------- VRRP values

VRRP_CASES = [
    pytest.param(
        base(("virtual_router_id: 51", "virtual_router_id: 0")),
        [at(10, "instances[0].virtual_router_id: 0 is out of range (1-255)")],
        id="vrid-0",
    ),
    pytest.param(
        base(("virtual_router_id: 51", "virtual_router_id: 256")),
        [at(10, "instances[0].virtual_router_id: 256 is out of range (1-255)")],
        id="vrid-256",
    ),
    pytest.param(
        base(("priority: 150", "priority: 0")),
        [at(11, "instances[0].priority: 0 is out of range (1-254)")],
        id="priority-0",
    ),
    pytest.param(
        base(("priority: 150", "priority: 255")),
        [at(11, "instances[0].priority: 255 is out of range (1-254)")],
        id="priority-255",
    ),
    pytest.param(
        base(("state: BACKUP", "state: master")),
        [at(12, "instances[0].state: 'master' is not one of: MASTER, BACKUP")],
        id="state-invalid",
    ),
    pytest.param(
        base(("advert_int: 1", "advert_int: 0")),
        [at(13, "instances[0].advert_int: 0 is out of range (1-255)")],
        id="v2-advert-int-0",
    ),
    pytest.param(
        base(("advert_int: 1", "advert_int: 256")),
        [at(13, "instances[0].advert_int: 256 is out of range (1-255)")],
        id="v2-advert-int-256",
    ),
    pytest.param(
        base(("advert_int: 1", "advert_int: 1.5")),
        [at(13, "instances[0].advert_int: 1.5 must be whole seconds with VRRP version 2 "
                "(use keepalived.version: 3 for sub-second adverts)")],
        id="v2-advert-int-fractional",
    ),
    pytest.param(
        v3(("advert_int: 1", "advert_int: 0.001")),
        [at(13, "instances[0].advert_int: 0.001 is out of range (0.01-40.95)")],
        id="v3-advert-int-0.001",
    ),
    pytest.param(
        v3(("advert_int: 1", "advert_int: 41")),
        [at(13, "instances[0].advert_int: 41 is out of range (0.01-40.95)")],
        id="v3-advert-int-41",
    ),
    pytest.param(
        v3(("advert_int: 1", "advert_int: 0.015")),
        [at(13, "instances[0].advert_int: 0.015 must be a multiple of 0.01 s "
                "with VRRP version 3")],
        id="v3-advert-int-0.015",
    ),
    pytest.param(
        base(("version: 2", "version: 4")),
        [at(4, "keepalived.version: 4 is not one of: 2, 3")],
        id="keepalived-version-4",
    ),
    pytest.param(
        base(("  version: 2\n", "  version: 2\n  config: keepalived.conf\n")),
        [at(5, "keepalived.config: 'keepalived.conf' must be an absolute path")],
        id="keepalived-config-relative",
    ),
    pytest.param(
        base(("version: 2", "version: 3")),
        [at(14, "instances[0].auth_pass: authentication does not exist in VRRP version 3; "
                "remove auth_pass")],
        id="v3-auth-pass",
    ),
    pytest.param(
        # Quoting would not help: the right advice is still to remove it.
        base(("version: 2", "version: 3"), ('auth_pass: "secret"', "auth_pass: 1111")),
        [at(14, "instances[0].auth_pass: authentication does not exist in VRRP version 3; "
                "remove auth_pass")],
        id="v3-auth-pass-unquoted-number",
    ),
    pytest.param(
        base(('auth_pass: "secret"', "auth_pass: 1111")),
        [at(14, 'instances[0].auth_pass: 1111 must be quoted ("1111") so YAML keeps it '
                'as text')],
        id="auth-pass-unquoted-number",
    ),
    pytest.param(
        base(('auth_pass: "secret"', "auth_pass: secret123")),
        [at(14, "instances[0].auth_pass: 9 characters: keepalived uses only the first 8 "
                "('secret12'); write those 8 and the pair keeps talking (a peer still "
                "running the old file sends them too)")],
        id="auth-pass-too-long",
    ),
    pytest.param(
        base(('auth_pass: "secret"', "auth_pass: 'a b'")),
        [at(14, "instances[0].auth_pass: must be 1-8 printable characters without spaces")],
        id="auth-pass-with-space",
    ),
    pytest.param(
        base(('auth_pass: "secret"', "auth_pass: ''")),
        [at(14, "instances[0].auth_pass: must be a non-empty string, not ''")],
        id="auth-pass-empty",
    ),
    pytest.param(
        base(("[192.0.2.2]", "[192.0.2.2, 192.0.2.256]")),
        [at(15, "instances[0].unicast_peers[1]: '192.0.2.256' is not an IP address")],
        id="unicast-peer-bad-address",
    ),
    pytest.param(
        base(("[192.0.2.2]", "[192.0.2.2, 5]")),
        [at(15, "instances[0].unicast_peers[1]: 5 is not an IP address")],
        id="unicast-peer-not-a-string",
    ),
    pytest.param(
        base(("[192.0.2.2]", "[192.0.2.2, 192.0.2.2]")),
        [at(15, "instances[0].unicast_peers[1]: 192.0.2.2 is listed twice")],
        id="unicast-peer-duplicate",
    ),
    pytest.param(
        base(("[192.0.2.2]", "['2001:db8::2', '2001:db8:0::2']")),
        [at(15, "instances[0].unicast_peers[1]: 2001:db8:0::2 is listed twice")],
        id="unicast-peer-duplicate-other-spelling",
    ),
    pytest.param(
        base(("state: BACKUP", "state: MASTER\n    nopreempt: true")),
        [at(13, "instances[0].nopreempt: nopreempt needs state: BACKUP (keepalived ignores "
                "nopreempt on an initial MASTER)")],
        id="nopreempt-with-state-master",
    ),
]


@pytest.mark.parametrize(("text", "expected"), VRRP_CASES)
def test_vrrp_value_out_of_contract_names_path_and_allowed_values(
        text: str, expected: list[str]) -> None:
    assert problems_of(text) == expected


# --------------------------------------------------------------------------- VIPs

VIP_CASES = [
    pytest.param(
        base(("- 192.0.2.100/24", "- 10.0.0.300/24")),
        [at(17, "instances[0].vips[0]: '10.0.0.300/24' is not an IP network")],
        id="vip-bad-address",
    ),
    pytest.param(
        base(("- 192.0.2.100/24", "- 192.0.2.100/abc")),
        [at(17, "instances[0].vips[0]: '192.0.2.100/abc' is not an IP network")],
        id="vip-prefix-not-a-number",
    ),
    pytest.param(
        base(("- 192.0.2.100/24", "- 192.0.2.100/255.255.255.0")),
        [at(17, "instances[0].vips[0]: '192.0.2.100/255.255.255.0' is not an IP network "
                "(prefix must be a length)")],
        id="vip-prefix-netmask",
    ),
    pytest.param(
        base(("- 192.0.2.100/24", "- 192.0.2.100/33")),
        [at(17, "instances[0].vips[0]: '192.0.2.100/33' is not an IP network")],
        id="vip-prefix-33",
    ),
    pytest.param(
        base(("- 192.0.2.100/24", "- 2001:db8::1/129")),
        [at(17, "instances[0].vips[0]: '2001:db8::1/129' is not an IP network")],
        id="vip-prefix-129",
    ),
    pytest.param(
        base(("- 192.0.2.100/24", "- 5")),
        [at(17, "instances[0].vips[0]: 5 is not an IP network")],
        id="vip-not-a-string",
    ),
    pytest.param(
        base(("- 192.0.2.100/24", "-")),
        [at(17, "instances[0].vips[0]: empty is not an IP network")],
        id="vip-empty-item",
    ),
    pytest.param(
        base((VIPS_BLOCK, "    vips: []\n")),
        [at(16, "instances[0].vips: must list at least one VIP")],
        id="vips-empty-list",
    ),
    pytest.param(
        base(("- 192.0.2.100/24", "- 224.0.0.18/32")),
        [at(17, "instances[0].vips[0]: '224.0.0.18/32' cannot be a VIP (multicast, "
                "unspecified, loopback or link-local)")],
        id="vip-multicast",
    ),
    pytest.param(
        base(("- 192.0.2.100/24", "- 127.0.0.2/8")),
        [at(17, "instances[0].vips[0]: '127.0.0.2/8' cannot be a VIP (multicast, "
                "unspecified, loopback or link-local)")],
        id="vip-loopback",
    ),
    pytest.param(
        base(("- 192.0.2.100/24", "- fe80::1/64")),
        [at(17, "instances[0].vips[0]: 'fe80::1/64' cannot be a VIP (multicast, "
                "unspecified, loopback or link-local)")],
        id="vip-link-local-ipv6",
    ),
    pytest.param(
        base(("- 192.0.2.100/24", "- 0.0.0.0/0")),
        [at(17, "instances[0].vips[0]: '0.0.0.0/0' cannot be a VIP (multicast, "
                "unspecified, loopback or link-local)")],
        id="vip-unspecified",
    ),
    pytest.param(
        base(("- 192.0.2.100/24", "- 192.0.2.0/24")),
        [at(17, "instances[0].vips[0]: '192.0.2.0/24' is the network or broadcast address "
                "of its prefix")],
        id="vip-network-address",
    ),
    pytest.param(
        base(("- 192.0.2.100/24", "- 192.0.2.255/24")),
        [at(17, "instances[0].vips[0]: '192.0.2.255/24' is the network or broadcast "
                "address of its prefix")],
        id="vip-broadcast-address",
    ),
    pytest.param(
        # The scope would reach netlink and keepalived as part of the address.
        base(("- 192.0.2.100/24", "- 2001:db8::1%eth0/64")),
        [at(17, "instances[0].vips[0]: '2001:db8::1%eth0/64' must not carry a %scope "
                "(its device is its instance's interface, or vips[].interface)")],
        id="vip-ipv6-with-scope-id",
    ),
    pytest.param(
        base(('address: 192.0.2.101/24, label: "eth0:1"', 'label: "eth0:1"')),
        [at(18, "instances[0].vips[1]: missing required key 'address'")],
        id="vip-mapping-missing-address",
    ),
    pytest.param(
        base(('label: "eth0:1"', 'lable: "eth0:1"')),
        [at(18, "instances[0].vips[1].lable: unknown key (did you mean 'label'?)")],
        id="vip-mapping-unknown-key-did-you-mean",
    ),
    pytest.param(
        base(('label: "eth0:1"', 'label: "eth0:1", scope: host')),
        [at(18, "instances[0].vips[1].scope: unknown key (known keys: address, label, "
                "interface)")],
        id="vip-mapping-unknown-key",
    ),
    pytest.param(
        base(('label: "eth0:1"', 'interface: "eth 1"')),
        [at(18, "instances[0].vips[1].interface: 'eth 1' is not a valid interface name")],
        id="vip-interface-not-a-name",
    ),
    pytest.param(
        # A label names the device the VIP is on: vips[].interface when given.
        base(('label: "eth0:1"', 'interface: eth1, label: "eth0:1"')),
        [at(18, "instances[0].vips[1].label: 'eth0:1' must start with the interface name "
                "'eth1:' (like eth1:0)")],
        id="vip-label-of-another-device",
    ),
    pytest.param(
        base(("address: 192.0.2.101/24", "address: {ip: 192.0.2.101}")),
        [at(18, "instances[0].vips[1].address: a mapping is not an IP network")],
        id="vip-mapping-address-not-a-string",
    ),
    pytest.param(
        base(('label: "eth0:1"', 'label: "eth0:0123456789ab"')),
        [at(18, "instances[0].vips[1].label: 'eth0:0123456789ab' is 17 characters; "
                "the kernel allows 15")],
        id="label-longer-than-15",
    ),
    pytest.param(
        base(('label: "eth0:1"', 'label: "eth1:1"')),
        [at(18, "instances[0].vips[1].label: 'eth1:1' must start with the interface name "
                "'eth0:' (like eth0:0)")],
        id="label-other-interface",
    ),
    pytest.param(
        base(('label: "eth0:1"', 'label: "eth0"')),
        [at(18, "instances[0].vips[1].label: 'eth0' must start with the interface name "
                "'eth0:' (like eth0:0)")],
        id="label-without-colon",
    ),
    pytest.param(
        base(('label: "eth0:1"', "label: 1")),
        [at(18, "instances[0].vips[1].label: must be a non-empty string, not 1")],
        id="label-not-a-string",
    ),
]


@pytest.mark.parametrize(("text", "expected"), VIP_CASES)
def test_bad_vip_names_its_list_position_and_the_reason(text: str,
                                                        expected: list[str]) -> None:
    assert problems_of(text) == expected


# --------------------------------------------------------------------------- interface

INTERFACE_CASES = [
    pytest.param(
        # The label must go too: it would otherwise also fail the interface prefix check.
        base(("interface: eth0", "interface: eth0123456789abcd"), ('label: "eth0:1"', "")),
        [at(9, "instances[0].interface: 'eth0123456789abcd' is not a valid interface name "
               "(1-15 characters)")],
        id="interface-name-too-long",
    ),
    pytest.param(
        base(("interface: eth0", "interface: eth/0")),
        [at(9, "instances[0].interface: 'eth/0' is not a valid interface name")],
        id="interface-name-with-slash",
    ),
    pytest.param(
        base(("interface: eth0", "interface: 'eth0:1'")),
        [at(9, "instances[0].interface: 'eth0:1' is not a valid interface name")],
        id="interface-name-alias-with-colon",
    ),
    pytest.param(
        base(("interface: eth0", "interface: '.'")),
        [at(9, "instances[0].interface: '.' is not a valid interface name (1-15 characters)")],
        id="interface-name-dot",
    ),
]


@pytest.mark.parametrize(("text", "expected"), INTERFACE_CASES)
def test_bad_interface_name_is_rejected(text: str, expected: list[str]) -> None:
    assert problems_of(text) == expected


# --------------------------------------------------------------------------- sysctl

SYSCTL_CASES = [
    pytest.param(
        base(("net.ipv4.ip_nonlocal_bind: 1", "ip_forward: 1")),
        [at(6, "sysctl.ip_forward: 'ip_forward' is not a sysctl name "
               "(like net.ipv4.ip_forward)")],
        id="sysctl-key-without-dots",
    ),
    pytest.param(
        base(("net.ipv4.ip_nonlocal_bind: 1", "net/ipv4/ip_forward: 1")),
        [at(6, "sysctl.net/ipv4/ip_forward: 'net/ipv4/ip_forward' is not a sysctl name "
               "(like net.ipv4.ip_forward)")],
        id="sysctl-key-slash-form",
    ),
    pytest.param(
        base(("net.ipv4.ip_nonlocal_bind: 1", "net.ipv4.ip_nonlocal_bind: [1]")),
        [at(6, "sysctl.net.ipv4.ip_nonlocal_bind: value must be an integer or a string, "
               "not a list")],
        id="sysctl-value-list",
    ),
    pytest.param(
        base(("net.ipv4.ip_nonlocal_bind: 1", "net.ipv4.ip_nonlocal_bind: true")),
        [at(6, "sysctl.net.ipv4.ip_nonlocal_bind: value must be an integer or a string, "
               "not True")],
        id="sysctl-value-boolean",
    ),
    pytest.param(
        base(("net.ipv4.ip_nonlocal_bind: 1", "net.ipv4.ip_nonlocal_bind:")),
        [at(6, "sysctl.net.ipv4.ip_nonlocal_bind: value must be an integer or a string, "
               "not empty")],
        id="sysctl-value-missing",
    ),
    pytest.param(
        base(("  net.ipv4.ip_nonlocal_bind: 1", "  - net.ipv4.ip_nonlocal_bind=1")),
        [at(6, "sysctl: must be a mapping of sysctl name to value, not a list")],
        id="sysctl-list-not-mapping",
    ),
    pytest.param(
        base(("sysctl:\n  net.ipv4.ip_nonlocal_bind: 1", "sysctl: net.ipv4.ip_forward=1")),
        [at(5, "sysctl: must be a mapping of sysctl name to value, not a string")],
        id="sysctl-string-not-mapping",
    ),
]


@pytest.mark.parametrize(("text", "expected"), SYSCTL_CASES)
def test_bad_sysctl_entry_is_rejected(text: str, expected: list[str]) -> None:
    assert problems_of(text) == expected


# --------------------------------------------------------------------------- announce

ANNOUNCE_CASES = [
    pytest.param(
        base(("count: 5", "count: 101")),
        [at(19, "instances[0].announce.count: 101 is out of range (0-100)")],
        id="announce-count-101",
    ),
    pytest.param(
        base(("interval_ms: 200", "interval_ms: -1")),
        [at(19, "instances[0].announce.interval_ms: -1 is out of range (0-10000)")],
        id="announce-interval-negative",
    ),
    pytest.param(
        base(("interval_ms: 200", "repeat_after_s: -1")),
        [at(19, "instances[0].announce.repeat_after_s: -1 is out of range (0-3600)")],
        id="announce-repeat-negative",
    ),
    pytest.param(
        base(("interval_ms: 200", "interval_ms: 200, refresh_s: 0.5")),
        [at(19, "instances[0].announce.refresh_s: 0.5 is too often; use 0 (off) "
                "or at least 1")],
        id="announce-refresh-0.5",
    ),
]


@pytest.mark.parametrize(("text", "expected"), ANNOUNCE_CASES)
def test_announce_value_out_of_range_is_rejected(text: str, expected: list[str]) -> None:
    assert problems_of(text) == expected


# --------------------------------------------------------------------------- names, paths

NODE_CASES = [
    pytest.param(
        base(("  name: lb1\n", "  name: lb1\n  state_dir: run/haguard\n")),
        [at(3, "node.state_dir: 'run/haguard' must be an absolute path")],
        id="state-dir-relative",
    ),
    pytest.param(
        base(("  name: lb1\n", "  name: lb1\n  log_file: haguard.log\n")),
        [at(3, "node.log_file: 'haguard.log' must be an absolute path")],
        id="log-file-relative",
    ),
    pytest.param(
        base(("  name: lb1\n", "  name: lb 1\n")),
        [at(2, "node.name: 'lb 1' is not a valid node name (letters, digits, _ . -)")],
        id="node-name-with-space",
    ),
    pytest.param(
        base(("  name: lb1\n", "  name: lb/1\n")),
        [at(2, "node.name: 'lb/1' is not a valid node name (letters, digits, _ . -)")],
        id="node-name-with-slash",
    ),
    pytest.param(
        base(("  name: lb1\n", "  name: -lb1\n")),
        [at(2, "node.name: '-lb1' is not a valid node name (letters, digits, _ . -)")],
        id="node-name-leading-dash",
    ),
    pytest.param(
        base(("  - name: VI_1", "  - name: 'VI 1'")),
        [at(8, "instances[0].name: 'VI 1' is not a valid instance name "
               "(letters, digits, _ . -)")],
        id="instance-name-with-space",
    ),
]


@pytest.mark.parametrize(("text", "expected"), NODE_CASES)
def test_bad_name_or_path_is_rejected(text: str, expected: list[str]) -> None:
    assert problems_of(text) == expected


# --------------------------------------------------------------------------- across entries

CROSS_CASES = [
    pytest.param(
        base(("- 192.0.2.100/24", "- 192.0.2.101/32")),
        [at(18, "instances[0].vips[1]: 192.0.2.101 is already listed at "
                "instances[0].vips[0]")],
        id="duplicate-vip-within-instance-any-prefix",
    ),
    pytest.param(
        base((VIPS_BLOCK, "    vips:\n      - 2001:db8::1/64\n      - 2001:db8:0::1/64\n")),
        [at(18, "instances[0].vips[1]: 2001:db8::1 is already listed at "
                "instances[0].vips[0]")],
        id="duplicate-ipv6-vip-other-spelling",
    ),
    pytest.param(
        two(("198.51.100.10/24", "192.0.2.101/32")),
        [at(24, "instances[1].vips[0]: 192.0.2.101 is already listed at "
                "instances[0].vips[1]")],
        id="duplicate-vip-across-instances",
    ),
    pytest.param(
        # vips[0] is rejected; the duplicate is vips[2] of vips[1] (lines 18 and 19).
        base((VIPS_BLOCK,
              "    vips:\n      - 224.0.0.18/32\n      - 192.0.2.101/24\n"
              "      - 192.0.2.101/24\n")),
        [at(17, "instances[0].vips[0]: '224.0.0.18/32' cannot be a VIP (multicast, "
                "unspecified, loopback or link-local)"),
         at(19, "instances[0].vips[2]: 192.0.2.101 is already listed at "
                "instances[0].vips[1]")],
        id="duplicate-vip-after-rejected-vip-keeps-positions",
    ),
    pytest.param(
        base((VIPS_BLOCK,
              "    vips:\n      - 192.0.2.0/24\n      - 192.0.2.101/24\n"
              "      - 192.0.2.102/24\n"))
        + edit(SECOND, ("198.51.100.10/24", "192.0.2.102/24")),
        [at(17, "instances[0].vips[0]: '192.0.2.0/24' is the network or broadcast "
                "address of its prefix"),
         at(25, "instances[1].vips[0]: 192.0.2.102 is already listed at "
                "instances[0].vips[2]")],
        id="duplicate-vip-across-instances-after-rejected-vip-keeps-positions",
    ),
    pytest.param(
        two(("VI_2", "VI_1")),
        [at(20, "instances[1].name: 'VI_1' is already the name of instances[0]")],
        id="duplicate-instance-name",
    ),
    pytest.param(
        two(("eth1", "eth0"), ("virtual_router_id: 52", "virtual_router_id: 51")),
        [at(22, "instances[1].virtual_router_id: 51 is already used on eth0 by "
                "instances[0]")],
        id="duplicate-vrid-same-interface",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CROSS_CASES)
def test_clash_between_entries_names_both_places(text: str, expected: list[str]) -> None:
    assert problems_of(text) == expected


ALL_BAD_CASES = (DOCUMENT_CASES + KEY_CASES + TYPE_CASES + VRRP_CASES + VIP_CASES
                 + INTERFACE_CASES + SYSCTL_CASES + ANNOUNCE_CASES + NODE_CASES
                 + CROSS_CASES)


def test_bad_config_table_has_distinct_documents_and_ids() -> None:
    texts = [case.values[0] for case in ALL_BAD_CASES]
    ids = [case.id for case in ALL_BAD_CASES]
    assert len(ALL_BAD_CASES) >= 45
    assert len(set(texts)) == len(texts)
    assert len(set(ids)) == len(ids)


def test_all_problems_in_a_file_are_reported_together_in_section_order() -> None:
    text = base(
        ("  name: lb1\n", "  name: lb1\n  state_dir: run\n"),  # line 3
        ("version: 2", "version: 4"),  # line 5
        ("net.ipv4.ip_nonlocal_bind: 1", "forward: 1"),  # line 7
        ("virtual_router_id: 51", "virtual_router_id: 0"),  # line 11
        ("priority: 150", "priority: 255"),  # line 12
        ("- 192.0.2.100/24", "- 10.0.0.300/24"),  # line 18
        ("count: 5", "count: 101"),  # line 20
    )
    assert problems_of(text) == [
        at(3, "node.state_dir: 'run' must be an absolute path"),
        at(5, "keepalived.version: 4 is not one of: 2, 3"),
        at(7, "sysctl.forward: 'forward' is not a sysctl name (like net.ipv4.ip_forward)"),
        at(11, "instances[0].virtual_router_id: 0 is out of range (1-255)"),
        at(12, "instances[0].priority: 255 is out of range (1-254)"),
        at(18, "instances[0].vips[0]: '10.0.0.300/24' is not an IP network"),
        at(20, "instances[0].announce.count: 101 is out of range (0-100)"),
    ]


def test_config_error_message_joins_all_problems() -> None:
    text = base(("priority: 150", "priority: 0"), ("state: BACKUP", "state: master"))
    with pytest.raises(ConfigError) as info:
        loads(text, filename=FILENAME)
    assert str(info.value) == "\n".join(info.value.problems)
    assert len(info.value.problems) == 2


# --------------------------------------------------------------------------- valid configs

def test_lab_config_loads_into_dataclasses() -> None:
    config = loads(LAB_YAML.read_text(), filename="lab.yaml", path=str(LAB_YAML))

    assert isinstance(config, Config)
    assert config.path == str(LAB_YAML)
    assert config.node.name == "lb1"
    assert config.node.state_dir == "/run/haguard"
    assert config.node.log_file is None
    assert config.keepalived == KeepalivedSettings(
        config="/etc/keepalived/keepalived.conf", version=2,
        hooks_dir="/usr/local/libexec/haguard", pid_file="/run/keepalived.pid")
    # sysctl values are kept as text, in file order.
    assert config.sysctl == (("net.ipv4.ip_nonlocal_bind", "1"),)

    assert len(config.instances) == 1
    inst = config.instances[0]
    assert config.instance("VI_1") is inst
    assert config.instance("VI_9") is None
    assert (inst.interface, inst.virtual_router_id, inst.priority) == ("eth0", 51, 150)
    assert (inst.state, inst.advert_int, inst.nopreempt) == ("BACKUP", 1.0, False)
    assert inst.auth_pass == "1111"
    assert inst.unicast_peers == ()

    v4, v6 = inst.vips
    assert v4.address == ipaddress.ip_address("192.0.2.100")
    assert (v4.prefixlen, v4.family, v4.label, str(v4)) == (32, 4, None, "192.0.2.100/32")
    assert v6.address == ipaddress.ip_address("2001:db8::100")
    assert (v6.prefixlen, v6.family, v6.label, str(v6)) == (64, 6, "eth0:0",
                                                             "2001:db8::100/64")
    assert inst.announce == Announce(count=5, interval_ms=200, repeat_after_s=5.0,
                                     refresh_s=0.0)


MINIMAL = """\
node:
  name: lb1
instances:
  - name: VI_1
    interface: eth0
    virtual_router_id: 51
    priority: 100
    vips: [192.0.2.100, "2001:db8::100"]
"""


def test_omitted_fields_take_documented_defaults() -> None:
    config = loads(MINIMAL, filename=FILENAME)

    assert config.path == FILENAME
    assert config.node.state_dir == "/run/haguard"
    assert config.node.log_file is None
    assert config.keepalived.version == 2
    assert config.keepalived.config == "/etc/keepalived/keepalived.conf"
    assert config.sysctl == ()
    inst = config.instances[0]
    assert inst == Instance(
        name="VI_1", interface="eth0", virtual_router_id=51, priority=100,
        state="BACKUP", advert_int=1.0, nopreempt=False, auth_pass=None,
        unicast_peers=(), vips=inst.vips,
        announce=Announce(count=5, interval_ms=200, repeat_after_s=5.0, refresh_s=0.0))


def test_bare_vip_address_becomes_a_host_prefix() -> None:
    v4, v6 = loads(MINIMAL, filename=FILENAME).instances[0].vips
    assert str(v4) == "192.0.2.100/32"
    assert str(v6) == "2001:db8::100/128"


def test_a_vip_may_live_on_another_device_and_is_grouped_by_it() -> None:
    config = loads(base(('      - {address: 192.0.2.101/24, label: "eth0:1"}\n',
                         '      - {address: 192.0.2.101/24, label: "eth0:1"}\n'
                         '      - {address: 198.51.100.10/24, interface: eth1, label: "eth1:0"}\n'
                         '      - {address: 198.51.100.11/24, interface: eth0}\n')),
                   filename=FILENAME)
    inst = config.instances[0]
    assert [v.device for v in inst.vips] == [None, None, "eth1", None]  # eth0: its own
    assert [(d, [str(v) for v in vips]) for d, vips in inst.vips_by_device()] == [
        ("eth0", ["192.0.2.100/24", "192.0.2.101/24", "198.51.100.11/24"]),
        ("eth1", ["198.51.100.10/24"])]
    assert inst.vips[2].label == "eth1:0"


def test_v3_accepts_sub_second_advert_int() -> None:
    config = loads(v3(("advert_int: 1", "advert_int: 0.05")), filename=FILENAME)
    assert config.keepalived.version == 3
    assert config.instances[0].advert_int == 0.05
    assert config.instances[0].auth_pass is None


def test_v2_accepts_whole_seconds_written_as_float() -> None:
    config = loads(base(("advert_int: 1", "advert_int: 2.0")), filename=FILENAME)
    assert config.instances[0].advert_int == 2.0


def test_same_vrid_on_different_interfaces_is_accepted() -> None:
    config = loads(two(("virtual_router_id: 52", "virtual_router_id: 51")),
                   filename=FILENAME)
    assert [(i.interface, i.virtual_router_id) for i in config.instances] == [
        ("eth0", 51), ("eth1", 51)]


def test_point_to_point_prefix_has_no_network_or_broadcast_address() -> None:
    config = loads(base(("- 192.0.2.100/24", "- 192.0.2.0/31")), filename=FILENAME)
    assert str(config.instances[0].vips[0]) == "192.0.2.0/31"


def test_merge_key_values_are_overridden_by_explicit_keys() -> None:
    # YAML merge keys: explicit keys of the mapping win over merged ones; they are not
    # duplicates.
    text = base(("  - name: VI_1\n", "  - &vi1\n    name: VI_1\n")) + (
        "  - <<: *vi1\n"
        "    name: VI_2\n"
        "    virtual_router_id: 52\n"
        "    vips: [198.51.100.1/24]\n"
    )
    config = loads(text, filename=FILENAME)
    second = config.instance("VI_2")
    assert second is not None
    assert (second.interface, second.virtual_router_id, second.priority) == ("eth0", 52, 150)
    assert [str(vip) for vip in second.vips] == ["198.51.100.1/24"]


# --------------------------------------------------------------------------- agent section
def test_an_agent_section_defaults_its_fifo_into_the_state_dir() -> None:
    config = loads(BASE + "agent: {}\n", filename=FILENAME)
    assert config.agent is not None
    assert config.agent.fifo == f"{config.node.state_dir}/notify.fifo"
    assert config.agent_lock == f"{config.node.state_dir}/agent.lock"
    assert loads(BASE + "agent:\n", filename=FILENAME).agent is not None
    assert loads(BASE, filename=FILENAME).agent is None


@pytest.mark.parametrize(("tail", "expected"), [
    ("agent: {fifo: notify.fifo}\n", "agent.fifo: 'notify.fifo' must be an absolute path"),
    ("agent: {fifo: /run/my fifo}\n", "agent.fifo: '/run/my fifo': keepalived splits"),
    ("agent: {fifo: /run/x, socket: /run/y}\n", "agent.socket: unknown key (known keys: fifo, metrics)"),
    ("agent: [fifo]\n", "agent: must be a mapping"),
])
def test_a_bad_agent_section_is_named_by_path(tail: str, expected: str) -> None:
    found = problems_of(BASE + tail)
    assert any(expected in p for p in found), found


def test_the_rendered_config_feeds_the_agent_and_hands_hooks_over() -> None:
    from haguard.core.render import render

    config = loads(BASE + "agent: {fifo: /run/haguard/k.fifo}\n", filename=FILENAME,
                   path="/etc/haguard/lb1.yaml")
    text = render(config)
    assert "    vrrp_notify_fifo /run/haguard/k.fifo\n" in text
    assert f'notify "/usr/local/libexec/haguard/notify -c /etc/haguard/lb1.yaml -a ' \
           f'{config.node.state_dir}/agent.lock"' in text
