"""Golden-file and property tests for haguard.core.render.

Each case in ``CASES`` is a small node config; ``render(config)`` must equal
``tests/unit/golden/<case>.conf`` byte for byte. Configs are loaded with a fixed
``path="/etc/haguard/lb1.yaml"`` so the notify line does not depend on where the tests
run.

Regenerating the golden files after an intended change to the rendered text::

    HAGUARD_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_render.py

then review ``git diff tests/unit/golden/`` before committing. With the variable unset
a missing or different golden file fails the test.

Independently of the golden text, the properties haguard's design depends on are
asserted (no ``virtual_ipaddress``, ``enable_script_security``, the notify line, ...),
and, when keepalived is installed, ``keepalived -t`` is run on every golden file.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from haguard.adapters import keepalived
from haguard.core.config import Config, loads
from haguard.core.render import hook_command, render
from haguard.errors import BadInput

GOLDEN_DIR = Path(__file__).parent / "golden"
REGEN = os.environ.get("HAGUARD_REGEN_GOLDEN") == "1"
CONFIG_PATH = "/etc/haguard/lb1.yaml"

# A copy of conf/lab.yaml: VRRPv2, PASS authentication, IPv4 + IPv6 VIPs.
LAB = """\
node:
  name: lb1
  state_dir: /run/haguard
keepalived:
  config: /etc/keepalived/keepalived.conf
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
    nopreempt: false
    auth_pass: "1111"
    unicast_peers: []
    vips:
      - 192.0.2.100/32
      - {address: 2001:db8::100/64, label: eth0:0}
    announce: {count: 5, interval_ms: 200, repeat_after_s: 5, refresh_s: 0}
"""

# VRRPv3: sub-second adverts, nopreempt, unicast to two IPv4 peers, own hooks_dir.
# keepalived refuses a VRRPv3 instance without VIPs unless it says no_virtual_ipaddress
# (keepalived >= 2.2.8); the keepalived -t test checks the rendered text is accepted.
V3_UNICAST_NOPREEMPT = """\
node: {name: lb2}
keepalived:
  version: 3
  hooks_dir: /opt/haguard/hooks
instances:
  - name: WEB
    interface: eth0
    virtual_router_id: 7
    priority: 100
    state: BACKUP
    advert_int: 0.05
    nopreempt: true
    unicast_peers: [198.51.100.11, 198.51.100.12]
    vips: [203.0.113.10/24]
"""

# Two VRRPv2 instances on one interface: one initial MASTER with auth, one BACKUP
# with a unicast peer and a 3 s advert.
TWO_INSTANCES = """\
node: {name: director-a}
keepalived:
  config: /etc/keepalived/haguard.conf
sysctl:
  net.ipv4.ip_nonlocal_bind: 1
  net.ipv4.conf.all.arp_ignore: 1
instances:
  - name: VI_WEB
    interface: eth0
    virtual_router_id: 51
    priority: 200
    state: MASTER
    auth_pass: s3cret
    vips: [192.0.2.10/24, 192.0.2.11/24]
  - name: VI_DB
    interface: eth0
    virtual_router_id: 52
    priority: 90
    advert_int: 3
    unicast_peers: [192.0.2.3]
    vips: [2001:db8:52::10/64]
"""

# VRRPv2 with an IPv6 unicast peer. The config accepts it, so keepalived must too: an
# IPv6 peer makes keepalived run the instance as IPv6 (VRRPv3), where an instance
# without VIPs is an error, not a warning (see the keepalived -t test).
V2_IPV6_UNICAST_PEER = """\
node: {name: lb1}
instances:
  - name: V6
    interface: eth0
    virtual_router_id: 9
    priority: 100
    unicast_peers: ["2001:db8::2"]
    vips: [2001:db8:1::10/64]
"""

# keepalived's tracking vocabulary: an LVS-NAT pair's two VIPs in a sync group (they must
# move together), a health script tracked with a weight, a second interface and a
# process tracked (weight 0: FAULT), unicast from a chosen source, a preemption delay.
TRACKED_SYNC_GROUP = """\
node: {name: lb1}
scripts:
  - {name: chk_proxy, command: [/bin/true, --quiet], interval_s: 2, timeout_s: 1,
     rise: 2, fall: 3, weight: -20, user: nobody}
sync_groups:
  - {name: NAT_PAIR, instances: [VI_CLIENT, VI_GATEWAY]}
instances:
  - name: VI_CLIENT
    interface: eth0
    virtual_router_id: 61
    priority: 150
    preempt_delay_s: 30
    unicast_src_ip: 192.0.2.11
    unicast_peers: [192.0.2.12]
    dont_track_primary: true
    track:
      scripts: [{name: chk_proxy}]
      interfaces: [{name: eth1, weight: 0}]
      processes: [{name: haproxy}]
    vips: [192.0.2.100/32]
  - name: VI_GATEWAY
    interface: eth1
    virtual_router_id: 62
    priority: 150
    preempt_delay_s: 30
    track:
      scripts: [{name: chk_proxy, weight: -30}]
    vips: [198.51.100.1/24, {address: 203.0.113.1/24, interface: eth2}]
"""

CASES = {
    "lab": LAB,
    "tracked_sync_group": TRACKED_SYNC_GROUP,
    "v3_unicast_nopreempt": V3_UNICAST_NOPREEMPT,
    "two_instances": TWO_INSTANCES,
    "v2_ipv6_unicast_peer": V2_IPV6_UNICAST_PEER,
}


def _load(text: str, name: str = "case", path: str = CONFIG_PATH) -> Config:
    return loads(text, filename=f"{name}.yaml", path=path)


def _golden_path(name: str) -> Path:
    return GOLDEN_DIR / f"{name}.conf"


def _instance_blocks(text: str) -> dict[str, list[str]]:
    """``vrrp_instance NAME { ... }`` bodies by name (lines between the braces)."""
    blocks: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        match = re.match(r"^vrrp_instance (\S+) \{$", line)
        if match:
            current = match.group(1)
            blocks[current] = []
        elif current is not None and line == "}":
            current = None
        elif current is not None:
            blocks[current].append(line)
    return blocks


def _global_defs(text: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index("global_defs {")
    end = lines.index("}", start)
    return lines[start + 1:end]


def _minimal(version: int = 2, **instance: object) -> str:
    """A one-instance config text with instance keys overridden."""
    fields = {"name": "A", "interface": "eth0", "virtual_router_id": 1, "priority": 100,
              "vips": "[192.0.2.1]"}
    fields.update({k: v for k, v in instance.items()})
    body = ", ".join(f"{k}: {v}" for k, v in fields.items())
    return f"node: {{name: lb1}}\nkeepalived: {{version: {version}}}\ninstances:\n  - {{{body}}}\n"


# --------------------------------------------------------------------------- golden


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_render_matches_golden_file(name: str) -> None:
    rendered = render(_load(CASES[name], name))
    golden = _golden_path(name)
    if REGEN:
        GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
        golden.write_text(rendered)
    assert golden.exists(), (f"{golden} is missing; run with HAGUARD_REGEN_GOLDEN=1 to "
                             "create it, then review it")
    assert rendered == golden.read_text(), (
        f"render() no longer matches {golden.name}; if the change is intended, "
        "regenerate with HAGUARD_REGEN_GOLDEN=1 and review the diff")


def test_render_is_deterministic_for_the_same_config() -> None:
    config = _load(TWO_INSTANCES)
    assert render(config) == render(config)
    assert render(config) == render(_load(TWO_INSTANCES))


# --------------------------------------------------------------------------- properties


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_render_never_contains_virtual_ipaddress(name: str) -> None:
    text = render(_load(CASES[name], name))
    assert not re.search(r"^\s*virtual_ipaddress\b", text, re.M)
    # Nor the other keepalived ways of owning an address.
    assert "virtual_routes" not in text and "virtual_rules" not in text


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_render_enables_script_security_in_global_defs(name: str) -> None:
    config = _load(CASES[name], name)
    defs = [line.strip() for line in _global_defs(render(config))]
    assert "enable_script_security" in defs
    assert f"router_id {config.node.name}" in defs


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_render_writes_one_notify_line_per_instance_with_hooks_dir_and_config_path(
        name: str) -> None:
    config = _load(CASES[name], name)
    text = render(config)
    hook = f"{config.keepalived.hooks_dir}/notify -c {CONFIG_PATH}"
    blocks = _instance_blocks(text)
    assert set(blocks) == {inst.name for inst in config.instances}
    for inst_name, body in blocks.items():
        notify_lines = [line for line in body if line.strip().startswith("notify")]
        # keepalived runs notify_master_rx_lower_pri with no words of its own: the hook
        # line says the instance and the event.
        assert notify_lines == [f'    notify "{hook}"',
                                f'    notify_master_rx_lower_pri "{hook} INSTANCE {inst_name} '
                                'MASTER_RX_LOWER_PRI"'], inst_name
    all_notify = [line for line in text.splitlines() if line.strip().startswith("notify")]
    assert len(all_notify) == 2 * len(config.instances)


def test_hook_command_joins_hooks_dir_notify_and_config_path() -> None:
    config = _load(V3_UNICAST_NOPREEMPT)
    assert hook_command(config) == "/opt/haguard/hooks/notify -c /etc/haguard/lb1.yaml"


@pytest.mark.parametrize(
    ("version", "advert", "has_vrrp_version_3"),
    [(2, 1, False), (3, 1, True), (3, 0.5, True)],
    ids=["v2-omits-vrrp_version", "v3-whole-advert", "v3-fractional-advert"])
def test_render_writes_vrrp_version_3_only_for_version_3(
        version: int, advert: float, has_vrrp_version_3: bool) -> None:
    text = render(_load(_minimal(version, advert_int=advert)))
    assert ("    vrrp_version 3" in _global_defs(text)) is has_vrrp_version_3
    assert text.count("vrrp_version") == (1 if has_vrrp_version_3 else 0)


@pytest.mark.parametrize(
    ("extra", "auth_pass"),
    [({"auth_pass": '"1111"'}, "1111"), ({"auth_pass": "pa$$w0rd"}, "pa$$w0rd"), ({}, None)],
    ids=["numeric-text", "eight-chars", "no-auth_pass"])
def test_render_writes_authentication_block_only_with_auth_pass(
        extra: dict[str, str], auth_pass: str | None) -> None:
    body = _instance_blocks(render(_load(_minimal(2, **extra))))["A"]
    if auth_pass is None:
        assert not any("auth" in line for line in body)
    else:
        start = body.index("    authentication {")
        assert body[start:start + 4] == [
            "    authentication {",
            "        auth_type PASS",
            f"        auth_pass {auth_pass}",
            "    }",
        ]


def test_render_writes_authentication_only_in_the_instance_that_has_it() -> None:
    blocks = _instance_blocks(render(_load(TWO_INSTANCES)))
    assert "    authentication {" in blocks["VI_WEB"]
    assert not any("auth" in line for line in blocks["VI_DB"])


@pytest.mark.parametrize(
    ("extra", "expect_nopreempt"),
    [({"nopreempt": "true"}, True), ({"nopreempt": "false"}, False), ({}, False),
     ({"nopreempt": "false", "state": "MASTER"}, False)],
    ids=["nopreempt-true", "nopreempt-false", "nopreempt-unset", "master-without-nopreempt"])
def test_render_writes_nopreempt_only_when_set(
        extra: dict[str, str], expect_nopreempt: bool) -> None:
    body = _instance_blocks(render(_load(_minimal(2, **extra))))["A"]
    assert ("    nopreempt" in body) is expect_nopreempt
    assert sum("preempt" in line for line in body) == (1 if expect_nopreempt else 0)


@pytest.mark.parametrize(
    ("version", "advert", "rendered"),
    [
        (3, "0.05", "0.05"),
        (3, "0.01", "0.01"),
        (3, "0.1", "0.1"),
        (3, "0.5", "0.5"),
        (3, "0.07", "0.07"),
        (3, "1.25", "1.25"),
        (3, "12.3", "12.3"),
        (3, "40.95", "40.95"),
        (3, "2", "2"),
        (3, "2.0", "2"),
        (2, "1", "1"),
        (2, "3.0", "3"),
        (2, "255", "255"),
        # Within the config's 1e-6 tolerance of whole seconds: must not render "1.".
        (3, "1.0000000001", "1"),
    ],
    ids=["v3-0.05", "v3-0.01", "v3-0.1", "v3-0.5", "v3-0.07", "v3-1.25", "v3-12.3",
         "v3-40.95", "v3-whole-int", "v3-whole-float", "v2-1", "v2-whole-float", "v2-255",
         "v3-float-noise-near-whole"])
def test_render_writes_advert_int_as_shortest_decimal(
        version: int, advert: str, rendered: str) -> None:
    body = _instance_blocks(render(_load(_minimal(version, advert_int=advert))))["A"]
    assert [line for line in body if "advert_int" in line] == [f"    advert_int {rendered}"]


def test_render_lists_unicast_peers_in_config_order() -> None:
    body = _instance_blocks(render(_load(V3_UNICAST_NOPREEMPT)))["WEB"]
    start = body.index("    unicast_peer {")
    assert body[start:start + 4] == [
        "    unicast_peer {", "        198.51.100.11", "        198.51.100.12", "    }"]


def test_render_omits_unicast_peer_block_without_peers() -> None:
    assert "unicast_peer" not in render(_load(LAB))


# --------------------------------------------------------------------------- bad paths


@pytest.mark.parametrize(
    "path",
    ["/etc/ha guard/lb1.yaml", "/etc/haguard/lb 1.yaml", "/etc/haguard/lb1.yaml ",
     "/etc/haguard/lb\t1.yaml", '/etc/haguard/"lb1".yaml', "/etc/haguard/lb'1.yaml",
     "/etc/haguard/lb\\1.yaml"],
    ids=["space-in-dir", "space-in-name", "trailing-space", "tab", "double-quote",
         "single-quote", "backslash"])
def test_render_rejects_config_path_keepalived_would_split(path: str) -> None:
    config = _load(LAB, path=path)
    with pytest.raises(BadInput, match="config path"):
        render(config)
    with pytest.raises(BadInput) as info:
        hook_command(config)
    assert info.value.exit_code == 2


def test_render_rejects_hooks_dir_with_a_space() -> None:
    text = LAB.replace("  version: 2\n", "  version: 2\n  hooks_dir: /opt/ha guard\n")
    config = _load(text)
    assert config.keepalived.hooks_dir == "/opt/ha guard"
    with pytest.raises(BadInput, match="hooks_dir"):
        render(config)


# --------------------------------------------------------------------------- keepalived -t


def _interfaces(config: Config) -> list[str]:
    """Every interface the rendered file names: the instances', the VIPs' devices and the
    tracked ones."""
    return sorted({i.interface for i in config.instances}
                  | {d for i in config.instances for d, _ in i.vips_by_device()}
                  | {t.name for i in config.instances for t in i.track.interfaces})


def _missing_interfaces(names: list[str]) -> list[str]:
    return [n for n in names if not os.path.exists(f"/sys/class/net/{n}")]


@contextlib.contextmanager
def _namespace_with(interfaces: list[str]) -> Iterator[str | None]:
    """keepalived -t wants the config's interfaces to exist: a namespace of our own
    that has them (veth pairs) when this machine does not; None when it does."""
    if not interfaces:
        yield None
        return
    if os.geteuid() != 0:
        pytest.skip(f"keepalived -t needs interfaces {interfaces}; making them in a network "
                    "namespace needs root")
    name = f"hg-render-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for ifname in interfaces:
            subprocess.run(["ip", "-n", name, "link", "add", ifname, "type", "veth", "peer",
                            "name", f"{ifname[:12]}-p"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def _keepalived_version() -> tuple[int, ...]:
    out = subprocess.run([keepalived.binary() or "keepalived", "--version"], capture_output=True,
                         text=True).stderr + ""
    match = re.search(r"Keepalived v(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in match.groups()) if match else (0,)


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_keepalived_accepts_golden_file_with_only_the_no_vip_warning(name: str,
                                                                     tmp_path: Path) -> None:
    if keepalived.binary() is None:
        pytest.skip("keepalived is not installed (not on PATH, not /usr/sbin/keepalived)")
    golden = _golden_path(name)
    if not golden.exists():
        pytest.skip(f"{golden.name} does not exist yet (see test_render_matches_golden_file)")
    # The levers' directory exists on a node (`hooks install` makes it); here, in tmp.
    (tmp_path / "track").mkdir()
    text = golden.read_text().replace("/var/lib/haguard/track/", f"{tmp_path}/track/")
    # Some are missing here: a namespace with all of them.
    names = _interfaces(_load(CASES[name], name))
    needed = names if _missing_interfaces(names) else []
    with _namespace_with(needed) as netns:
        result = keepalived.check_text(text, netns)
    assert result is not None
    if "no_virtual_ipaddress" in text and _keepalived_version() < (2, 2, 8):
        # Older keepalived cannot run these; haguard check must say so and why.
        assert not result.ok
        assert result.hints == (keepalived.NO_VIP_KEYWORD_HINT,)
        return
    assert result.ok, (f"keepalived -t exit {result.returncode}; unexpected complaints "
                       f"{list(result.complaints)}; output:\n{result.output}")
    if result.returncode != 0:
        assert result.returncode == 5
        assert result.expected and all(
            "No VIP specified; at least one is sensible" in line for line in result.expected)
    assert result.complaints == ()
