"""`haguard demote | promote | undo`: keepalived's own levers, guarded and audited.

Every action is checked first (keepalived running, the wire), recorded in
``lever_dir/levers.json`` (with its expiry, which therefore survives any restart), and
appended to ``lever_dir/audit.log`` and syslog: who (SUDO_USER or USER), when, what, why.
A demotion that no peer answers is undone at once, unless forced: the instance is never
left without a MASTER by haguard.
"""

from __future__ import annotations

import sys
import time

from haguard.adapters import keepalived, leverfiles
from haguard.adapters.host import Host, opened
from haguard.adapters.process import invoking_user
from haguard.adapters.statefile import StateDir
from haguard.adapters.waiting import wait_until
from haguard.app.audit import audit
from haguard.core.config import Config, Instance, IPAddress, Vip
from haguard.core.events import ACTIVE_STATES
from haguard.core.leverrules import Lever, Refused, due, promote_boost
from haguard.core.render import lever_files
from haguard.core.vrrp import TAKEOVER_SLACK_S, Advert, advert_window
from haguard.errors import BadInput, OperationFailed

EXPIRE_COMMAND = "levers-expire"


# ------------------------------------------------------------------ files
def ensure_lever_dir(config: Config) -> str:
    """Create lever_dir/track (root-owned, 0755): keepalived drops track files without it."""
    path = leverfiles.ensure_dir(config.node.lever_dir)
    return f"lever directory {path} ready (haguard demote / promote)"


def read_levers(config: Config) -> list[Lever]:
    return leverfiles.read_levers(config.node.lever_dir)


def _write_levers(config: Config, levers: list[Lever]) -> None:
    leverfiles.write_levers(config.node.lever_dir, levers)


def track_values(config: Config, inst: Instance) -> tuple[int, int]:
    """(demote, priority) as the files hold them now (0 when missing)."""
    demote, priority = lever_files(config, inst)
    return leverfiles.read_track(demote), leverfiles.read_track(priority)


# ------------------------------------------------------------------ observing
def _instances(config: Config, names: list[str] | None) -> list[Instance]:
    if not names:
        return list(config.instances)
    found = []
    for name in names:
        inst = config.instance(name)
        if inst is None:
            known = ", ".join(i.name for i in config.instances)
            raise BadInput(f"--instance {name}: not in {config.path} (it has: {known})")
        found.append(inst)
    return found


def _require_keepalived(config: Config, force: bool) -> list[str]:
    if keepalived.running(config.keepalived.pid_file) is not None:
        return []
    message = (f"keepalived is not running (pid file {config.keepalived.pid_file}): the "
               "levers act through it")
    if not force:
        raise OperationFailed(message + "; start it first (or --force)")
    return [f"warning: {message}; going on because of --force"]


def _other_master(machine: Host, inst: Instance, seconds: float) -> Advert | None:
    """The loudest non-zero advert for ``inst``'s VRID from another host, or None."""
    def wanted(a: Advert) -> bool:
        return a.vrid == inst.virtual_router_id and not a.outgoing and a.priority > 0

    heard = [a for a in machine.listen([inst.interface], seconds, until=wanted) if wanted(a)]
    return heard[-1] if heard else None


def vips_present(machine: Host, inst: Instance) -> tuple[list[Vip], list[str]]:
    """The VIPs of ``inst`` found on their devices here, and the devices (its interface
    or a vips[].interface) that do not exist."""
    present: dict[str, set[tuple[IPAddress, int]]] = {}
    gone = []
    for device in dict.fromkeys([inst.interface] + [d for d, _ in inst.vips_by_device()]):
        link = machine.link(device)
        if link is None:
            gone.append(device)
        else:
            present[device] = {(a.address, a.prefixlen) for a in machine.addresses(link)}
    held = [v for v in inst.vips
            if (v.address, v.prefixlen) in present.get(inst.device_of(v), set())]
    return held, gone


def holds_vips(machine: Host, inst: Instance) -> bool:
    """Every VIP of ``inst`` is on its device here."""
    held, gone = vips_present(machine, inst)
    return not gone and len(held) == len(inst.vips)


def holds_none(machine: Host, inst: Instance) -> bool:
    """No VIP of ``inst`` is on its device here, at any prefix."""
    for device, vips in inst.vips_by_device():
        link = machine.link(device)
        addresses = {a.address for a in machine.addresses(link)} if link else set()
        if any(v.address in addresses for v in vips):
            return False
    return True


def _answered_elsewhere(machine: Host, inst: Instance) -> bool:
    """Every IPv4 VIP of ``inst`` answers ARP from another MAC (the new MASTER has it)."""
    for device, vips in inst.vips_by_device():
        v4 = [str(v.address) for v in vips if v.family == 4]
        if not v4:
            continue
        link = machine.link(device)
        if link is None:
            return False
        answers = machine.arp_probe(device, link.mac, v4, seconds=0.5, rounds=1)
        if not all(answers[vip] for vip in v4):  # the probe drops our own MAC's answers
            return False
    return True


# ------------------------------------------------------------------ actions
def _record(config: Config, lever: Lever) -> None:
    levers = [lv for lv in read_levers(config)
              if not (lv.instance == lever.instance and lv.kind == lever.kind)]
    _write_levers(config, levers + [lever])


def _forget(config: Config, instance: str) -> None:
    _write_levers(config, [lv for lv in read_levers(config) if lv.instance != instance])


def _spawn_expiry(machine: Host, config: Config) -> None:
    """A detached waiter undoes expired levers on time; the expiry itself is on disk, so
    `haguard agent` (each tick) or the next lever command enforces it after a restart."""
    machine.spawn(expiry_command(config))


def expiry_command(config: Config) -> list[str]:
    return [sys.executable, "-m", "haguard", EXPIRE_COMMAND, "-c", config.path]


def pull_demote(config: Config, reason: str) -> None:
    """Pull every instance's demote lever, unchecked (a drill that watches the result)."""
    ensure_lever_dir(config)
    now = time.time()
    for inst in config.instances:
        leverfiles.write_track(lever_files(config, inst)[0], 1)
        _record(config, Lever(inst.name, "demote", 1, now, invoking_user(), reason))
        audit(config, "demote", instance=inst.name, reason=reason, force=True, drill=True)


def demote(config: Config, names: list[str] | None, *, reason: str, ttl_s: float | None,
           wait: bool, timeout: float, force: bool, host: Host | None = None) -> list[str]:
    """Hand over: the demote lever puts each instance in FAULT; a peer must take over.
    ``host``: the machine to act on (default: this one)."""
    if not reason.strip():
        raise BadInput("--reason: say why (it goes to the audit log)")
    with opened(host) as machine:
        return _demote(machine, config, names, reason=reason, ttl_s=ttl_s, wait=wait,
                       timeout=timeout, force=force)


def _demote(machine: Host, config: Config, names: list[str] | None, *, reason: str,
            ttl_s: float | None, wait: bool, timeout: float, force: bool) -> list[str]:
    expire_due(config)
    lines = _require_keepalived(config, force)
    ensure_lever_dir(config)
    state_dir = StateDir(config.node.state_dir)
    now = time.time()
    for inst in _instances(config, names):
        demote_path, _ = lever_files(config, inst)
        was_master = (state_dir.read_state(inst.name) or {}).get("state") in ACTIVE_STATES
        lever = Lever(inst.name, "demote", 1, now, invoking_user(), reason,
                      now + ttl_s if ttl_s else None)
        leverfiles.write_track(demote_path, 1)
        _record(config, lever)
        audit(config, "demote", instance=inst.name, reason=reason, ttl_s=ttl_s, force=force,
              was_master=was_master)
        if not was_master:
            lines.append(f"{inst.name}: demoted (it was not MASTER here; it will not become "
                         "MASTER until `haguard undo`)")
            continue
        # keepalived sends priority 0 on entering FAULT: a healthy peer answers within a
        # few advert intervals. Nobody answering means the instance has no MASTER now.
        window = advert_window([inst], slack_s=TAKEOVER_SLACK_S)
        peer = _other_master(machine, inst, window)
        if peer is None and not force:
            leverfiles.write_track(demote_path, 0)
            _forget(config, inst.name)
            audit(config, "demote_undone", instance=inst.name,
                  reason=f"no peer advertised VRID {inst.virtual_router_id} within {window:g} s")
            raise OperationFailed(
                f"{inst.name}: no peer took over VRID {inst.virtual_router_id} within "
                f"{window:g} s of the demotion, so it was undone and this node stays MASTER. "
                "Check the peer (keepalived running? same VRID? VRRP not firewalled?) or use "
                "--force to demote anyway")
        if peer is None:
            lines.append(f"warning: {inst.name}: no peer took over (forced): the instance has "
                         "no MASTER")
            continue
        lines.append(f"{inst.name}: demoted; {peer.source} took over (priority {peer.priority})"
                     + (f"; expires in {ttl_s:g} s" if ttl_s else ""))
        if wait:
            ok = wait_until(lambda: holds_none(machine, inst), timeout) and \
                wait_until(lambda: _answered_elsewhere(machine, inst), timeout, step=0.2)
            if not ok:
                raise OperationFailed(f"{inst.name}: the VIPs were not answered by the new "
                                      f"MASTER within {timeout:g} s")
            lines.append(f"{inst.name}: the VIPs answer from the new MASTER")
    if ttl_s:
        _spawn_expiry(machine, config)
    return lines


def promote(config: Config, names: list[str] | None, *, reason: str, wait: bool,
            timeout: float, force: bool, host: Host | None = None) -> list[str]:
    """Take over where preemption allows it; otherwise say what to run instead.
    ``host``: the machine to act on (default: this one)."""
    if not reason.strip():
        raise BadInput("--reason: say why (it goes to the audit log)")
    with opened(host) as machine:
        return _promote(machine, config, names, reason=reason, wait=wait, timeout=timeout,
                        force=force)


def _promote(machine: Host, config: Config, names: list[str] | None, *, reason: str,
             wait: bool, timeout: float, force: bool) -> list[str]:
    expire_due(config)
    lines = _require_keepalived(config, force)
    ensure_lever_dir(config)
    state_dir = StateDir(config.node.state_dir)
    for inst in _instances(config, names):
        demote_path, priority_path = lever_files(config, inst)
        if (state_dir.read_state(inst.name) or {}).get("state") in ACTIVE_STATES and \
                track_values(config, inst)[0] == 0:
            lines.append(f"{inst.name}: already MASTER here; nothing to do")
            continue
        master = _other_master(machine, inst, advert_window([inst]))
        if master is None:
            raise Refused(f"{inst.name}: no MASTER advertises VRID {inst.virtual_router_id}; "
                          "keepalived elects one by itself (is this node's keepalived in "
                          "FAULT? `haguard status` shows why)")
        try:
            boost = promote_boost(inst, master.priority, master.source)
        except Refused as exc:
            audit(config, "promote_refused", instance=inst.name, reason=reason,
                  refusal=str(exc))
            raise
        leverfiles.write_track(demote_path, 0)
        leverfiles.write_track(priority_path, boost)
        _record(config, Lever(inst.name, "promote", boost, time.time(), invoking_user(), reason))
        audit(config, "promote", instance=inst.name, reason=reason, boost=boost,
              over=master.source, over_priority=master.priority, force=force)
        lines.append(f"{inst.name}: priority raised by {boost} to {inst.priority + boost} "
                     f"(the MASTER {master.source} advertises {master.priority})")
        if wait:
            if not wait_until(lambda: (state_dir.read_state(inst.name) or {}).get("state")
                         in ACTIVE_STATES and holds_vips(machine, inst), timeout):
                raise OperationFailed(f"{inst.name}: not MASTER with its VIPs within "
                                      f"{timeout:g} s")
            lines.append(f"{inst.name}: MASTER here, holding its VIPs")
    return lines


def undo(config: Config, names: list[str] | None, reason: str, why: str = "undo") -> list[str]:
    """Remove every lever of the instances: keepalived's election alone decides again."""
    lines = []
    for inst in _instances(config, names):
        demote_path, priority_path = lever_files(config, inst)
        before = track_values(config, inst)
        for path in (demote_path, priority_path):
            leverfiles.clear_track(path)
        _forget(config, inst.name)
        audit(config, why, instance=inst.name, reason=reason, cleared={"demote": before[0],
                                                                        "priority": before[1]})
        lines.append(f"{inst.name}: levers cleared (were demote={before[0]}, "
                     f"priority+{before[1]})")
    return lines


def expire_due(config: Config) -> list[str]:
    """Undo every lever whose time-to-live has run out."""
    lines = []
    for lever in due(read_levers(config), time.time()):
        lines += undo(config, [lever.instance], f"ttl expired (set by {lever.by}: "
                      f"{lever.reason})", why="expired")
    return lines


def expire_loop(config: Config) -> int:
    """Sleep until the next expiry, undo what is due; exit when no lever has a TTL (the
    instances' and the real servers')."""
    from haguard.app import rslevers

    while True:
        pending = [lv.expires_at for lv in read_levers(config) if lv.expires_at is not None]
        pending += [lv.expires_at for lv in leverfiles.read_rs_levers(config.node.lever_dir)
                    if lv.expires_at is not None]
        if not pending:
            return 0
        time.sleep(max(0.05, min(pending) - time.time()))
        expire_due(config)
        rslevers.expire_due(config)
