"""`haguard realserver`: set up, tear down and check a DR / TUN real server."""

from __future__ import annotations

import ipaddress
from typing import Any

from haguard.adapters import kmod, sysctl, systemd
from haguard.adapters.netlink import Netlink
from haguard.core.config import Config, Vip
from haguard.core.ipvsconfig import RealServerRole
from haguard.core.rsplan import (
    AddHostAddress,
    EnsureLink,
    RemoveAddress,
    RsAction,
    RsObserved,
    SetSysctl,
    interface_for,
    plan_down,
    plan_up,
    problems,
    required_sysctls,
)
from haguard.errors import BadInput, OperationFailed

UNIT_DIR = "/etc/systemd/system"

def role_of(config: Config) -> RealServerRole:
    if config.realserver is None:
        raise BadInput(f"{config.path} has no 'realserver' section")
    return config.realserver


def observe(role: RealServerRole, netlink: Netlink) -> RsObserved:
    addresses: dict[str, frozenset[Any]] = {}
    for iface in {interface_for(role, v) for v in role.vips}:
        link = netlink.link(iface)
        addresses[iface] = frozenset((a.address, a.prefixlen) for a in netlink.addresses(link)) \
            if link is not None else frozenset()
    return RsObserved(addresses=addresses,
                      sysctls={k: sysctl.read(k) for k, _ in required_sysctls(role)})


def _execute(actions: tuple[RsAction, ...], netlink: Netlink) -> list[str]:
    done = []
    for action in actions:
        match action:
            case EnsureLink(name=name, module=module):
                if netlink.link(name) is None and module:
                    kmod.load(module)
                link = netlink.link(name)
                if link is None:
                    raise OperationFailed(f"{name} did not appear after loading {module}")
                netlink.set_up(link)
                done.append(f"{name} up")
            case SetSysctl(key=key, value=value, current=current):
                sysctl.write(key, value)
                done.append(f"{key} {current} -> {value}")
            case AddHostAddress(address=address, interface=iface):
                link = netlink.link(iface)
                if link is None:
                    raise OperationFailed(f"interface {iface} does not exist")
                netlink.add_vip(link, Vip(ipaddress.ip_interface(action.prefix)))
                done.append(f"added {action.prefix} to {iface}")
            case RemoveAddress(address=address, prefixlen=plen, interface=iface):
                link = netlink.link(iface)
                if link is not None:
                    netlink.remove_address(link, address, plen)
                done.append(f"removed {address}/{plen} from {iface}")
    return done


def up(config: Config) -> list[str]:
    role = role_of(config)
    with Netlink() as netlink:
        return _execute(plan_up(role, observe(role, netlink)), netlink)


def down(config: Config) -> list[str]:
    role = role_of(config)
    with Netlink() as netlink:
        return _execute(plan_down(role, observe(role, netlink)), netlink)


def status(config: Config, unit_dir: str = UNIT_DIR) -> dict[str, Any]:
    role = role_of(config)
    with Netlink() as netlink:
        observed = observe(role, netlink)
    return {"mode": role.mode, "vips": [str(v) for v in role.vips],
            "addresses": {iface: sorted(f"{a}/{p}" for a, p in addrs)
                          for iface, addrs in observed.addresses.items()},
            "sysctls": observed.sysctls, "unit": systemd.realserver_unit(unit_dir),
            "problems": problems(role, observed)}


def format_status(data: dict[str, Any]) -> str:
    lines = [f"real server ({data['mode'].upper()}) for {', '.join(data['vips'])}"]
    for iface, addrs in data["addresses"].items():
        lines.append(f"  {iface}: {', '.join(addrs) or 'no addresses'}")
    for key, value in data["sysctls"].items():
        lines.append(f"  {key} = {value}")
    lines.append(f"  boot persistence: {data['unit'] or 'no systemd unit installed'}")
    lines += [f"PROBLEM: {p}" for p in data["problems"]]
    lines.append("healthy" if not data["problems"] else "NOT healthy")
    return "\n".join(lines)


def install_unit(config: Config, unit_dir: str = UNIT_DIR) -> list[str]:
    """Write the unit that redoes `up` at boot; enable it when systemd runs."""
    role = role_of(config)
    return systemd.install_realserver_unit(config, role.mode,
                                           ", ".join(str(v) for v in role.vips), unit_dir)
