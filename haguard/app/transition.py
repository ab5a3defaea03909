"""One keepalived event, end to end: order, lock, observe, plan, execute, record.

``handle_event`` is the one way in for both modes: the notify hook (``haguard notify``,
a ``Host`` opened for this event) and ``haguard agent`` (its ``Host`` kept open, the rest
of a burst run off its event loop). The log, GROUP events, an unknown instance and a
failure are treated the same in both.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from haguard.adapters import process
from haguard.adapters.host import Host
from haguard.adapters.log import Log, get_logger
from haguard.adapters.netlink import Link
from haguard.adapters.statefile import StateDir
from haguard.app.execute import Context, execute, frame_cache_for
from haguard.core.config import Config, Instance
from haguard.core.events import ACTIVE_STATES, Event, OrderKey, is_superseded
from haguard.core.plan import Device, Observed, plan_transition
from haguard.core.vrrpconfig import fill_placeholders
from haguard.errors import HaguardError, UnknownInstance

Background = Callable[[Callable[[], None]], None]


def find_instance(config: Config, name: str) -> Instance:
    inst = config.instance(name)
    if inst is None:
        known = ", ".join(i.name for i in config.instances)
        raise UnknownInstance(f"instance {name!r} is not in {config.path} (it has: {known}); "
                              "nothing was changed")
    return inst


def handle_event(config: Config, event: Event, order: OrderKey, *, host: Host,
                 in_background: Background | None = None, ipvs_current: bool = False,
                 **log_fields: Any) -> str:
    """Apply one event with its own log; 'applied', 'superseded' or 'ignored'.

    A MASTER's log lines wait until its first announcement is on the wire. A failure (an
    unknown instance too) is logged as ``transition_failed`` and raised: the hook turns it
    into its exit status, the agent goes on with the next event.
    """
    log = get_logger(config.node.log_file, deferred=event.state in ACTIVE_STATES,
                     node=config.node.name, **log_fields)
    try:
        return apply_event(config, event, order, log, host=host, in_background=in_background,
                           ipvs_current=ipvs_current)
    except HaguardError as exc:
        log.release()
        log.error("transition_failed", instance=event.name, state=event.state, error=str(exc))
        raise
    finally:
        log.release()


def apply_event(config: Config, event: Event, order: OrderKey, log: Log, *, host: Host,
                in_background: Background | None = None, ipvs_current: bool = False) -> str:
    """Apply one event through ``host``; return 'applied', 'superseded' or 'ignored'.

    ``in_background`` runs the rest of an announcement burst and the frame preparation
    (the agent: off its event loop); without it they run here, after the lock is released.
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
        link = host.link(inst.interface)
        present = host.addresses(link) if link is not None else []
        others = {name: host.link(name) for name, _ in inst.vips_by_device()
                  if name != inst.interface}
        observed = Observed(
            interface_index=link.index if link else None,
            addresses=frozenset((a.address, a.prefixlen) for a in present),
            sysctls={k: host.read_sysctl(k) for k, _ in config.director_sysctls()}
            if event.state in ACTIVE_STATES else {},
            others={name: Device(other.index if other else None, frozenset(
                (a.address, a.prefixlen) for a in host.addresses(other)) if other else frozenset())
                for name, other in others.items()},
        )
        plan = plan_transition(inst, event.state, config.director_sysctls(), observed,
                               config.ipvs, config.drives_sync(inst.name), ipvs_current)
        ctx = Context(config=config, instance=inst, host=host, link=link,
                      state_dir=state_dir, order=order, log=log, received_at=received,
                      previous=previous,
                      others={n: o for n, o in others.items() if o is not None})
        execute(plan, ctx)
    log.release()
    log.info("transition_done", priority=event.priority,
             duration_ms=round((time.time() - received) * 1000, 3))
    if (previous or {}).get("state") != event.state:   # keepalived: on a change of state
        _operator_commands(inst, event, log)
    run = in_background or (lambda work: work())
    if ctx.rest_of_burst:
        run(lambda: _finish_burst(ctx, inst, state_dir, order, log))
    elif event.state not in ACTIVE_STATES and link is not None:
        run(lambda: _prepare_frames(ctx, inst, log))
    return "applied"


def _operator_commands(inst: Instance, event: Event, log: Log) -> None:
    """The operator's own commands for the new state (``instances[].notify``), in order,
    in a thread of their own: after haguard's work and never in its way. A hook process
    waits for the thread before it exits."""
    commands = [fill_placeholders(argv, inst, event)
                for argv in inst.notify.for_state(event.state)]
    if not commands:
        return
    timeout = inst.notify.timeout_s

    def work() -> None:
        for argv in commands:
            result = process.run_command(argv, timeout)
            (log.info if result.ok else log.warning)(
                "notify_command", command=list(argv), ok=result.ok, detail=result.detail,
                output=result.output, duration_ms=round(result.duration_s * 1000, 3))

    threading.Thread(target=work, name=f"notify-{inst.name}", daemon=False).start()


def _still_master(state_dir: StateDir, instance: str, order: OrderKey) -> bool:
    record = state_dir.read_state(instance) or {}
    return record.get("state") in ACTIVE_STATES and \
        OrderKey.from_list(record.get("order")) == order


def _on_each(work: Callable[[Link], None], links: list[Link], log: Log) -> None:
    """``work`` on every link at once: the first here, the others in threads, all ended
    on return (a burst on one device must not wait for another's to end). A failure on
    one device is logged; the others go on."""
    def guarded(link: Link) -> None:
        try:
            work(link)
        except Exception as exc:  # noqa: BLE001 - one device's socket must not stop another's
            log.error("announce_failed", interface=link.name, error=str(exc))

    threads = [threading.Thread(target=guarded, args=(link,), name=f"burst-{link.name}")
               for link in links[1:]]
    for thread in threads:
        thread.start()
    try:
        if links:
            guarded(links[0])
    finally:
        for thread in threads:
            thread.join()


def _finish_burst(ctx: Context, inst: Instance, state_dir: StateDir, order: OrderKey,
                  log: Log) -> None:
    bursts = {b.link.name: b for b in ctx.rest_of_burst}

    def finish(link: Link) -> None:
        burst = bursts[link.name]
        result = ctx.host.send(link, burst.frames, burst.rounds, burst.interval_ms,
                               keep_going=lambda: _still_master(state_dir, inst.name, order),
                               wait_first=True)
        log.info("burst_done", interface=link.name, frames=result.frames_sent,
                 rounds_planned=burst.rounds, last_sent_at=result.last_sent_at)
    _on_each(finish, [b.link for b in ctx.rest_of_burst], log)


def _prepare_frames(ctx: Context, inst: Instance, log: Log) -> None:
    """Build and cache the MASTER frames of every device now, while nothing is waiting
    for them."""
    for device, vips in inst.vips_by_device():
        link = ctx.link if device == inst.interface else ctx.others.get(device)
        if link is None:
            continue
        try:
            _, cached = ctx.host.frames(ctx.frame_cache(device), link.mac, vips)
        except Exception as exc:  # noqa: BLE001 - a cache miss must never fail a transition
            log.warning("frame_cache_failed", interface=device, error=str(exc))
            continue
        if not cached:
            log.info("frame_cache_built", interface=device, mac=link.mac)


def announce_loop(config: Config, instance_name: str, order: OrderKey, log: Log,
                  started_at: float, *, host: Host) -> int:
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
    while True:
        links: list[tuple[Link, list[bytes]]] = []
        for device, vips in inst.vips_by_device():
            link = host.link(device)
            if link is None:
                log.error("announcer_exit", reason=f"interface {device} is gone")
                return rounds
            # Frames are ready before the wait, so each round goes out on time.
            frames, _ = host.frames(frame_cache_for(state_dir, inst, device), link.mac, vips)
            links.append((link, frames))
        time.sleep(max(0.0, next_at - time.time()))
        if not _still_master(state_dir, inst.name, order):
            log.info("announcer_exit", reason="no longer the MASTER that started it")
            return rounds
        frames_of = {link.name: frames for link, frames in links}

        def announce(link: Link) -> None:
            result = host.send(link, frames_of[link.name], a.count, a.interval_ms,
                               keep_going=lambda: _still_master(state_dir, inst.name, order))
            log.info("reannounced", interface=link.name, frames=result.frames_sent,
                     first_sent_at=result.first_sent_at)
        _on_each(announce, [link for link, _ in links], log)
        rounds += 1
        if a.refresh_s <= 0:
            return rounds
        next_at += a.refresh_s
