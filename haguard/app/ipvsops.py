"""IPVS operations for the CLI and the transitions: diff, apply, remove, show."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from haguard.adapters import locks
from haguard.adapters.ipvs import Ipvs
from haguard.adapters.ipvsrecords import (
    UNKNOWN,
    digest,
    forget_applied,
    journal_applied,
    read_applied,
    read_owned,
    record_key,
    service_key,
    write_applied,
    write_owned,
)
from haguard.adapters.leverfiles import read_rs_levers
from haguard.adapters.statefile import StateDir
from haguard.core.config import Config
from haguard.core.health import as_published, with_levers
from haguard.core.ipvsconfig import IpvsSettings, ServiceKey, VirtualService
from haguard.core.ipvsplan import IpvsAction, describe, plan_reconcile, plan_removal
from haguard.errors import BadInput


def settings(config: Config) -> IpvsSettings:
    if config.ipvs is None:
        raise BadInput(f"{config.path} has no 'ipvs' section; nothing to reconcile")
    return config.ipvs


def services_for(config: Config, instance: str | None) -> tuple[VirtualService, ...]:
    """The services that move with ``instance``: those on its VIPs (fwmark services go
    with the first instance); all of them when ``instance`` is None."""
    services = settings(config).services
    if instance is None:
        return services
    inst = config.instance(instance)
    if inst is None:
        return ()
    vips = {str(v.address) for v in inst.vips}
    first = bool(config.instances) and config.instances[0].name == instance
    return tuple(s for s in services
                 if s.key.address in vips or (s.key.protocol == "fwmark" and first))


def effective(config: Config) -> Config:
    """``config`` with every watched service as the agent last published it and the
    operator's real-server levers applied, so a change made outside the agent (``ipvs
    apply``, a hook's transition) puts back no real server that health or a lever took out."""
    if config.ipvs is None:
        return config
    levers = read_rs_levers(config.node.lever_dir)
    if not config.ipvs.watched and not levers:
        return config
    snapshot = StateDir(config.node.state_dir).read_health() or {} if config.ipvs.watched \
        else {}
    published = {e.get("service"): e for e in snapshot.get("services", [])
                 if isinstance(e, dict)}
    services = tuple(with_levers(as_published(s, published.get(str(s.key))), levers)
                     for s in config.ipvs.services)
    return replace(config, ipvs=replace(config.ipvs, services=services))


def owner(config: Config, key: ServiceKey) -> str | None:
    """The instance a service moves with (see ``services_for``); None: no instance."""
    for i, inst in enumerate(config.instances):
        if key.protocol == "fwmark" and i == 0 or \
                key.address in {str(v.address) for v in inst.vips}:
            return inst.name
    return None


def apply_services(config: Config, services: Sequence[VirtualService],
                   connect: Callable[[], Ipvs] = Ipvs) -> list[str]:
    """Make these services in the kernel what they say (the checker's changes), with one
    read and write of the table's records for all of them."""
    with _table_lock(config), connect() as ipvs:
        plan = reconcile_named(ipvs, tuple(services), [s.key for s in services],
                               config.node.state_dir)
    return [describe(a) for a in plan]


def _table_lock(config: Config) -> contextlib.AbstractContextManager[None]:
    """One writer of the IPVS table per node: instances transition concurrently."""
    return locks.held(os.path.join(config.node.state_dir, "ipvs.lock"))


def _stale(owned: set[str], every: set[str]) -> set[ServiceKey]:
    """Services haguard applied before that have since left the config."""
    return {key for key in map(service_key, owned - every) if key is not None}


def diff(config: Config, instance: str | None = None,
         only: Sequence[ServiceKey] = ()) -> tuple[IpvsAction, ...]:
    """What `apply` would change, read from the kernel now (only the ``only`` services,
    when given)."""
    state_dir = config.node.state_dir
    if only:
        chosen, gone = _named(settings(config).services, only, read_owned(state_dir))
        with Ipvs() as ipvs:
            return plan_reconcile(chosen, ipvs.read(only), gone)
    with Ipvs() as ipvs:
        observed = ipvs.dump()
    every = {record_key(s.key) for s in settings(config).services}
    return plan_reconcile(services_for(config, instance), observed,
                          _stale(read_owned(state_dir), every))


def apply(config: Config, instance: str | None = None, incremental: bool = False,
          connect: Callable[[], Ipvs] = Ipvs) -> list[str]:
    """Make the kernel match the config for the services haguard owns; the changes made.

    ``incremental`` reads back from the kernel only the services whose config changed
    since the last successful apply (recorded in state_dir), instead of the whole table:
    a one-line change costs one service's read. A change made by hand to a service whose
    config did not change is left for the next full apply (or `diff`) to see.
    """
    # The whole config, or one instance's share of it (a transition).
    every = None if instance is None else [s.key for s in settings(config).services]
    timeouts = settings(config).timeouts
    changed: list[str] = []
    with _table_lock(config), connect() as ipvs:
        plan = reconcile(ipvs, services_for(config, instance), every, config.node.state_dir,
                         incremental)
        if timeouts is not None:
            current = ipvs.timeouts()
            wanted = timeouts.over(current)
            if wanted != current:
                ipvs.set_timeouts(wanted)
                changed.append("~ timeouts (tcp tcpfin udp) "
                               f"{' '.join(map(str, current))} -> {' '.join(map(str, wanted))}")
    return [describe(a) for a in plan] + changed


def reconcile(ipvs: Ipvs, wanted: tuple[VirtualService, ...],
              every: Iterable[ServiceKey] | None, state_dir: str,
              incremental: bool = False) -> tuple[IpvsAction, ...]:
    """Read (all, or what changed), plan, apply, and keep the ownership and applied records.

    ``every`` is every service of the config when ``wanted`` is only one instance's
    share, else None: an owned service outside it has left the config and is deleted."""
    owned = read_owned(state_dir)
    applied = read_applied(state_dir) if incremental else None
    keyed = [(record_key(s.key), digest(s), s) for s in wanted]
    every_k = {k for k, _, _ in keyed} if every is None else {record_key(k) for k in every}
    stale = _stale(owned, every_k)
    if applied is None:
        desired, observed = wanted, ipvs.dump()
    else:
        desired = tuple(s for k, d, s in keyed if applied.get(k) != d)
        observed = ipvs.read({s.key for s in desired} | stale)
    plan = plan_reconcile(desired, observed, stale)
    # Record ownership first: a service created and then interrupted is still ours.
    if not every_k <= owned:
        write_owned(state_dir, owned | every_k)
    forget_applied(state_dir)
    ipvs.apply(plan)
    if owned - every_k:
        write_owned(state_dir, every_k)
    record = {k: d for k, d in (applied or {}).items() if k in every_k}
    record.update((k, d) for k, d, _ in keyed)
    write_applied(state_dir, record)
    return plan


def apply_only(config: Config, only: Sequence[ServiceKey]) -> list[str]:
    """Reconcile only the named services (`apply --only`); the changes made."""
    with _table_lock(config), Ipvs() as ipvs:
        plan = reconcile_named(ipvs, settings(config).services, only, config.node.state_dir)
    return [describe(a) for a in plan]


def reconcile_named(ipvs: Ipvs, services: tuple[VirtualService, ...],
                    only: Sequence[ServiceKey], state_dir: str) -> tuple[IpvsAction, ...]:
    """Read back, plan and apply only the ``only`` services: one in ``services`` is made as
    configured; one that has left them is deleted if haguard owns it. Nothing else is
    read, and the records of the other services stay valid."""
    owned = read_owned(state_dir)
    chosen, gone = _named(services, only, owned)
    plan = plan_reconcile(chosen, ipvs.read(only), gone)
    chosen_k = {record_key(s.key) for s in chosen}
    if not chosen_k <= owned:
        write_owned(state_dir, owned | chosen_k)
    if plan:      # until this apply is known to have finished
        journal_applied(state_dir, [(record_key(k), UNKNOWN) for k in only])
    ipvs.apply(plan)
    if gone:
        write_owned(state_dir, (owned | chosen_k) - {record_key(k) for k in gone})
    journal_applied(state_dir, [(record_key(s.key), digest(s)) for s in chosen])
    return plan


def _named(services: tuple[VirtualService, ...], only: Sequence[ServiceKey],
           owned: set[str]) -> tuple[tuple[VirtualService, ...], set[ServiceKey]]:
    """The configured services among ``only``, and the rest (which must be haguard's)."""
    wanted = set(only)
    addresses = {k.address for k in wanted}
    # A str caches its hash and a ServiceKey computes its own: on a large table, compare
    # addresses first.
    chosen = tuple(s for s in services if s.key.address in addresses and s.key in wanted)
    gone = wanted - {s.key for s in chosen}
    foreign = sorted(str(k) for k in gone if record_key(k) not in owned)
    if foreign:
        raise BadInput(f"{', '.join(foreign)}: not in the config's ipvs.services, and not a "
                       "service haguard applied before; haguard leaves it alone")
    return chosen, gone


def remove(config: Config, instance: str | None = None,
           connect: Callable[[], Ipvs] = Ipvs) -> list[str]:
    """Delete the services haguard owns that move with ``instance`` (on_backup: remove)."""
    with _table_lock(config), connect() as ipvs:
        plan = plan_removal(services_for(config, instance), ipvs.dump())
        # The record would claim the deleted services are still in the kernel.
        forget_applied(config.node.state_dir)
        ipvs.apply(plan)
    return [describe(a) for a in plan]


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
