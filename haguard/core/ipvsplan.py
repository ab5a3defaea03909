"""Desired IPVS services vs the kernel's table -> the minimal ordered changes. Pure.

Only services haguard owns are touched: those in the config, plus those it applied
before and that have since left the config (recorded by the adapter). A service
someone added by hand with ipvsadm is never changed or deleted, and nothing is
flushed. New real servers are added before old ones leave, so a service is never
left without a destination in the middle of a change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from haguard.core.ipvsconfig import SVC_F_PERSISTENT, RealServer, ServiceKey, VirtualService

# Flag bits haguard manages (persistent, one-packet, the three scheduler flags);
# the kernel also reports IP_VS_SVC_F_HASHED, which is its own business.
MANAGED_FLAG_BITS = 0x01 | 0x04 | 0x08 | 0x10 | 0x20


@dataclass(frozen=True)
class AddService:
    service: VirtualService


@dataclass(frozen=True)
class SetService:
    service: VirtualService
    changes: tuple[str, ...]


@dataclass(frozen=True)
class DelService:
    key: ServiceKey


@dataclass(frozen=True)
class AddDest:
    key: ServiceKey
    server: RealServer


@dataclass(frozen=True)
class SetDest:
    key: ServiceKey
    server: RealServer
    changes: tuple[str, ...]


@dataclass(frozen=True)
class DelDest:
    key: ServiceKey
    server: RealServer


IpvsAction = AddService | SetService | DelService | AddDest | SetDest | DelDest


def _service_changes(want: VirtualService, have: VirtualService) -> tuple[str, ...]:
    changes = []
    if want.scheduler != have.scheduler:
        changes.append(f"scheduler {have.scheduler} -> {want.scheduler}")
    # The persistent bit is reported as persistence below, not as a flag.
    scheduler_bits = MANAGED_FLAG_BITS & ~SVC_F_PERSISTENT
    if want.flag_bits & scheduler_bits != have.flag_bits & scheduler_bits:
        changes.append(f"flags {_flags(have)} -> {_flags(want)}")
    wp, hp = want.persistence, have.persistence
    if (wp and wp.timeout_s) != (hp and hp.timeout_s):
        changes.append(f"persistence {hp.timeout_s if hp else 'off'} -> "
                       f"{wp.timeout_s if wp else 'off'}")
    if wp and hp and wp.netmask != hp.netmask:
        changes.append(f"netmask {hp.netmask} -> {wp.netmask}")
    return tuple(changes)


def _flags(service: VirtualService) -> str:
    return ",".join((*service.flags, *(("ops",) if service.ops else ()))) or "none"


_DEST_FIELDS = ("forwarding", "weight", "upper_threshold", "lower_threshold", "tunnel_type",
                "tunnel_port")


def _dest_changes(want: RealServer, have: RealServer) -> tuple[str, ...]:
    changes = []
    for name in _DEST_FIELDS:
        if name.startswith("tunnel") and want.forwarding != "tun":
            continue  # meaningless outside TUN; the kernel reports zeros
        old, new = getattr(have, name), getattr(want, name)
        if old != new:
            changes.append(f"{name} {old} -> {new}")
    return tuple(changes)


def plan_reconcile(desired: Iterable[VirtualService],
                   observed: Mapping[ServiceKey, VirtualService],
                   previously_owned: Iterable[ServiceKey] = ()) -> tuple[IpvsAction, ...]:
    """The changes that make the kernel match ``desired`` for the services haguard owns."""
    desired = tuple(desired)
    adds: list[IpvsAction] = []
    sets: list[IpvsAction] = []
    dels: list[IpvsAction] = []
    for want in desired:
        have = observed.get(want.key)
        if have is None:
            adds.append(AddService(want))
            adds += [AddDest(want.key, rs) for rs in want.real_servers]
            continue
        # The usual case on a large table is "nothing changed": settle it with one
        # comparison of the service fields and one of the real servers as sets (the
        # kernel lists them newest first, so their order tells nothing).
        same_service = (want.scheduler == have.scheduler and want.flags == have.flags
                        and want.persistence == have.persistence and want.ops == have.ops)
        if same_service and (want.real_servers == have.real_servers
                             or (len(want.real_servers) == len(have.real_servers)
                                 and set(want.real_servers) == set(have.real_servers))):
            continue
        changes = () if same_service else _service_changes(want, have)
        if changes:
            sets.append(SetService(want, changes))
        have_dests = {rs.key: rs for rs in have.real_servers}
        want_keys = {rs.key for rs in want.real_servers}
        for rs in want.real_servers:
            old = have_dests.get(rs.key)
            if old is None:
                adds.append(AddDest(want.key, rs))
            else:
                dest_changes = _dest_changes(rs, old)
                if dest_changes:
                    sets.append(SetDest(want.key, rs, dest_changes))
        dels += [DelDest(want.key, rs) for k, rs in have_dests.items() if k not in want_keys]
    wanted = {s.key for s in desired}
    for key in sorted(set(previously_owned) - wanted):
        if key in observed:
            dels.append(DelService(key))
    return tuple(adds + sets + dels)


def plan_removal(desired: Iterable[VirtualService],
                 observed: Mapping[ServiceKey, VirtualService],
                 previously_owned: Iterable[ServiceKey] = ()) -> tuple[IpvsAction, ...]:
    """Remove every service haguard owns that the kernel has (``on_backup: remove``)."""
    owned = {s.key for s in desired} | set(previously_owned)
    return tuple(DelService(key) for key in sorted(owned) if key in observed)


def describe(action: IpvsAction) -> str:
    """One line per change, for `haguard ipvs diff` and the logs."""
    match action:
        case AddService(service=s):
            extra = f", persistent {s.persistence.timeout_s} s" if s.persistence else ""
            flags = f", flags {_flags(s)}" if s.flags or s.ops else ""
            return f"+ service {s.key} ({s.scheduler}{flags}{extra})"
        case SetService(service=s, changes=changes):
            return f"~ service {s.key}: {'; '.join(changes)}"
        case DelService(key=key):
            return f"- service {key}"
        case AddDest(key=key, server=rs):
            return f"+ {key} -> {rs} ({rs.forwarding}, weight {rs.weight})"
        case SetDest(key=key, server=rs, changes=changes):
            return f"~ {key} -> {rs}: {'; '.join(changes)}"
        case DelDest(key=key, server=rs):
            return f"- {key} -> {rs}"
    return repr(action)
