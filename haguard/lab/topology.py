"""The lab's shape, computed from the operator's config(s): pure values, no I/O.

One switch namespace holds a Linux bridge per interface name the instances use; each
director gets a veth with that very name on each bridge; the client gets one leg per
bridge. Hosts are numbered in documentation ranges (RFC 5737 / RFC 3849). Given one
config, the peer director is derived from it (priority 50 lower, state BACKUP).
"""

from __future__ import annotations

import copy
import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from haguard.core.config import Config
from haguard.errors import BadInput

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

LAB_ROOT = "/run/haguard-lab"
# Where the hooks go when LAB_ROOT's file system is mounted noexec, as Debian's
# initramfs mounts /run: keepalived could not run them there.
EXEC_ROOT = "/var/lib/haguard-lab"
_LAB_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,11}$")

SEGMENTS_V4 = (ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("198.51.100.0/24"),
               ipaddress.ip_network("203.0.113.0/24"))
SEGMENT_V6 = "2001:db8:0:{k:x}::/64"
CLIENT_HOST = 2
CLIENT_EXTRA_HOSTS = range(3, 10)
NAMESPACED_SYSCTLS = ("net.ipv4.", "net.ipv6.")
DIRECTOR_HOST_BASE = 11


@dataclass(frozen=True)
class Leg:
    """One interface of one host, plugged into a segment's bridge."""

    segment: int
    ifname: str           # name inside the host's namespace
    port: str             # the veth peer's name inside the switch namespace
    ipv4: str             # with prefix
    ipv6: str


@dataclass(frozen=True)
class Director:
    node: str
    namespace: str
    legs: tuple[Leg, ...]
    config_doc: dict[str, Any]   # the node config the lab writes and runs
    workdir: str

    @property
    def config_path(self) -> str:
        return f"{self.workdir}/haguard.yaml"


@dataclass(frozen=True)
class Client:
    namespace: str
    legs: tuple[Leg, ...]
    onlink_routes: tuple[tuple[str, str], ...]   # (VIP/host-prefix, ifname)
    extra_ipv4: tuple[str, ...] = ()             # more source addresses, for per-source tests


@dataclass(frozen=True)
class RealServerNode:
    """A real server of the config's ipvs section, serving HTTP on its ports."""

    node: str
    namespace: str
    address: str                 # as configured
    leg: Leg
    mode: str                    # dr | tun | nat
    vips: tuple[str, ...]        # the service VIPs it serves (DR/TUN: held on lo/tunl0)
    ports: tuple[int, ...]
    gateway: str | None          # NAT: the instance VIP that routes its replies back
    workdir: str

    @property
    def config_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"node": {"name": self.node, "state_dir": f"{self.workdir}/state"}}
        if self.mode in ("dr", "tun"):
            doc["realserver"] = {"mode": self.mode, "vips": list(self.vips)}
        return doc

    @property
    def config_path(self) -> str:
        return f"{self.workdir}/haguard.yaml"


@dataclass(frozen=True)
class Lab:
    name: str
    workdir: str
    switch_namespace: str
    bridges: tuple[str, ...]
    interfaces: tuple[str, ...]
    directors: tuple[Director, ...]
    client: Client
    vips: tuple[str, ...]
    real_servers: tuple[RealServerNode, ...] = ()
    # The device of each VIP that is not on the first interface (vips[].interface).
    vip_interfaces: tuple[tuple[str, str], ...] = ()
    hooks_in_exec_root: bool = False     # the hooks in EXEC_ROOT, not in the workdir

    @property
    def hooks_dir(self) -> str:
        return hooks_dir(self.name, self.hooks_in_exec_root)

    @property
    def namespaces(self) -> tuple[str, ...]:
        return (self.switch_namespace, self.client.namespace,
                *(d.namespace for d in self.directors),
                *(r.namespace for r in self.real_servers))


def check_lab_name(name: str) -> str:
    if not _LAB_NAME_RE.match(name):
        raise BadInput(f"lab name {name!r}: use 1-12 lowercase letters, digits or '-'")
    return name


def peer_name(name: str) -> str:
    """lb1 -> lb2, web-a -> web-a-peer: the derived director's node name."""
    match = re.match(r"^(.*?)(\d+)$", name)
    if match:
        return f"{match.group(1)}{int(match.group(2)) + 1}"
    return f"{name}-peer"


def derive_peer(doc: dict[str, Any]) -> dict[str, Any]:
    """The second director of a one-config lab: same instances, lower priority, BACKUP."""
    peer = copy.deepcopy(doc)
    peer["node"]["name"] = peer_name(doc["node"]["name"])
    for inst in peer["instances"]:
        inst["priority"] = max(1, int(inst["priority"]) - 50)
        inst["state"] = "BACKUP"
    return peer


def hooks_dir(name: str, in_exec_root: bool) -> str:
    """Where lab ``name`` keeps the hooks keepalived runs."""
    return f"{EXEC_ROOT if in_exec_root else LAB_ROOT}/{name}/hooks"


def build(name: str, configs: list[Config], docs: list[dict[str, Any]],
          hooks_in_exec_root: bool = False, outside: tuple[IPNetwork, ...] = ()) -> Lab:
    """Lay out the lab for one or two director configs (``docs`` are their raw YAML);
    ``hooks_in_exec_root`` where LAB_ROOT cannot hold programs. Real servers in an
    ``outside`` network get no lab host: the caller serves them (bench/takeover.py's
    farm answers for ten thousand from one namespace)."""
    check_lab_name(name)
    if len(configs) not in (1, 2) or len(configs) != len(docs):
        raise BadInput("lab: give one director config (its peer is derived) or two")
    if len(docs) == 1:
        docs = [docs[0], derive_peer(docs[0])]
    names = [d["node"]["name"] for d in docs]
    if len(set(names)) != 2:
        raise BadInput(f"lab: both directors are called {names[0]!r}; give them distinct node.name")
    interfaces: list[str] = []
    for config in configs:
        for inst in config.instances:
            # A segment per device: the instances' interfaces, then vips[].interface.
            for device in [inst.interface] + [d for d, _ in inst.vips_by_device()]:
                if device not in interfaces:
                    interfaces.append(device)
    if len(interfaces) > len(SEGMENTS_V4):
        raise BadInput(f"lab: the instances use {len(interfaces)} interfaces; the lab "
                       f"builds at most {len(SEGMENTS_V4)} segments")
    workdir = f"{LAB_ROOT}/{name}"
    prefix = f"hg-{name}"

    def leg(segment: int, host: int, port: str) -> Leg:
        v4 = SEGMENTS_V4[segment]
        v6 = ipaddress.ip_network(SEGMENT_V6.format(k=segment))
        return Leg(segment=segment, ifname=interfaces[segment], port=port,
                   ipv4=f"{v4.network_address + host}/{v4.prefixlen}",
                   ipv6=f"{v6.network_address + host}/{v6.prefixlen}")

    host_addresses: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    directors = []
    for i, doc in enumerate(docs):
        legs = tuple(leg(k, DIRECTOR_HOST_BASE + i, f"d{i}-{k}") for k in range(len(interfaces)))
        host_addresses.update(ipaddress.ip_interface(x.ipv4).ip for x in legs)
        host_addresses.update(ipaddress.ip_interface(x.ipv6).ip for x in legs)
        directors.append((doc, legs))
    client_legs = tuple(leg(k, CLIENT_HOST, f"c-{k}") for k in range(len(interfaces)))
    host_addresses.update(ipaddress.ip_interface(x.ipv4).ip for x in client_legs)
    host_addresses.update(ipaddress.ip_interface(x.ipv6).ip for x in client_legs)

    vips: list[str] = []
    vip_interfaces: list[tuple[str, str]] = []
    routes: list[tuple[str, str]] = []
    for config in configs:
        for inst in config.instances:
            for vip in inst.vips:
                segment = interfaces.index(inst.device_of(vip))
                if vip.address in host_addresses:
                    raise BadInput(f"lab: VIP {vip} collides with a lab host address; "
                                   "pick another VIP for the lab")
                if str(vip.address) in vips:
                    continue
                vips.append(str(vip.address))
                if inst.device_of(vip) != interfaces[0]:
                    vip_interfaces.append((str(vip.address), inst.device_of(vip)))
                on_link = ipaddress.ip_interface(
                    client_legs[segment].ipv4 if vip.family == 4 else client_legs[segment].ipv6)
                if vip.address not in on_link.network:
                    routes.append((f"{vip.address}/{vip.address.max_prefixlen}",
                                   inst.device_of(vip)))

    hooks = hooks_dir(name, hooks_in_exec_root)
    built = []
    for i, (doc, legs) in enumerate(directors):
        other_legs = directors[1 - i][1]
        built.append(Director(node=doc["node"]["name"], namespace=f"{prefix}-d{i}",
                              legs=legs, workdir=f"{workdir}/{doc['node']['name']}",
                              config_doc=_lab_doc(doc, f"{workdir}/{doc['node']['name']}",
                                                  hooks, interfaces, legs, other_legs)))
    extra = tuple(f"{SEGMENTS_V4[0].network_address + h}/{SEGMENTS_V4[0].prefixlen}"
                  for h in CLIENT_EXTRA_HOSTS)
    host_addresses.update(ipaddress.ip_interface(a).ip for a in extra)
    real_servers = _real_servers(configs[0], interfaces, workdir, prefix, host_addresses,
                                 outside)
    return Lab(name=name, workdir=workdir, switch_namespace=f"{prefix}-sw",
               bridges=tuple(f"br{k}" for k in range(len(interfaces))),
               interfaces=tuple(interfaces), directors=tuple(built),
               client=Client(namespace=f"{prefix}-cl", legs=client_legs,
                             onlink_routes=tuple(routes), extra_ipv4=extra),
               vips=tuple(vips), real_servers=real_servers,
               vip_interfaces=tuple(vip_interfaces), hooks_in_exec_root=hooks_in_exec_root)


def _segment_of(address: ipaddress.IPv4Address | ipaddress.IPv6Address,
                interfaces: list[str]) -> int | None:
    for k in range(len(interfaces)):
        net = SEGMENTS_V4[k] if address.version == 4 else \
            ipaddress.ip_network(SEGMENT_V6.format(k=k))
        if address in net:
            return k
    return None


def _real_servers(config: Config, interfaces: list[str], workdir: str, prefix: str,
                  taken: set[Any], outside: tuple[IPNetwork, ...] = ()
                  ) -> tuple[RealServerNode, ...]:
    """One lab host per real server (and sorry server) address in the config's ipvs
    section, but those in an ``outside`` network."""
    if config.ipvs is None:
        return ()
    found: dict[str, dict[str, Any]] = {}
    for service in config.ipvs.services:
        # The sorry server is a host of its own too: it answers when the others are down.
        for rs in service.real_servers + ((service.sorry_server,) if service.sorry_server
                                          else ()):
            if any(rs.address in net for net in outside):
                continue
            entry = found.setdefault(str(rs.address), {"address": rs.address, "modes": set(),
                                                       "vips": [], "ports": []})
            entry["modes"].add(rs.forwarding)
            if service.key.protocol != "fwmark" and service.key.address not in entry["vips"]:
                entry["vips"].append(service.key.address)
            if rs.port and rs.port not in entry["ports"]:
                entry["ports"].append(rs.port)
    instance_vips = [v for inst in config.instances for v in inst.vips]
    nodes = []
    for i, (text, entry) in enumerate(found.items()):
        address = entry["address"]
        if len(entry["modes"]) != 1:
            raise BadInput(f"lab: real server {text} is used with several forwarding methods "
                           f"({', '.join(sorted(entry['modes']))}); the lab sets up one per host")
        if address in taken:
            raise BadInput(f"lab: real server {text} collides with a lab host address")
        segment = _segment_of(address, interfaces)
        if segment is None:
            raise BadInput(f"lab: real server {text} is in none of the lab's segments "
                           f"({', '.join(str(SEGMENTS_V4[k]) for k in range(len(interfaces)))})")
        mode = next(iter(entry["modes"]))
        gateway = None
        if mode == "nat":
            gateway = next((str(v.address) for v in instance_vips
                            if v.family == address.version
                            and _segment_of(v.address, interfaces) == segment), None)
            if gateway is None:
                raise BadInput(f"lab: NAT real server {text} needs a VIP on its own segment as "
                               "its gateway (an instance on that interface)")
        net = SEGMENTS_V4[segment] if address.version == 4 else \
            ipaddress.ip_network(SEGMENT_V6.format(k=segment))
        name = f"rs{i + 1}"
        leg = Leg(segment=segment, ifname="eth0", port=f"r{i}-{segment}",
                  ipv4=f"{address}/{net.prefixlen}" if address.version == 4 else "",
                  ipv6=f"{address}/{net.prefixlen}" if address.version == 6 else "")
        nodes.append(RealServerNode(node=name, namespace=f"{prefix}-r{i}", address=text, leg=leg,
                                    mode=mode, vips=tuple(entry["vips"]),
                                    ports=tuple(entry["ports"]) or (80,), gateway=gateway,
                                    workdir=f"{workdir}/{name}"))
    return tuple(nodes)


def _lab_doc(doc: dict[str, Any], workdir: str, hooks_dir: str, interfaces: list[str],
             own_legs: tuple[Leg, ...], peer_legs: tuple[Leg, ...]) -> dict[str, Any]:
    """The operator's document with paths moved into the lab and peers made lab-local."""
    out = copy.deepcopy(doc)
    out["node"]["state_dir"] = f"{workdir}/state"
    out["node"]["log_file"] = f"{workdir}/haguard.log"
    out["node"]["lever_dir"] = f"{workdir}/levers"
    keepalived = dict(out.get("keepalived") or {})
    keepalived.update(config=f"{workdir}/keepalived.conf", hooks_dir=hooks_dir,
                      pid_file=f"{workdir}/keepalived.pid",
                      vrrp_pid_file=f"{workdir}/keepalived-vrrp.pid")
    out["keepalived"] = keepalived
    if "agent" in out:
        out["agent"] = {**(out["agent"] or {}), "fifo": f"{workdir}/notify.fifo"}
    # Only these sysctls are per network namespace; others would change the host.
    sysctl = out.get("sysctl") or {}
    out["sysctl"] = {k: v for k, v in sysctl.items() if str(k).startswith(NAMESPACED_SYSCTLS)}
    for inst in out["instances"]:
        if inst.get("unicast_peers"):
            at = interfaces.index(inst["interface"])
            inst["unicast_peers"] = [str(ipaddress.ip_interface(peer_legs[at].ipv4).ip)]
            if inst.get("unicast_src_ip"):
                inst["unicast_src_ip"] = str(ipaddress.ip_interface(own_legs[at].ipv4).ip)
    return out
