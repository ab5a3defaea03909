"""IPVS operations for the CLI and the transitions: diff, apply, remove, show."""

from __future__ import annotations

from typing import Any

from haguard.adapters.ipvs import Ipvs, read_owned, write_owned
from haguard.core.config import Config
from haguard.core.ipvsconfig import IpvsSettings
from haguard.core.ipvsplan import IpvsAction, describe, plan_reconcile, plan_removal
from haguard.errors import BadInput


def settings(config: Config) -> IpvsSettings:
    if config.ipvs is None:
        raise BadInput(f"{config.path} has no 'ipvs' section; nothing to reconcile")
    return config.ipvs


def diff(config: Config) -> tuple[IpvsAction, ...]:
    """What `apply` would change, read from the kernel now."""
    wanted = settings(config)
    with Ipvs() as ipvs:
        return plan_reconcile(wanted.services, ipvs.dump(), read_owned(config.node.state_dir))


def apply(config: Config) -> list[str]:
    """Make the kernel match the config for the services haguard owns; the changes made."""
    wanted = settings(config)
    state_dir = config.node.state_dir
    with Ipvs() as ipvs:
        plan = plan_reconcile(wanted.services, ipvs.dump(), read_owned(state_dir))
        # Record ownership first: a service created and then interrupted is still ours.
        write_owned(state_dir, {s.key for s in wanted.services} | set(read_owned(state_dir)))
        done = ipvs.apply(plan)
    write_owned(state_dir, {s.key for s in wanted.services})
    return done


def remove(config: Config) -> list[str]:
    """Delete every service haguard owns (on_backup: remove)."""
    wanted = settings(config)
    state_dir = config.node.state_dir
    with Ipvs() as ipvs:
        plan = plan_removal(wanted.services, ipvs.dump(), read_owned(state_dir))
        return ipvs.apply(plan)


def show(config: Config | None) -> dict[str, Any]:
    """The kernel's table as JSON-able data; services this config owns are marked."""
    owned = {s.key for s in config.ipvs.services} if config and config.ipvs else set()
    with Ipvs() as ipvs:
        table = ipvs.dump()
        stats = ipvs.stats()
    services = []
    for key in sorted(table):
        svc = table[key]
        st = stats.get(key)
        services.append({
            "service": str(key), "protocol": key.protocol, "address": key.address,
            "port": key.port, "family": key.family, "scheduler": svc.scheduler,
            "flags": list(svc.flags),
            "persistence": ({"timeout_s": svc.persistence.timeout_s,
                             "netmask": svc.persistence.netmask} if svc.persistence else None),
            "owned": key in owned,
            "connections": st.connections if st else None,
            "real_servers": [{"address": str(rs.address), "port": rs.port,
                              "forwarding": rs.forwarding, "weight": rs.weight,
                              "upper_threshold": rs.upper_threshold,
                              "lower_threshold": rs.lower_threshold,
                              "active": st.active.get(str(rs)) if st else None,
                              "inactive": st.inactive.get(str(rs)) if st else None}
                             for rs in svc.real_servers]})
    return {"services": services}


def format_show(data: dict[str, Any]) -> str:
    lines = []
    for s in data["services"]:
        extra = f" persistent {s['persistence']['timeout_s']}" if s["persistence"] else ""
        flags = f" ({','.join(s['flags'])})" if s["flags"] else ""
        mark = "" if s["owned"] else "  [not in this config]"
        lines.append(f"{s['service']} {s['scheduler']}{flags}{extra}  "
                     f"conns {s['connections']}{mark}")
        for rs in s["real_servers"]:
            lines.append(f"  -> {rs['address']}:{rs['port']} {rs['forwarding']} weight "
                         f"{rs['weight']} active {rs['active']} inactive {rs['inactive']}")
    return "\n".join(lines) or "no IPVS services"


def format_plan(plan: tuple[IpvsAction, ...]) -> str:
    return "\n".join(describe(a) for a in plan) or "nothing to change"
