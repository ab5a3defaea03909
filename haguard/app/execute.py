"""Run a transition plan through the adapters, one logged event per action.

A failure stops the plan: the log and the recorded state say what was done and what
was not, and the next transition (every action is idempotent) finishes the job.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

from haguard.adapters import failpoint
from haguard.adapters.host import Host
from haguard.adapters.log import Log
from haguard.adapters.netlink import Link
from haguard.adapters.statefile import StateDir, frame_cache_path
from haguard.core.config import Config, Instance
from haguard.core.events import OrderKey
from haguard.core.plan import (
    Action,
    AddVip,
    Plan,
    ReconcileIpvs,
    RecordState,
    RemoveIpvs,
    RemoveVip,
    SendAnnouncements,
    SetSysctl,
    StartAnnouncer,
    StopAnnouncer,
    SyncDaemon,
)
from haguard.errors import HaguardError, OperationFailed

ANNOUNCER_COMMAND = "announce-loop"


@dataclass
class Context:
    """What the actions of one transition share."""

    config: Config
    instance: Instance
    host: Host
    link: Link | None
    state_dir: StateDir
    order: OrderKey
    log: Log
    received_at: float
    previous: dict[str, Any] | None
    # Every other device the instance's VIPs live on (vips[].interface), by name.
    others: dict[str, Link] = field(default_factory=dict)
    announcer_pid: int | None = None
    first_announcement_at: float | None = None
    # Per device: the link, its frames, the rounds left and their interval.
    rest_of_burst: list[Burst] = field(default_factory=list)
    done: list[str] = field(default_factory=list)

    def frame_cache(self, device: str) -> str:
        return frame_cache_for(self.state_dir, self.instance, device)

    def link_of(self, device: str) -> Link:
        """The link of ``device``; the planner refuses MASTER when one is missing."""
        link = self.link if device == self.instance.interface else self.others.get(device)
        if link is None:
            raise OperationFailed(f"interface {device} does not exist on this node")
        return link


@dataclass(frozen=True)
class Burst:
    """The rest of one device's announcement burst, sent after the lock is released."""

    link: Link
    frames: list[bytes]
    rounds: int
    interval_ms: int


def frame_cache_for(state_dir: StateDir, instance: Instance, device: str) -> str:
    """The frame cache of ``instance`` on ``device`` (its own interface keeps the name
    it always had)."""
    return frame_cache_path(state_dir, instance.name,
                            None if device == instance.interface else device)


def describe(action: Action) -> str:
    """A short human name for an action, used in logs and failure reports."""
    match action:
        case SetSysctl(key=key, value=value):
            return f"sysctl {key}={value}"
        case AddVip(vip=vip, interface=iface):
            return f"add {vip} on {iface}"
        case RemoveVip(address=addr, prefixlen=plen, interface=iface):
            return f"remove {addr}/{plen} from {iface}"
        case SendAnnouncements(vips=vips, count=count):
            return f"announce {', '.join(str(v.address) for v in vips)} x{count}"
        case StartAnnouncer():
            return "start re-announcer"
        case StopAnnouncer():
            return "stop re-announcer"
        case ReconcileIpvs():
            return "reconcile IPVS rules"
        case RemoveIpvs():
            return "remove IPVS rules"
        case SyncDaemon(role=role, interface=iface, syncid=syncid):
            return f"IPVS sync daemon {role} on {iface} (syncid {syncid})"
        case RecordState(state=state):
            return f"record {state}"
    return type(action).__name__


def execute(plan: Plan, ctx: Context) -> None:
    """Apply every action in order; raise OperationFailed naming done / not done."""
    for i, action in enumerate(plan.actions):
        failpoint.hit(f"before:{_event_name(action)}", plan.state)
        start = time.perf_counter()
        try:
            fields = _apply(action, ctx)
        except HaguardError as exc:
            _fail(plan, ctx, i, action, exc, start)
        except OSError as exc:
            _fail(plan, ctx, i, action, OperationFailed(str(exc)), start)
        else:
            if isinstance(action, SendAnnouncements) and not any(
                    isinstance(a, SendAnnouncements) for a in plan.actions[i + 1:]):
                # Every device's first frames are out: the deferred log may write now.
                ctx.log.release()
            if fields is not None:
                ctx.log.info(_event_name(action), action=describe(action), outcome="ok",
                             duration_ms=round((time.perf_counter() - start) * 1000, 3),
                             **fields)
            ctx.done.append(describe(action))


def _fail(plan: Plan, ctx: Context, index: int, action: Action, exc: HaguardError,
          start: float) -> None:
    not_done = [describe(a) for a in plan.actions[index:]]
    ctx.log.error(_event_name(action), action=describe(action), outcome="failed",
                  error=str(exc), duration_ms=round((time.perf_counter() - start) * 1000, 3),
                  done=ctx.done, not_done=not_done)
    _record(ctx, plan.state, complete=False, error=str(exc))
    raise OperationFailed(
        f"{plan.instance} -> {plan.state}: '{describe(action)}' failed: {exc}. "
        f"Done: {', '.join(ctx.done) or 'nothing'}. Not done: {', '.join(not_done)}."
    ) from exc


def _event_name(action: Action) -> str:
    return {SetSysctl: "sysctl_set", AddVip: "vip_added", RemoveVip: "vip_removed",
            SendAnnouncements: "announced", StartAnnouncer: "announcer_started",
            StopAnnouncer: "announcer_stopped", RecordState: "state_recorded",
            ReconcileIpvs: "ipvs_reconciled", RemoveIpvs: "ipvs_removed",
            SyncDaemon: "sync_daemon"}[type(action)]


def _apply(action: Action, ctx: Context) -> dict[str, Any] | None:
    """Do one action; return the log fields, or None when there was nothing to log."""
    match action:
        case StopAnnouncer():
            pid = (ctx.previous or {}).get("announcer_pid")
            if isinstance(pid, int) and ctx.host.terminate_if(pid, ANNOUNCER_COMMAND,
                                                             ctx.instance.name):
                return {"announcer_pid": pid}
            return None
        case SetSysctl(key=key, value=value, current=current):
            ctx.host.write_sysctl(key, value)
            return {"key": key, "value": value, "previous": current}
        case AddVip(vip=vip, interface=device):
            added = ctx.host.add_vip(ctx.link_of(device), vip)
            return {"vip": str(vip), "interface": device, "changed": added}
        case RemoveVip(address=addr, prefixlen=plen, interface=device):
            removed = ctx.host.remove_address(ctx.link_of(device), addr, plen)
            return {"vip": f"{addr}/{plen}", "interface": device, "changed": removed}
        case SendAnnouncements(interface=device, vips=vips, count=count, interval_ms=interval):
            link = ctx.link_of(device)
            frames, cached = ctx.host.frames(ctx.frame_cache(device), link.mac, vips)
            # Only the first round is sent under the transition lock; the rest follow
            # after it is released, so a newer event never waits for a whole burst.
            result = ctx.host.send(link, frames, 1, interval, kept_socket=True)
            if ctx.first_announcement_at is None:
                ctx.first_announcement_at = result.first_sent_at
            ctx.rest_of_burst.append(Burst(link, frames, count - 1, interval))
            return {"frames": result.frames_sent, "first_sent_at": result.first_sent_at,
                    "interface": device, "mac": link.mac, "frames_cached": cached,
                    "since_event_ms": round(((result.first_sent_at or time.time())
                                             - ctx.received_at) * 1000, 3)}
        case StartAnnouncer():
            ctx.announcer_pid = _spawn_announcer(ctx)
            return {"announcer_pid": ctx.announcer_pid}
        case ReconcileIpvs():
            from haguard.app import ipvsops

            return {"changes": ipvsops.apply(ctx.config, ctx.instance.name,
                                             connect=ctx.host.ipvs)}
        case RemoveIpvs():
            from haguard.app import ipvsops

            return {"changes": ipvsops.remove(ctx.config, ctx.instance.name,
                                              connect=ctx.host.ipvs)}
        case SyncDaemon(role=role, interface=iface, syncid=syncid):
            ctx.host.sync_daemon(role, iface, syncid)
            return {"role": role, "interface": iface, "syncid": syncid}
        case RecordState(state=state):
            _record(ctx, state, complete=True)
            return {"transition_ms": round((time.time() - ctx.received_at) * 1000, 3)}
    raise OperationFailed(f"unknown action {action!r}")


def _spawn_announcer(ctx: Context) -> int:
    args = [sys.executable, "-m", "haguard", ANNOUNCER_COMMAND, "-c", ctx.config.path,
            "--instance", ctx.instance.name, "--order", f"{ctx.order.start_ticks},{ctx.order.pid}",
            "--since", repr(ctx.first_announcement_at or time.time())]
    return ctx.host.spawn(args)


def _record(ctx: Context, state: str, complete: bool, error: str | None = None) -> None:
    now = time.time()
    prev = ctx.previous or {}
    since = prev.get("since") if prev.get("state") == state and prev.get("complete") else None
    record = {
        "node": ctx.config.node.name,
        "instance": ctx.instance.name,
        "state": state,
        "since": since or ctx.received_at,
        "updated": now,
        "complete": complete,
        "order": ctx.order.as_list(),
        "event_received_at": ctx.received_at,
        "last_transition_ms": round((now - ctx.received_at) * 1000, 3),
        "first_announcement_at": ctx.first_announcement_at,
        "announcer_pid": ctx.announcer_pid,
        "vips": [str(v) for v in ctx.instance.vips],
        # counters for the metrics textfile, carried from record to record
        "transitions": int(prev.get("transitions", 0)) + (1 if complete else 0),
        "announcements": int(prev.get("announcements", 0))
        + (1 if complete and ctx.first_announcement_at else 0),
    }
    if error:
        record["error"] = error
    ctx.state_dir.write_state(ctx.instance.name, record)
    try:
        ctx.state_dir.write_metrics(ctx.config.node.name,
                                    [i.name for i in ctx.config.instances])
    except OSError as exc:  # metrics must never fail a transition
        ctx.log.warning("metrics_not_written", error=str(exc))
