"""(instance, state, observed system) -> the ordered actions of a transition.

Pure: the executor (app/execute.py) does the I/O. On MASTER: sysctls, the IPVS rules
(in place before traffic arrives), the VIPs, the announcements, the sync daemon, the
record. On the passive states the VIPs go first, so this node stops attracting traffic
at once; ARCHITECTURE.md walks the whole path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from haguard.core.config import Announce, Instance, IPAddress, Vip
from haguard.core.events import ACTIVE_STATES
from haguard.errors import OperationFailed

if TYPE_CHECKING:
    from haguard.core.ipvsconfig import IpvsSettings


@dataclass(frozen=True)
class Device:
    """One device a VIP lives on, as observed: its index (None: it does not exist) and
    the addresses on it."""

    index: int | None
    addresses: frozenset[tuple[IPAddress, int]] = frozenset()


@dataclass(frozen=True)
class Observed:
    """What the node looks like right now, as far as one transition cares: the
    instance's interface, and ``others``, every other device its VIPs live on."""

    interface_index: int | None
    addresses: frozenset[tuple[IPAddress, int]] = frozenset()
    sysctls: Mapping[str, str | None] = field(default_factory=dict)
    others: Mapping[str, Device] = field(default_factory=dict)

    def device(self, instance: Instance, name: str) -> Device:
        """The observed ``name`` (the instance's interface or one of ``others``)."""
        if name == instance.interface:
            return Device(self.interface_index, self.addresses)
        return self.others.get(name, Device(None))


@dataclass(frozen=True)
class StopAnnouncer:
    """End the background re-announcer of an earlier MASTER, if any."""


@dataclass(frozen=True)
class SetSysctl:
    key: str
    value: str
    current: str | None


@dataclass(frozen=True)
class AddVip:
    vip: Vip
    interface: str


@dataclass(frozen=True)
class RemoveVip:
    address: IPAddress
    prefixlen: int
    interface: str


@dataclass(frozen=True)
class SendAnnouncements:
    interface: str
    vips: tuple[Vip, ...]
    count: int
    interval_ms: int


@dataclass(frozen=True)
class StartAnnouncer:
    """Repeat the burst after ``repeat_after_s`` and every ``refresh_s`` while MASTER."""

    interface: str
    vips: tuple[Vip, ...]
    announce: Announce


@dataclass(frozen=True)
class ReconcileIpvs:
    """Make the kernel's IPVS table match the config (before the VIPs draw traffic)."""


@dataclass(frozen=True)
class RemoveIpvs:
    """Delete the IPVS services haguard owns (``ipvs.on_backup: remove``)."""


@dataclass(frozen=True)
class SyncDaemon:
    role: str          # master | backup
    interface: str
    syncid: int


@dataclass(frozen=True)
class RecordState:
    state: str


Action = (StopAnnouncer | SetSysctl | ReconcileIpvs | AddVip | RemoveVip | SendAnnouncements
          | StartAnnouncer | RemoveIpvs | SyncDaemon | RecordState)


@dataclass(frozen=True)
class Plan:
    instance: str
    state: str
    actions: tuple[Action, ...]


def plan_transition(instance: Instance, state: str, sysctls: tuple[tuple[str, str], ...],
                    observed: Observed, ipvs: IpvsSettings | None = None,
                    drives_sync: bool = True, ipvs_current: bool = False) -> Plan:
    """Plan one transition; raise OperationFailed when MASTER cannot be honoured.

    With an ``ipvs`` section: MASTER reconciles the rules before adding the VIPs and
    turns the sync daemon to master after announcing; the passive states remove the
    VIPs first, then remove the rules (``on_backup: remove``) or, on BACKUP and FAULT,
    keep them reconciled (``keep``), then sync as backup. Only an instance that
    ``drives_sync`` (see Config.drives_sync) touches the node's one sync daemon.

    ``ipvs_current``: the caller knows the rules already stand as wanted (the agent, whose
    BACKUP kept them with ``on_backup: keep`` and has written every change since). MASTER
    then announces first and reconciles after, to verify: a takeover costs the same on a
    table of ten thousand services as on one. BACKUP and FAULT then leave them alone.
    """
    actions: list[Action] = [StopAnnouncer()]
    groups = instance.vips_by_device()
    if state in ACTIVE_STATES:
        missing = [name for name in [instance.interface] + [d for d, _ in groups]
                   if observed.device(instance, name).index is None]
        if missing:
            what = instance.interface if missing[0] == instance.interface else \
                f"{missing[0]} (vips[].interface)"
            raise OperationFailed(
                f"{instance.name}: interface {what} does not exist on this node; nothing "
                "was changed")
        for key, value in sysctls:
            current = observed.sysctls.get(key)
            if current is None or current.split() != value.split():
                actions.append(SetSysctl(key, value, current))
        verify_after = ipvs is not None and ipvs.services and ipvs_current and \
            ipvs.on_backup == "keep"
        if ipvs is not None and ipvs.services and not verify_after:
            actions.append(ReconcileIpvs())
        for vip in instance.vips:
            device = instance.device_of(vip)
            present = observed.device(instance, device).addresses
            wrong = sorted(p for a, p in present if a == vip.address and p != vip.prefixlen)
            actions += [RemoveVip(vip.address, p, device) for p in wrong]
            if (vip.address, vip.prefixlen) not in present:
                actions.append(AddVip(vip, device))
        a = instance.announce
        if a.count > 0:
            actions += [SendAnnouncements(device, vips, a.count, a.interval_ms)
                        for device, vips in groups]
            if a.repeat_after_s > 0 or a.refresh_s > 0:
                actions.append(StartAnnouncer(instance.interface, instance.vips, a))
        if verify_after:
            actions.append(ReconcileIpvs())
        if ipvs is not None and ipvs.sync is not None and drives_sync:
            actions.append(SyncDaemon("master", ipvs.sync.interface, ipvs.sync.syncid))
    else:
        for vip in instance.vips:
            device = instance.device_of(vip)
            for addr, prefix in sorted(observed.device(instance, device).addresses, key=str):
                if addr == vip.address:
                    actions.append(RemoveVip(addr, prefix, device))
        if ipvs is not None and ipvs.services:
            if ipvs.on_backup == "remove":
                actions.append(RemoveIpvs())
            elif state in ("BACKUP", "FAULT") and not ipvs_current:
                # keep: the rules stand ready on the backup too, so a takeover (and the
                # connections the sync daemon copies here) needs no rule churn. Rules
                # the caller knows to be current are left as they stand: reading a
                # large table back would hold the agent's loop (checks, the next
                # event) for seconds, to find nothing to change.
                actions.append(ReconcileIpvs())
        if ipvs is not None and ipvs.sync is not None and drives_sync:
            actions.append(SyncDaemon("backup", ipvs.sync.interface, ipvs.sync.syncid))
    actions.append(RecordState(state))
    return Plan(instance=instance.name, state=state, actions=tuple(actions))
