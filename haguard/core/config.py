"""The node config: YAML -> frozen dataclasses, validated completely before use.

Every problem is collected (an operator fixes them all in one edit) and reported as
``file:line: path: message``. Nothing here touches the system.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from haguard.core.checker import IFNAME_MAX, Checker, field, kind, show
from haguard.core.gcpause import collector_paused
from haguard.core.vrrpconfig import (
    NotifyCommands,
    SyncGroup,
    Track,
    VrrpScript,
    parse_notify,
    parse_preempt_delay,
    parse_scripts,
    parse_sync_groups,
    parse_track,
    parse_unicast_src,
)
from haguard.core.yamlsrc import Path, Source, parse
from haguard.errors import ConfigError

if TYPE_CHECKING:  # the ipvs model loads only for files that have those sections
    from haguard.core.ipvsconfig import IpvsSettings, RealServerRole

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

STATES_INITIAL = ("MASTER", "BACKUP")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SYSCTL_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[A-Za-z0-9_-]+)+$")


@dataclass(frozen=True)
class Vip:
    """One virtual address: address with prefix, an optional IPv4 label, and the device
    it lives on when that is not its instance's interface (keepalived's ``dev``)."""

    interface: IPInterface
    label: str | None = None
    device: str | None = None

    @property
    def address(self) -> IPAddress:
        return self.interface.ip

    @property
    def prefixlen(self) -> int:
        return self.interface.network.prefixlen

    @property
    def family(self) -> int:
        return self.interface.version

    def __str__(self) -> str:
        return self.interface.with_prefixlen


@dataclass(frozen=True)
class Announce:
    """How often the new MASTER tells the segment it owns the VIPs."""

    count: int = 5
    interval_ms: int = 200
    repeat_after_s: float = 5.0
    refresh_s: float = 0.0


@dataclass(frozen=True)
class Instance:
    """One VRRP instance: keepalived elects it, haguard acts on its result."""

    name: str
    interface: str
    virtual_router_id: int
    priority: int
    state: str = "BACKUP"
    advert_int: float = 1.0
    nopreempt: bool = False
    auth_pass: str | None = None
    unicast_peers: tuple[IPAddress, ...] = ()
    vips: tuple[Vip, ...] = ()
    announce: Announce = dataclasses.field(default_factory=Announce)
    unicast_src_ip: IPAddress | None = None
    preempt_delay_s: float = 0.0
    track: Track = dataclasses.field(default_factory=Track)
    dont_track_primary: bool = False
    notify: NotifyCommands = dataclasses.field(default_factory=NotifyCommands)

    def device_of(self, vip: Vip) -> str:
        """The device ``vip`` is added to and announced on."""
        return vip.device or self.interface

    def vips_by_device(self) -> tuple[tuple[str, tuple[Vip, ...]], ...]:
        """The VIPs grouped by device: the instance's interface first, then the others
        in the order they are first listed."""
        groups: dict[str, list[Vip]] = {self.interface: []}
        for vip in self.vips:
            groups.setdefault(self.device_of(vip), []).append(vip)
        return tuple((device, tuple(vips)) for device, vips in groups.items() if vips)


@dataclass(frozen=True)
class NodeSettings:
    name: str
    state_dir: str = "/run/haguard"
    log_file: str | None = None
    # Manual promotion levers (keepalived track files) and their audit log: on disk that
    # survives a reboot, so a maintenance demotion does too.
    lever_dir: str = "/var/lib/haguard"


@dataclass(frozen=True)
class KeepalivedSettings:
    config: str = "/etc/keepalived/keepalived.conf"
    version: int = 2
    hooks_dir: str = "/usr/local/libexec/haguard"
    pid_file: str = "/run/keepalived.pid"
    vrrp_pid_file: str = "/run/vrrp.pid"     # keepalived's VRRP child (its -r option)


@dataclass(frozen=True)
class AgentSettings:
    """``haguard agent``: keepalived writes its events to ``fifo``; the agent applies them.
    With ``metrics_listen`` (address, port) it serves /metrics over HTTP there."""

    fifo: str
    metrics_listen: tuple[str, int] | None = None


@dataclass(frozen=True)
class Config:
    """A whole node config. ``path`` is the file it was read from (absolute)."""

    path: str
    node: NodeSettings
    keepalived: KeepalivedSettings
    sysctl: tuple[tuple[str, str], ...]
    instances: tuple[Instance, ...]
    ipvs: IpvsSettings | None = None
    realserver: RealServerRole | None = None
    agent: AgentSettings | None = None
    scripts: tuple[VrrpScript, ...] = ()
    sync_groups: tuple[SyncGroup, ...] = ()

    def sync_group_of(self, instance: str) -> SyncGroup | None:
        return next((g for g in self.sync_groups if instance in g.instances), None)

    @property
    def agent_lock(self) -> str:
        """Held by a running agent; the hooks hand over to it while it is held."""
        return f"{self.node.state_dir}/agent.lock"

    def drives_sync(self, instance: str) -> bool:
        """Whether ``instance``'s state sets the IPVS sync daemon's role: the instances on
        the sync interface do (the first instance when none is on it)."""
        if self.ipvs is None or self.ipvs.sync is None:
            return False
        on_iface = [i.name for i in self.instances if i.interface == self.ipvs.sync.interface]
        return instance in on_iface if on_iface else \
            bool(self.instances) and self.instances[0].name == instance

    def director_sysctls(self) -> tuple[tuple[str, str], ...]:
        """What MASTER applies: the IPVS failover defaults, overridden by ``sysctl``."""
        merged = dict(self.ipvs.director_sysctls()) if self.ipvs and self.ipvs.services else {}
        merged.update(self.sysctl)
        return tuple(merged.items())

    def instance(self, name: str) -> Instance | None:
        for inst in self.instances:
            if inst.name == name:
                return inst
        return None


# --------------------------------------------------------------------------- sections

def _node(c: Checker, raw: Any) -> NodeSettings | None:
    path: Path = ("node",)
    data = c.mapping(raw, path, ("name", "state_dir", "log_file", "lever_dir"),
                     required=("name",))
    name = field(c, data, "name", path,
                  lambda v, p: c.string(v, p, _NAME_RE, "a valid node name (letters, digits, _ . -)"))
    state_dir = field(c, data, "state_dir", path, c.abspath, NodeSettings.state_dir)
    log_file = field(c, data, "log_file", path, c.abspath, None)
    lever_dir = field(c, data, "lever_dir", path, c.abspath, NodeSettings.lever_dir)
    if name is None or state_dir is None or lever_dir is None:
        return None
    for key, value in (("state_dir", state_dir), ("lever_dir", lever_dir)):
        if any(ch.isspace() or ch in "\"'\\" for ch in value):
            c.fail(path + (key,), f"{value!r}: keepalived splits its config on spaces and "
                                  "quotes; use a path without them")
    return NodeSettings(name=name, state_dir=state_dir, log_file=log_file, lever_dir=lever_dir)


def _keepalived(c: Checker, raw: Any) -> KeepalivedSettings:
    path: Path = ("keepalived",)
    defaults = KeepalivedSettings()
    if raw is None:
        return defaults
    data = c.mapping(raw, path, ("config", "version", "hooks_dir", "pid_file", "vrrp_pid_file"))
    return KeepalivedSettings(
        config=field(c, data, "config", path, c.abspath, defaults.config) or defaults.config,
        version=field(c, data, "version", path, lambda v, p: c.choice(v, p, (2, 3)),
                       defaults.version) or defaults.version,
        hooks_dir=field(c, data, "hooks_dir", path, c.abspath, defaults.hooks_dir)
        or defaults.hooks_dir,
        pid_file=field(c, data, "pid_file", path, c.abspath, defaults.pid_file)
        or defaults.pid_file,
        vrrp_pid_file=field(c, data, "vrrp_pid_file", path, c.abspath, defaults.vrrp_pid_file)
        or defaults.vrrp_pid_file,
    )


def _agent(c: Checker, raw: Any, node: NodeSettings | None) -> AgentSettings | None:
    path: Path = ("agent",)
    if raw is None:
        raw = {}  # `agent:` alone: the defaults
    data = c.mapping(raw, path, ("fifo", "metrics"))
    listen = _metrics(c, data.get("metrics"), path + ("metrics",)) if "metrics" in data \
        else None
    fifo = field(c, data, "fifo", path, c.abspath, None)
    if fifo is None:
        if "fifo" in data:
            return None
        fifo = f"{node.state_dir if node else NodeSettings.state_dir}/notify.fifo"
    if any(ch.isspace() or ch in "\"'\\" for ch in fifo):
        c.fail(path + ("fifo",), f"{fifo!r}: keepalived splits its config on spaces and quotes; "
                                 "use a path without them")
        return None
    return AgentSettings(fifo=fifo, metrics_listen=listen)


def _metrics(c: Checker, raw: Any, path: Path) -> tuple[str, int] | None:
    """``agent.metrics``: ``listen: ADDRESS:PORT`` (an IPv6 address in brackets)."""
    data = c.mapping(raw, path, ("listen",), required=("listen",))
    value = data.get("listen")
    if value is None:
        return None
    where = path + ("listen",)
    match = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:\[\]]+):(\d+)", str(value)) \
        if isinstance(value, str) else None
    if match is None:
        c.fail(where, f"{show(value)}: give ADDRESS:PORT, e.g. 127.0.0.1:9650 or [::1]:9650")
        return None
    address, port = (match.group(1), match.group(2)) if match.group(1) else \
        (match.group(3), match.group(4))
    try:
        ipaddress.ip_address(address)
    except ValueError:
        c.fail(where, f"{address!r} is not an IP address (a host name is not resolved "
                      "here: give the address to listen on)")
        return None
    if not 1 <= int(port) <= 65535:
        c.fail(where, f"port {port} is outside 1-65535")
        return None
    return address, int(port)


def _sysctl(c: Checker, raw: Any) -> tuple[tuple[str, str], ...]:
    path: Path = ("sysctl",)
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        c.fail(path, f"must be a mapping of sysctl name to value, not {kind(raw)}")
        return ()
    out = []
    for key, value in raw.items():
        kpath = path + (key,)
        if not _SYSCTL_RE.match(key):
            c.fail(kpath, f"{key!r} is not a sysctl name (like net.ipv4.ip_forward)", key=True)
            continue
        if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
            c.fail(kpath, f"value must be an integer or a string, not {show(value)}")
            continue
        out.append((key, str(value)))
    return tuple(out)


def _advert_int(c: Checker, value: Any, path: Path, version: int) -> float | None:
    if version == 2:
        # VRRPv2 carries whole seconds in an 8-bit field.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, float):
            c.fail(path, f"{value} must be whole seconds with VRRP version 2 "
                         "(use keepalived.version: 3 for sub-second adverts)")
            return None
        result = c.integer(value, path, 1, 255)
        return None if result is None else float(result)
    # VRRPv3 carries centiseconds in 12 bits.
    seconds = c.number(value, path, 0.01, 40.95)
    if seconds is not None and abs(round(seconds * 100) - seconds * 100) > 1e-6:
        c.fail(path, f"{value} must be a multiple of 0.01 s with VRRP version 3")
        return None
    return seconds


def _vip(c: Checker, raw: Any, path: Path, interface: str | None) -> Vip | None:
    label: str | None = None
    device: str | None = None
    if isinstance(raw, dict):
        data = c.mapping(raw, path, ("address", "label", "interface"), required=("address",))
        if "address" not in data:
            return None
        address = data["address"]
        apath = path + ("address",)
        if "interface" in data:
            device = c.ifname(data["interface"], path + ("interface",))
            if device is not None and device == interface:
                device = None       # the instance's own: the same VIP as without the key
        if "label" in data:
            label = _label(c, data["label"], path + ("label",), device or interface)
    else:
        address, apath = raw, path
    if not isinstance(address, str):
        c.fail(apath, f"{show(address)} is not an IP network")
        return None
    if "%" in address:
        c.fail(apath, f"{address!r} must not carry a %scope (its device is its instance's "
                      "interface, or vips[].interface)")
        return None
    try:
        iface = ipaddress.ip_interface(address)
    except ValueError:
        c.fail(apath, f"{address!r} is not an IP network")
        return None
    if "/" in address:
        try:
            ipaddress.ip_network(address, strict=False)
            bits = address.rsplit("/", 1)[1]
            if not bits.isdigit():
                raise ValueError
        except ValueError:
            c.fail(apath, f"{address!r} is not an IP network (prefix must be a length)")
            return None
    ip = iface.ip
    if ip.is_multicast or ip.is_unspecified or ip.is_loopback or ip.is_link_local:
        c.fail(apath, f"{address!r} cannot be a VIP (multicast, unspecified, loopback "
                      "or link-local)")
        return None
    if iface.version == 4 and iface.network.prefixlen < 32 and ip in (
            iface.network.network_address, iface.network.broadcast_address) \
            and iface.network.prefixlen < 31:
        c.fail(apath, f"{address!r} is the network or broadcast address of its prefix")
        return None
    return Vip(interface=iface, label=label, device=device)


def _label(c: Checker, value: Any, path: Path, interface: str | None) -> str | None:
    label = c.string(value, path)
    if label is None:
        return None
    if len(label) > IFNAME_MAX:
        c.fail(path, f"{label!r} is {len(label)} characters; the kernel allows {IFNAME_MAX}")
        return None
    if interface is not None and not label.startswith(interface + ":"):
        c.fail(path, f"{label!r} must start with the interface name '{interface}:' "
                     f"(like {interface}:0)")
        return None
    return label


def _announce(c: Checker, raw: Any, path: Path) -> Announce:
    defaults = Announce()
    if raw is None:
        return defaults
    data = c.mapping(raw, path, ("count", "interval_ms", "repeat_after_s", "refresh_s"))
    count = field(c, data, "count", path, lambda v, p: c.integer(v, p, 0, 100), defaults.count)
    interval = field(c, data, "interval_ms", path, lambda v, p: c.integer(v, p, 0, 10_000),
                      defaults.interval_ms)
    repeat = field(c, data, "repeat_after_s", path, lambda v, p: c.number(v, p, 0, 3600),
                    defaults.repeat_after_s)
    refresh = field(c, data, "refresh_s", path, lambda v, p: c.number(v, p, 0, 86_400),
                     defaults.refresh_s)
    if refresh and refresh < 1:
        c.fail(path + ("refresh_s",), f"{refresh:g} is too often; use 0 (off) or at least 1")
    return Announce(
        count=defaults.count if count is None else count,
        interval_ms=defaults.interval_ms if interval is None else interval,
        repeat_after_s=defaults.repeat_after_s if repeat is None else repeat,
        refresh_s=defaults.refresh_s if refresh is None else refresh,
    )


_INSTANCE_KEYS = ("name", "interface", "virtual_router_id", "priority", "state", "advert_int",
                  "nopreempt", "auth_pass", "unicast_peers", "vips", "announce",
                  "unicast_src_ip", "preempt_delay_s", "track", "dont_track_primary", "notify")


def _instance(c: Checker, raw: Any, path: Path, version: int,
              scripts: tuple[VrrpScript, ...] = ()) -> Instance | None:
    data = c.mapping(raw, path, _INSTANCE_KEYS,
                     required=("name", "interface", "virtual_router_id", "priority", "vips"))
    if not data:
        return None
    name = field(c, data, "name", path, lambda v, p: c.string(
        v, p, _NAME_RE, "a valid instance name (letters, digits, _ . -)"))
    interface = field(c, data, "interface", path, c.ifname)
    vrid = field(c, data, "virtual_router_id", path, lambda v, p: c.integer(v, p, 1, 255))
    priority = field(c, data, "priority", path, lambda v, p: c.integer(v, p, 1, 254))
    state = field(c, data, "state", path, lambda v, p: c.choice(v, p, STATES_INITIAL), "BACKUP")
    advert = field(c, data, "advert_int", path, lambda v, p: _advert_int(c, v, p, version), 1.0)
    nopreempt = field(c, data, "nopreempt", path, c.boolean, False)
    auth = None
    if "auth_pass" in data:
        apath = path + ("auth_pass",)
        value = data["auth_pass"]
        if version == 3:
            c.fail(apath, "authentication does not exist in VRRP version 3; remove auth_pass")
        elif isinstance(value, int) and not isinstance(value, bool):
            c.fail(apath, f"{value} must be quoted (\"{value}\") so YAML keeps it as text")
        else:
            auth = c.string(value, apath)
            if auth is not None and len(auth) > 8:
                c.fail(apath, f"{len(auth)} characters: keepalived uses only the first 8 "
                              f"({auth[:8]!r}); write those 8 and the pair keeps talking "
                              "(a peer still running the old file sends them too)")
                auth = None
            elif auth is not None and (not auth.isprintable() or " " in auth):
                c.fail(apath, "must be 1-8 printable characters without spaces")
                auth = None
    peers: list[IPAddress] = []
    if "unicast_peers" in data:
        ppath = path + ("unicast_peers",)
        for i, item in enumerate(c.listing(data["unicast_peers"], ppath)):
            try:
                peer = ipaddress.ip_address(item) if isinstance(item, str) else None
            except ValueError:
                peer = None
            if peer is None:
                c.fail(ppath + (i,), f"{show(item)} is not an IP address")
            elif peer.is_multicast or peer.is_unspecified or peer.is_loopback:
                c.fail(ppath + (i,), f"{item} cannot be a unicast peer (multicast, "
                                     "unspecified or loopback)")
            elif peer in peers:
                c.fail(ppath + (i,), f"{item} is listed twice")
            elif peers and peer.version != peers[0].version:
                c.fail(ppath + (i,), f"{item} is IPv{peer.version} but {peers[0]} is "
                                     f"IPv{peers[0].version}; VRRP adverts use one family")
            else:
                peers.append(peer)
    vips: list[Vip] = []
    if "vips" in data:
        vpath = path + ("vips",)
        items = c.listing(data["vips"], vpath)
        if isinstance(data["vips"], list) and not items:
            c.fail(vpath, "must list at least one VIP")
        for i, item in enumerate(items):
            vip = _vip(c, item, vpath + (i,), interface)
            if vip is not None:
                vips.append(vip)
                c.vip_positions.setdefault(path, []).append(i)
    announce = _announce(c, data.get("announce"), path + ("announce",))
    src = parse_unicast_src(c, data["unicast_src_ip"], path + ("unicast_src_ip",)) \
        if "unicast_src_ip" in data else None
    if src is not None and not peers:
        c.fail(path + ("unicast_src_ip",), "applies to unicast adverts: list unicast_peers "
                                           "(multicast adverts leave from the interface's "
                                           "primary address)")
    elif src is not None and src.version != peers[0].version:
        c.fail(path + ("unicast_src_ip",), f"{src} is IPv{src.version} but the unicast peers "
                                           f"are IPv{peers[0].version}")
    delay = parse_preempt_delay(c, data["preempt_delay_s"], path + ("preempt_delay_s",)) \
        if "preempt_delay_s" in data else 0.0
    if delay and nopreempt:
        c.fail(path + ("preempt_delay_s",), "has no effect with nopreempt (nothing preempts)")
    elif delay and state == "MASTER":
        c.fail(path + ("preempt_delay_s",), "needs state: BACKUP (keepalived delays "
                                            "preemption only from an initial BACKUP)")
    track = parse_track(c, data["track"], path + ("track",), scripts) if "track" in data \
        else Track()
    dont_track = field(c, data, "dont_track_primary", path, c.boolean, False)
    notify = parse_notify(c, data["notify"], path + ("notify",)) if "notify" in data \
        else NotifyCommands()
    if nopreempt and state == "MASTER":
        c.fail(path + ("nopreempt",), "nopreempt needs state: BACKUP (keepalived ignores "
                                      "nopreempt on an initial MASTER)")
    if None in (name, interface, vrid, priority, state, advert, nopreempt, delay, dont_track):
        return None
    return Instance(name=name, interface=interface, virtual_router_id=vrid, priority=priority,
                    state=state, advert_int=advert, nopreempt=nopreempt, auth_pass=auth,
                    unicast_peers=tuple(peers), vips=tuple(vips), announce=announce,
                    unicast_src_ip=src, preempt_delay_s=delay or 0.0, track=track,
                    dont_track_primary=bool(dont_track), notify=notify)


def _cross_checks(c: Checker, instances: list[tuple[int, Instance]]) -> None:
    seen_names: dict[str, int] = {}
    seen_vrids: dict[tuple[str, int], int] = {}
    seen_vips: dict[IPAddress, tuple[int, int]] = {}
    for index, inst in instances:
        ipath: Path = ("instances", index)
        if inst.name in seen_names:
            c.fail(ipath + ("name",), f"'{inst.name}' is already the name of "
                                      f"instances[{seen_names[inst.name]}]")
        seen_names.setdefault(inst.name, index)
        key = (inst.interface, inst.virtual_router_id)
        if key in seen_vrids:
            c.fail(ipath + ("virtual_router_id",),
                   f"{inst.virtual_router_id} is already used on {inst.interface} by "
                   f"instances[{seen_vrids[key]}]")
        seen_vrids.setdefault(key, index)
        for vip, j in zip(inst.vips, c.vip_positions.get(ipath, [])):
            if vip.address in seen_vips:
                other_i, other_j = seen_vips[vip.address]
                c.fail(ipath + ("vips", j), f"{vip.address} is already listed at "
                                            f"instances[{other_i}].vips[{other_j}]")
            else:
                seen_vips[vip.address] = (index, j)


TOP_LEVEL_KEYS = ("node", "keepalived", "sysctl", "instances", "ipvs", "realserver", "agent",
                  "scripts", "sync_groups")


def from_source(source: Source, path: str) -> Config:
    """Validate a parsed document; raise ConfigError listing every problem."""
    c = Checker(source)
    if source.data is None:
        raise ConfigError([f"{source.filename}:1: the file is empty; it needs 'node' and "
                           "'instances' (a director) or 'realserver' (a real server)"])
    top = c.mapping(source.data, (), TOP_LEVEL_KEYS, required=("node",))
    if not isinstance(source.data, dict):
        raise ConfigError(c.problems)
    if not any(k in top for k in ("instances", "ipvs",
                                                                    "realserver")):
        c.fail((), "missing required key 'instances' (a director) or 'realserver' "
                   "(a real server)")
    node = _node(c, top["node"]) if "node" in top else None
    keepalived = _keepalived(c, top.get("keepalived"))
    sysctl = _sysctl(c, top.get("sysctl"))
    scripts = parse_scripts(c, top["scripts"]) if "scripts" in top else ()
    instances: list[tuple[int, Instance]] = []
    raw_instances: list[Any] = []
    if "instances" in top:
        raw_instances = c.listing(top["instances"], ("instances",))
        if isinstance(top["instances"], list) and not raw_instances:
            c.fail(("instances",), "must list at least one VRRP instance")
        for i, raw in enumerate(raw_instances):
            inst = _instance(c, raw, ("instances", i), keepalived.version, scripts)
            if inst is not None:
                instances.append((i, inst))
    _cross_checks(c, instances)
    sync_groups = parse_sync_groups(c, top["sync_groups"], [
        str(r.get("name")) for r in raw_instances if isinstance(r, dict)]) \
        if "sync_groups" in top else ()
    ipvs = realserver = None
    if "ipvs" in top or "realserver" in top:
        from haguard.core.ipvsconfig import parse_ipvs, parse_realserver
    if "ipvs" in top:
        vips = {v.address for _, inst in instances for v in inst.vips} if "instances" in top else None
        ipvs = parse_ipvs(c, top["ipvs"], vips)
    if "realserver" in top:
        realserver = parse_realserver(c, top["realserver"])
    agent = _agent(c, top["agent"], node) if "agent" in top else None
    if agent is not None and "instances" not in top:
        c.fail(("agent",), "the agent applies VRRP transitions; it needs 'instances'")
    if agent is None and "ipvs" in top:
        watched = _first_watched(top["ipvs"])
        if watched is not None:
            c.fail(watched, "real-server checks run in `haguard agent`: add an `agent:` "
                            "section (and render keepalived.conf again)", key=True)
    if c.problems or node is None:
        raise ConfigError(c.problems or [f"{source.filename}:1: node: invalid"])
    return Config(path=path, node=node, keepalived=keepalived, sysctl=sysctl,
                  instances=tuple(inst for _, inst in instances), ipvs=ipvs,
                  realserver=realserver, agent=agent, scripts=scripts,
                  sync_groups=sync_groups)


def _first_watched(raw: Any) -> Path | None:
    """Where the first health, quorum or sorry_server key of a raw ipvs section is."""
    services = raw.get("services") if isinstance(raw, dict) else None
    for i, service in enumerate(services if isinstance(services, list) else []):
        if not isinstance(service, dict):
            continue
        for key in ("health", "quorum", "sorry_server"):
            if key in service:
                return ("ipvs", "services", i, key)
        servers = service.get("real_servers")
        for j, rs in enumerate(servers if isinstance(servers, list) else []):
            if isinstance(rs, dict) and "health" in rs:
                return ("ipvs", "services", i, "real_servers", j, "health")
    return None


def loads(text: str, filename: str = "<config>", path: str | None = None) -> Config:
    """Parse and validate config text."""
    with collector_paused():
        return from_source(parse(text, filename), path or filename)
