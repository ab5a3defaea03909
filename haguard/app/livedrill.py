"""`haguard failover-test -c FILE`: the failover drill on a live pair, run on its MASTER.

This director sees its own side (its log, its adverts) and the wire (the peer's first
advert, the peer's first gratuitous ARP / unsolicited NA for a VIP). The client's side
needs a probe point: ``--probe-from NETNS`` runs the probes in a network namespace of
this host that reaches the VIP the way clients do (ICMP and a TCP connect every
interval, long-lived HTTP connections opened before). Without one the report has the
wire timeline and no outage.

The trigger is undone whatever happens (lever cleared, keepalived started), unless
``leave``; where the instances preempt, this node then takes the VIPs back and that
takeover is measured too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from haguard.adapters import keepalived, systemd
from haguard.adapters.files import read_jsonl
from haguard.adapters.host import Host
from haguard.adapters.probepoint import ProbePoint, ProbeRecords, namespace_exists
from haguard.adapters.statefile import StateDir
from haguard.adapters.waiting import wait_until
from haguard.adapters.wire import Capture
from haguard.app import levers
from haguard.core.config import Config
from haguard.core.drillreport import (
    INTERRUPTED_NOTE,
    WireView,
    failure_run,
    ipvs_before_vip,
    live_milestones,
    ping_outage,
)
from haguard.core.events import ACTIVE_STATES
from haguard.core.vrrp import TAKEOVER_SLACK_S, advert_window
from haguard.errors import BadInput, OperationFailed

POLL_S = 0.02   # how often the drill looks at the wire and the probe while it waits
Say = Callable[[str], None]


def own_log(config: Config, since: float) -> list[dict[str, Any]]:
    """haguard's events on this node since ``since``: the log file, else the journal
    (without a log_file haguard logs JSON lines to syslog as `haguard`)."""
    if config.node.log_file:
        return [e for e in read_jsonl(config.node.log_file) if e.get("ts", 0) >= since]
    return [e for e in systemd.journal_json("haguard", since) if e.get("ts", 0) >= since]


def _devices(config: Config) -> list[str]:
    """Every device the drill watches: the instances' interfaces and their VIPs' devices
    (a VIP on eth1 is announced there, from eth1's MAC)."""
    return list(dict.fromkeys(d for i in config.instances
                              for d in [i.interface, *(d for d, _ in i.vips_by_device())]))


def _own_macs(machine: Host, config: Config) -> frozenset[str]:
    macs = set()
    for device in _devices(config):
        link = machine.link(device)
        if link is None:
            raise OperationFailed(f"interface {device} does not exist")
        macs.add(link.mac.lower())
    return frozenset(macs)


def precheck(machine: Host, config: Config, method: str) -> list[str]:
    """Why this node cannot start a drill now (empty: it can): it must be the healthy
    MASTER of every instance, with no lever pulled and one MASTER on the wire."""
    from haguard.core.vrrp import analyse

    problems = []
    if keepalived.running(config.keepalived.pid_file) is None:
        problems.append(f"keepalived is not running (pid file {config.keepalived.pid_file})")
    if method == "stop":
        if not systemd.usable():
            raise BadInput("--method stop stops keepalived through systemd, which does not run "
                           "here; use --method demote")
        active = systemd.is_active("keepalived.service")
        if active != "active":
            problems.append(f"keepalived.service is {active or 'unknown'} (systemctl)")
    state_dir = StateDir(config.node.state_dir)
    window = advert_window(config.instances)
    reports = {r.instance: r for r in analyse(
        config, machine.listen([i.interface for i in config.instances], window), window)}
    for inst in config.instances:
        state = (state_dir.read_state(inst.name) or {}).get("state")
        if state not in ACTIVE_STATES:
            others = [s.source for s in reports[inst.name].speakers if not s.ours
                      and s.priority > 0]
            where = f"; the MASTER advertising VRID {inst.virtual_router_id} is " \
                    f"{', '.join(others)}" if others else ""
            problems.append(f"{inst.name}: this node is {state or 'without a recorded state'},"
                            f" not MASTER: run the drill on the MASTER{where}")
            continue
        if not levers.holds_vips(machine, inst):
            where = ", ".join(d for d, _ in inst.vips_by_device())
            problems.append(f"{inst.name}: MASTER without all its VIPs on {where} "
                            "(`haguard status`)")
        demote, boost = levers.track_values(config, inst)
        if demote or boost:
            problems.append(f"{inst.name}: a lever is pulled (demote={demote}, "
                            f"priority+{boost}); `haguard undo -c {config.path}` first")
        problems += list(reports[inst.name].problems)
    return problems


def _probe_report(records: ProbeRecords, trigger_at: float, interval_ms: int,
                  with_tcp: bool) -> dict[str, Any]:
    """The client's figures from what the probe point wrote."""
    ping = ping_outage((r["t"] for r in records.probe if r.get("kind") == "pong"), trigger_at,
                       interval_ms)
    report: dict[str, Any] = {"outage_ms": ping.ms, "pings_lost": ping.lost,
                              "probe_back_ms": None if ping.back_at is None else
                              round((ping.back_at - trigger_at) * 1000, 1)}
    if with_tcp:
        tcp = failure_run(records.tcp, trigger_at, lambda e: e.get("ok"))
        held = records.held
        answered = [a for a in held.get("before", []) if a is not None]
        report.update({"tcp_outage_ms": tcp.ms, "tcp_connects_failed": tcp.lost,
                       # HTTP on each held connection before and after; a service that
                       # does not speak HTTP leaves this unknown, not failed.
                       "connections_survived": held.get("survived") if answered else None,
                       "connections": held.get("total") if answered else None})
    return report


def _service(config: Config, port: int | None) -> tuple[str, int | None]:
    """(VIP to probe, TCP port or None): the first IPv4 TCP service, else the first VIP."""
    if config.ipvs is not None:
        for svc in config.ipvs.services:
            if svc.key.protocol == "tcp" and ":" not in svc.key.address:
                return svc.key.address, port or svc.key.port
    for inst in config.instances:
        for vip in inst.vips:
            if vip.family == 4:
                return str(vip.address), port
    raise BadInput(f"{config.path}: no IPv4 VIP to probe")


def run(config: Config, *, method: str, probe_from: str | None, port: int | None,
        interval_ms: int, leave: bool, say: Say,
        peer_wait_s: float | None = None) -> dict[str, Any]:
    """The drill on this node; every figure measured, the trigger undone unless ``leave``."""
    with Host() as machine:
        return _run(machine, config, method=method, probe_from=probe_from, port=port,
                    interval_ms=interval_ms, leave=leave, say=say, peer_wait_s=peer_wait_s)


def _run(machine: Host, config: Config, *, method: str, probe_from: str | None,
         port: int | None, interval_ms: int, leave: bool, say: Say,
         peer_wait_s: float | None) -> dict[str, Any]:
    if probe_from and not namespace_exists(probe_from):
        raise BadInput(f"--probe-from {probe_from}: no such network namespace (ip netns list)")
    say(f"checking {config.node.name} is the healthy MASTER (listening for "
        f"{advert_window(config.instances):g} s)")
    problems = precheck(machine, config, method)
    if problems:
        raise OperationFailed("not ready for a drill:\n  " + "\n  ".join(problems))
    vip, service_port = _service(config, port)
    vips = [str(v.address) for i in config.instances for v in i.vips]
    view = WireView(node=config.node.name, own_macs=_own_macs(machine, config),
                    vrids=frozenset(i.virtual_router_id for i in config.instances),
                    vips=frozenset(vips))
    report: dict[str, Any] = {"node": config.node.name, "method": method, "vip": vip,
                              "port": service_port, "probe_from": probe_from,
                              "old_master": config.node.name}
    wire = Capture(_devices(config))
    point: ProbePoint | None = None
    triggered = restored = False

    def restore() -> None:
        if leave:
            return
        if method == "demote":
            levers.undo(config, None, "failover drill over", why="drill_undo")
        else:
            proc = systemd.systemctl("start", "keepalived.service")
            if proc.returncode != 0:
                raise OperationFailed(f"systemctl start keepalived.service: "
                                      f"{proc.stderr.strip()} -- start it by hand")

    try:
        if probe_from:
            say(f"starting the probes in {probe_from}")
            point = ProbePoint(probe_from, config.node.state_dir, vip, vips, service_port,
                               interval_ms)
            point.start()
        time.sleep(0.5)
        say(f"triggering the failover ({method})")
        trigger_at = time.time()
        triggered = True
        if method == "demote":
            levers.pull_demote(config, "failover drill")
        else:
            proc = systemd.systemctl("stop", "keepalived.service")
            if proc.returncode != 0:
                raise OperationFailed(f"systemctl stop keepalived.service: {proc.stderr.strip()}")
        # From the trigger's completion: stopping keepalived takes its own time.
        window = peer_wait_s if peer_wait_s is not None else \
            advert_window(config.instances, slack_s=TAKEOVER_SLACK_S)
        seen = wait_until(lambda: live_milestones(view, trigger_at, list(wire.frames), [])
                          ["new_master"] is not None, window, POLL_S)
        if not seen:
            heard = sorted({f"{f.get('src')} priority {f.get('priority')}"
                            for f in list(wire.frames) if f.get("kind") == "vrrp"
                            and f.get("t", 0) >= trigger_at and f.get("vrid") in view.vrids})
            frames = sum(1 for f in list(wire.frames) if f.get("t", 0) >= trigger_at)
            raise OperationFailed(
                f"no peer advertised as MASTER within {window:g} s of the trigger (heard on "
                f"the wire since: {', '.join(heard) or 'no VRRP advert'}; {frames} ARP/NA/VRRP "
                f"frames in all{'; ' + '; '.join(wire.errors) if wire.errors else ''}): the "
                "pair has no healthy BACKUP, or it is slower than --peer-wait; the trigger is "
                "undone")
        wait_until(lambda: live_milestones(view, trigger_at, list(wire.frames), [])
                   ["first_announcement_ms"] is not None, 5.0, POLL_S)
        if point is not None:
            new_at = trigger_at + live_milestones(view, trigger_at, list(wire.frames),
                                                  [])["new_master_ms"] / 1000
            wait_until(lambda: point.answered_since(new_at), 10.0, POLL_S)
            time.sleep(max(0.3, 3 * interval_ms / 1000))
            report.update(_probe_report(point.finish(), trigger_at, interval_ms,
                                        with_tcp=service_port is not None))
        back_ms = report.get("probe_back_ms")
        # This node's own side may finish after the peer took over (a STOP hook is slow
        # on a slow machine): wait for its VIPs to go, and for its log to say so.
        wait_until(lambda: all(levers.holds_none(machine, i) for i in config.instances), window, 0.05)
        removed = sum(len(i.vips) for i in config.instances if levers.holds_none(machine, i))
        wait_until(lambda: sum(1 for e in own_log(config, trigger_at)
                               if e.get("event") == "vip_removed") >= removed, 3.0, 0.2)
        report.update(live_milestones(view, trigger_at, list(wire.frames),
                                      own_log(config, trigger_at)))
        if back_ms is not None:
            report["milestones"] = sorted(report["milestones"] + [
                {"ms": back_ms, "who": "probe", "what": f"{vip} answers ping again "
                 f"(from {probe_from})"}], key=lambda m: m["ms"])
        report["trigger_at"] = trigger_at
        report["old_master_kept_vips"] = [str(v.address) for i in config.instances
                                          for v in i.vips if levers.holds_vips(machine, i)]
        say("putting the pair back")
        restore_at = time.time()
        restore()
        restored = True
        report["restored"] = _settle(machine, config, report, restore_at, leave)
    finally:
        wire.close()
        if point is not None:
            point.close()
        if triggered and not restored:
            restore()
            if not leave:
                # keepalived may still act on the trigger it saw: the pair can hand over
                # and back in the seconds after this exit.
                say(INTERRUPTED_NOTE)
    StateDir(config.node.state_dir).record_drill(config.node.name,
                                                 [i.name for i in config.instances], report)
    return report


def _settle(machine: Host, config: Config, report: dict[str, Any], restore_at: float,
            leave: bool) -> str:
    """Wait for this node to take back what it preempts; say where the pair stands."""
    if leave:
        return f"left as the drill made it: {report.get('new_master')} is MASTER"
    if any(i.nopreempt for i in config.instances):
        return (f"trigger undone; {report.get('new_master')} stays MASTER (nopreempt). To move "
                f"back, run the drill (or `haguard demote`) on {report.get('new_master')}")
    state_dir = StateDir(config.node.state_dir)

    def back() -> bool:
        # A record from before the restore (a transition still finishing) does not count.
        records = [state_dir.read_state(i.name) or {} for i in config.instances]
        return all(r.get("state") in ACTIVE_STATES and r.get("complete")
                   and r.get("updated", 0) >= restore_at for r in records) \
            and all(levers.holds_vips(machine, i) for i in config.instances)
    timeout = 10 * max(i.advert_int for i in config.instances) + 10
    if not wait_until(back, timeout, 0.05):
        raise OperationFailed(f"trigger undone, but {config.node.name} did not take the VIPs "
                              f"back within {timeout:g} s (`haguard status`)")
    report["failback_ms"] = round((time.time() - restore_at) * 1000, 1)
    report["ipvs_before_vip"] = None
    if config.ipvs is not None:
        # journald may take a moment to hand out what the hook logged
        wait_until(lambda: report.update(ipvs_before_vip=ipvs_before_vip(
            own_log(config, restore_at), restore_at)) or report["ipvs_before_vip"] is not None,
                   3.0, 0.2)
    return f"{config.node.name} MASTER again, holding its VIPs"
