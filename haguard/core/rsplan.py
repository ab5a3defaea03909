"""What a DR / TUN real server needs, as a plan: pure.

DR: each VIP as a host address on lo, and ARP hardened so this host never answers for
(or announces) the VIP on its real interface: arp_ignore=1 (answer only for addresses
on the interface asked), arp_announce=2 (always use the best local source). TUN: the
VIPs on the IP-in-IP device (tunl0, ip6tnl0 for IPv6) instead, the same ARP settings,
and rp_filter off there: decapsulated packets arrive from the director's address, not
the client's, and strict reverse-path filtering would drop them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from haguard.core.ipvsconfig import IPAddress, RealServerRole

ARP_SYSCTLS = (("net.ipv4.conf.all.arp_ignore", "1"), ("net.ipv4.conf.all.arp_announce", "2"))
TUN_MODULES = {4: ("ipip", "tunl0"), 6: ("ip6_tunnel", "ip6tnl0")}


@dataclass(frozen=True)
class EnsureLink:
    """The device exists (loading ``module`` if it has one) and is up."""

    name: str
    module: str | None = None


@dataclass(frozen=True)
class SetSysctl:
    key: str
    value: str
    current: str | None


@dataclass(frozen=True)
class AddHostAddress:
    address: IPAddress
    interface: str

    @property
    def prefix(self) -> str:
        return f"{self.address}/{self.address.max_prefixlen}"


@dataclass(frozen=True)
class RemoveAddress:
    address: IPAddress
    prefixlen: int
    interface: str


RsAction = EnsureLink | SetSysctl | AddHostAddress | RemoveAddress


@dataclass(frozen=True)
class RsObserved:
    """Addresses per interface ({ifname: {(ip, prefixlen)}}) and current sysctl values."""

    addresses: dict[str, frozenset[tuple[IPAddress, int]]]
    sysctls: dict[str, str | None]


def interface_for(role: RealServerRole, address: IPAddress) -> str:
    return "lo" if role.mode == "dr" else TUN_MODULES[address.version][1]


def required_sysctls(role: RealServerRole) -> tuple[tuple[str, str], ...]:
    out = list(ARP_SYSCTLS)
    if role.mode == "tun" and any(v.version == 4 for v in role.vips):
        out += [("net.ipv4.conf.all.rp_filter", "0"), ("net.ipv4.conf.tunl0.rp_filter", "0")]
    return tuple(out)


def plan_up(role: RealServerRole, observed: RsObserved) -> tuple[RsAction, ...]:
    """Links, then sysctls, then the VIPs (so the host never answers ARP for them)."""
    actions: list[RsAction] = []
    if role.mode == "dr":
        actions.append(EnsureLink("lo"))
    else:
        for family in sorted({v.version for v in role.vips}):
            module, name = TUN_MODULES[family]
            actions.append(EnsureLink(name, module))
    for key, value in required_sysctls(role):
        current = observed.sysctls.get(key)
        if current is None or current.split() != value.split():
            actions.append(SetSysctl(key, value, current))
    for vip in role.vips:
        iface = interface_for(role, vip)
        present = observed.addresses.get(iface, frozenset())
        # Any other prefix of the VIP here (lo:1 ... netmask 255.255.255.0) goes first.
        for addr, plen in sorted(present, key=str):
            if addr == vip and plen != vip.max_prefixlen:
                actions.append(RemoveAddress(addr, plen, iface))
        if (vip, vip.max_prefixlen) not in present:
            actions.append(AddHostAddress(vip, iface))
    return tuple(actions)


def plan_down(role: RealServerRole, observed: RsObserved) -> tuple[RsAction, ...]:
    """Remove the VIPs (any prefix); sysctls stay, they are harmless and shared."""
    actions: list[RsAction] = []
    for vip in role.vips:
        iface = interface_for(role, vip)
        for addr, plen in sorted(observed.addresses.get(iface, frozenset()), key=str):
            if addr == vip:
                actions.append(RemoveAddress(addr, plen, iface))
    return tuple(actions)


def problems(role: RealServerRole, observed: RsObserved) -> list[str]:
    """What is wrong with the host as found, in words an operator can act on."""
    found = []
    for vip in role.vips:
        iface = interface_for(role, vip)
        present = observed.addresses.get(iface, frozenset())
        for addr, plen in present:
            if addr == vip and plen != vip.max_prefixlen:
                net = ipaddress.ip_interface(f"{addr}/{plen}").network
                found.append(f"{vip}/{plen} on {iface}: a real server must hold the VIP as a "
                             f"host address (/{vip.max_prefixlen}); with /{plen} it claims "
                             f"{net} and answers for its neighbours")
        if (vip, vip.max_prefixlen) not in present:
            found.append(f"{vip} is not on {iface}")
    for key, value in required_sysctls(role):
        current = observed.sysctls.get(key)
        if current is None or current.split() != value.split():
            found.append(f"{key} is {current}, needs {value}")
    return found
