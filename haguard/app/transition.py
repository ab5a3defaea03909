"""One keepalived event, end to end: order, lock, observe, plan, execute, record."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from haguard.adapters import announce, process, sysctl
from haguard.adapters.netlink import Netlink
from haguard.adapters.statefile import StateDir, frame_cache_path
from haguard.app.execute import Context, execute
from haguard.core.config import Config, Instance
from haguard.core.events import ACTIVE_STATES, Event, OrderKey, is_superseded
from haguard.core.plan import Observed, plan_transition
from haguard.errors import UnknownInstance


def find_instance(config: Config, name: str) -> Instance:
    inst = config.instance(name)
    if inst is None:
        known = ", ".join(i.name for i in config.instances)
        raise UnknownInstance(f"instance {name!r} is not in {config.path} (it has: {known}); "
                              "nothing was changed")
    return inst


def handle_event(config: Config, event: Event, order: OrderKey, log: Any,
                 netlink: Netlink | None = None,
                 in_background: Callable[[Callable[[], None]], None] | None = None,
                 packet_sockets: announce.PacketSockets | None = None) -> str:
    """Apply one event; return 'applied', 'superseded' or 'ignored'.

    The agent passes its open ``netlink`` and ``packet_sockets`` and ``in_background``
    (runs the rest of an announcement burst and the frame preparation off its event
    loop); a hook does everything here, in its own process.
    """
    received = time.time()
    if event.kind == "GROUP":
        log.info("group_event_ignored", group=event.name, state=event.state)
        return "ignored"
    inst = find_instance(config, event.name)
    log = log.bind(instance=inst.name, state=event.state)
    log.info("notify_received", priority=event.priority, order=order.as_list(),
             forked_at=round(process.fork_wall_time(order), 3))
    state_dir = StateDir(config.node.state_dir)
    state_dir.ensure()
    state_dir.register(inst.name, order)
    with state_dir.transition_lock(inst.name):
        previous = state_dir.read_state(inst.name)
        last_applied = OrderKey.from_list((previous or {}).get("order"))
        if is_superseded(order, state_dir.newest(inst.name), last_applied):
            log.info("event_superseded", order=order.as_list(),
                     waited_ms=round((time.time() - received) * 1000, 3))
            return "superseded"
        with contextlib.nullcontext(netlink) if netlink is not None else Netlink() as nl:
            link = nl.link(inst.interface)
            present = nl.addresses(link) if link is not None else []
            observed = Observed(
                interface_index=link.index if link else None,
                addresses=frozenset((a.address, a.prefixlen) for a in present),
                sysctls={k: sysctl.read(k) for k, _ in config.director_sysctls()}
                if event.state in ACTIVE_STATES else {},
            )
            plan = plan_transition(inst, event.state, config.director_sysctls(), observed,
                                   config.ipvs, config.drives_sync(inst.name))
            ctx = Context(config=config, instance=inst, netlink=nl, link=link,
                          state_dir=state_dir, order=order, log=log, received_at=received,
                          previous=previous, packet_sockets=packet_sockets)
            execute(plan, ctx)
    log.release()
    log.info("transition_done", priority=event.priority,
             duration_ms=round((time.time() - received) * 1000, 3))
    run = in_background or (lambda work: work())
    if ctx.rest_of_burst is not None:
        run(lambda: _finish_burst(ctx, inst, state_dir, order, log))
    elif event.state not in ACTIVE_STATES and link is not None:
        mac = link.mac
        run(lambda: _prepare_frames(ctx, inst, mac, log))
    return "applied"


def _still_master(state_dir: StateDir, instance: str, order: OrderKey) -> bool:
    record = state_dir.read_state(instance) or {}
    return record.get("state") in ACTIVE_STATES and \
        OrderKey.from_list(record.get("order")) == order


def _finish_burst(ctx: Context, inst: Instance, state_dir: StateDir, order: OrderKey,
                  log: Any) -> None:
    assert ctx.rest_of_burst is not None
    frames, rounds, interval = ctx.rest_of_burst
    result = announce.send_burst(inst.interface, frames, rounds, interval,
                                 keep_going=lambda: _still_master(state_dir, inst.name, order),
                                 wait_first=True)
    log.info("burst_done", frames=result.frames_sent, rounds_planned=rounds,
             last_sent_at=result.last_sent_at)


def _prepare_frames(ctx: Context, inst: Instance, mac: str, log: Any) -> None:
    """Build and cache the MASTER frames now, while nothing is waiting for them."""
    try:
        _, cached = announce.frames_for(ctx.frame_cache, mac, inst.vips)
    except Exception as exc:  # noqa: BLE001 - a cache miss must never fail a transition
        log.warning("frame_cache_failed", error=str(exc))
        return
    if not cached:
        log.info("frame_cache_built", mac=mac)


def announce_loop(config: Config, instance_name: str, order: OrderKey, log: Any,
                  started_at: float) -> int:
    """Re-announce at started_at + repeat_after_s, then every refresh_s, while that MASTER."""
    inst = find_instance(config, instance_name)
    state_dir = StateDir(config.node.state_dir)
    a = inst.announce
    log = log.bind(instance=inst.name)
    first_delay = a.repeat_after_s if a.repeat_after_s > 0 else a.refresh_s
    if first_delay <= 0:
        return 0
    next_at = started_at + first_delay
    rounds = 0
    with Netlink() as netlink:
        while True:
            link = netlink.link(inst.interface)
            if link is None:
                log.error("announcer_exit", reason=f"interface {inst.interface} is gone")
                return rounds
            # Frames are ready before the wait, so each round goes out on time.
            frames, _ = announce.frames_for(frame_cache_path(state_dir, inst.name), link.mac,
                                            inst.vips)
            time.sleep(max(0.0, next_at - time.time()))
            if not _still_master(state_dir, inst.name, order):
                log.info("announcer_exit", reason="no longer the MASTER that started it")
                return rounds
            result = announce.send_burst(inst.interface, frames, a.count, a.interval_ms,
                                         keep_going=lambda: _still_master(state_dir, inst.name,
                                                                          order))
            rounds += 1
            log.info("reannounced", frames=result.frames_sent, first_sent_at=result.first_sent_at)
            if a.refresh_s <= 0:
                return rounds
            next_at += a.refresh_s
