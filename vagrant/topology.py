"""The multi-VM topology, derived from the same config file(s) as `haguard lab`.

`haguard lab` lays out directors, real servers and a client in network namespaces from
one director config (conf/lab-dr-checked.yaml by default: LVS-DR with `haguard agent`
checking the real servers; its peer is derived) or two. This
module asks the lab for that very layout (haguard.lab.topology) and turns it into
virtual machines: the same node names and addresses, each lab segment a private network
(eth1, eth2, ... inside the VMs, since eth0 is Vagrant's management network), each
node's haguard config as it would be written on a real machine (default paths, the
interface names of the VMs, unicast peers pointing at the peer VM).

    python vagrant/topology.py json            # what the Vagrantfile reads
    python vagrant/topology.py show            # the same, for people

HAGUARD_VAGRANT_CONFIG names the director config(s), relative to the checkout,
separated by ':' (default conf/lab-dr-checked.yaml). Runs on the host with haguard importable.
"""

from __future__ import annotations

import argparse
import copy
import ipaddress
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import yaml  # noqa: E402

from haguard.lab.runner import load_lab  # noqa: E402
from haguard.lab.topology import derive_peer  # noqa: E402

DEFAULT_CONFIG = "conf/lab-dr-checked.yaml"
LAB_NAME = "vagrant"
# Vagrant's own network (DHCP, SSH). A documentation range the lab never uses for a
# lab segment unless a config has three interfaces, which is refused below.
MANAGEMENT = {"name": "haguard-mgmt", "cidr": "203.0.113.0/24"}
NETWORK_NAME = "haguard-lan{k}"
MAX_SEGMENTS = 2
# Where a node's haguard config lives on the VM; the provisioner writes it there.
NODE_CONFIG = "/etc/haguard/haguard.yaml"


@dataclass(frozen=True)
class Interface:
    ifname: str       # inside the VM
    network: str      # libvirt network name
    address: str      # with prefix


@dataclass(frozen=True)
class Host:
    name: str
    role: str                          # director | realserver | client
    interfaces: tuple[Interface, ...]
    config: dict[str, Any] | None      # the node's haguard config, None for the client
    http_ports: tuple[int, ...] = ()   # real servers: the ports their HTTP service serves

    @property
    def address(self) -> str:
        """The first private address, without prefix (what the tests talk to)."""
        return str(ipaddress.ip_interface(self.interfaces[0].address).ip)


@dataclass(frozen=True)
class Topology:
    configs: tuple[str, ...]
    networks: tuple[dict[str, str], ...]
    management: dict[str, str]
    vips: tuple[str, ...]
    hosts: tuple[Host, ...]
    services: tuple[dict[str, Any], ...] = field(default=())

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def by_role(self, role: str) -> tuple[Host, ...]:
        return tuple(h for h in self.hosts if h.role == role)

    def to_json(self) -> dict[str, Any]:
        return {"configs": list(self.configs), "networks": list(self.networks),
                "management": self.management, "vips": list(self.vips),
                "services": list(self.services), "node_config": NODE_CONFIG,
                "hosts": [asdict(h) | {"address": h.address, "config_yaml": _yaml(h, self.configs)}
                          for h in self.hosts]}


def _yaml(host: Host, sources: tuple[str, ...]) -> str | None:
    """The node's config file as the VM gets it, saying where it came from."""
    if host.config is None:
        return None
    return (f"# {host.name}: derived from {', '.join(sources)} by vagrant/topology.py\n"
            + yaml.safe_dump(host.config, sort_keys=False, default_flow_style=None))


def config_paths() -> list[str]:
    raw = os.environ.get("HAGUARD_VAGRANT_CONFIG") or DEFAULT_CONFIG
    return [p for p in raw.split(":") if p]


def _vm_ifname(lab_interfaces: tuple[str, ...], name: str) -> str:
    return f"eth{lab_interfaces.index(name) + 1}"


def _director_doc(doc: dict[str, Any], lab_interfaces: tuple[str, ...],
                  peer_addresses: dict[str, str]) -> dict[str, Any]:
    """The operator's director config as it is written on the VM.

    Paths are left as the operator wrote them (or haguard's defaults); only interface
    names change (the lab's eth0 is the VMs' eth1), and unicast peers point at the
    peer VM, as the lab points them at the peer namespace.
    """
    out = copy.deepcopy(doc)
    for inst in out["instances"]:
        lab_if = inst["interface"]
        vm_if = _vm_ifname(lab_interfaces, lab_if)
        inst["interface"] = vm_if
        for i, vip in enumerate(inst.get("vips") or []):
            if isinstance(vip, dict) and str(vip.get("label", "")).startswith(lab_if + ":"):
                inst["vips"][i] = dict(vip, label=vm_if + vip["label"][len(lab_if):])
        if inst.get("unicast_peers"):
            inst["unicast_peers"] = [peer_addresses[lab_if]]
    sync = (out.get("ipvs") or {}).get("sync")
    if sync and sync.get("interface") in lab_interfaces:
        sync["interface"] = _vm_ifname(lab_interfaces, sync["interface"])
    return out


def build(paths: list[str] | None = None) -> Topology:
    """Lay out the VMs for the director config(s), exactly as the lab lays out namespaces."""
    paths = paths or config_paths()
    full = [p if os.path.isabs(p) else os.path.join(ROOT, p) for p in paths]
    lab, _configs = load_lab(LAB_NAME, full)
    if len(lab.interfaces) > MAX_SEGMENTS:
        raise SystemExit(f"topology: the configs use {len(lab.interfaces)} interfaces; the "
                         f"multi-VM topology builds at most {MAX_SEGMENTS} private networks")
    docs = []
    for path in full:
        with open(path, encoding="utf-8") as fh:
            docs.append(yaml.safe_load(fh))
    if len(docs) == 1:
        docs.append(derive_peer(docs[0]))
    for leg in (*lab.client.legs, *(r.leg for r in lab.real_servers)):
        if leg.ipv4 == "":
            raise SystemExit("topology: the multi-VM topology is IPv4 (an IPv6 real server "
                             "needs a lab of its own)")

    networks = tuple({"name": NETWORK_NAME.format(k=k),
                      "cidr": str(ipaddress.ip_interface(lab.client.legs[k].ipv4).network)}
                     for k in range(len(lab.interfaces)))

    def interfaces(legs: Any) -> tuple[Interface, ...]:
        return tuple(Interface(ifname=f"eth{leg.segment + 1}",
                               network=NETWORK_NAME.format(k=leg.segment), address=leg.ipv4)
                     for leg in legs)

    hosts: list[Host] = []
    for i, director in enumerate(lab.directors):
        peer = lab.directors[1 - i]
        peer_addresses = {lab.interfaces[leg.segment]: str(ipaddress.ip_interface(leg.ipv4).ip)
                          for leg in peer.legs}
        hosts.append(Host(name=director.node, role="director",
                          interfaces=interfaces(director.legs),
                          config=_director_doc(docs[i], lab.interfaces, peer_addresses)))
    for rs in lab.real_servers:
        if rs.mode not in ("dr", "tun"):
            raise SystemExit(f"topology: real server {rs.node} uses {rs.mode}; the multi-VM "
                             "topology runs DR and TUN real servers")
        hosts.append(Host(name=rs.node, role="realserver", interfaces=interfaces((rs.leg,)),
                          config={"node": {"name": rs.node},
                                  "realserver": {"mode": rs.mode, "vips": list(rs.vips)}},
                          http_ports=rs.ports))
    hosts.append(Host(name="client", role="client", interfaces=interfaces(lab.client.legs),
                      config=None))
    services = []
    for doc in docs[:1]:
        for svc in (doc.get("ipvs") or {}).get("services") or []:
            services.append({"vip": str(svc.get("vip")), "port": svc.get("port"),
                             "protocol": svc.get("protocol", "tcp"),
                             "real_servers": [str(r["address"]) for r in svc["real_servers"]]})
    return Topology(configs=tuple(paths), networks=networks, management=MANAGEMENT,
                    vips=tuple(lab.vips), hosts=tuple(hosts), services=tuple(services))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("json", "show"))
    args = parser.parse_args(argv)
    topo = build()
    if args.command == "json":
        print(json.dumps(topo.to_json()))
        return 0
    print(f"from {', '.join(topo.configs)}; VIPs {', '.join(topo.vips)}")
    print(f"management network {topo.management['cidr']} (eth0, DHCP)")
    for net in topo.networks:
        print(f"private network {net['name']} {net['cidr']}")
    for h in topo.hosts:
        addrs = ", ".join(f"{i.ifname} {i.address}" for i in h.interfaces)
        print(f"  {h.name:<8} {h.role:<11} {addrs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
