"""``haguard agent``: one long-running process that owns the VRRP transitions.

keepalived writes every state change to its notify FIFO in the order it happened; the
agent applies them in that order with its modules imported and its netlink socket open,
so a takeover costs a netlink call and a frame. Besides the events it:

- re-asserts every instance's state when keepalived opens the FIFO (its start and every
  reload) and on MASTER_RX_LOWER_PRI;
- treats the end of keepalived's VRRP process, however it ended, as STOP: a keepalived
  that died hard (SIGKILL, OOM) leaves no VIP behind here;
- on its own start, applies what it missed (events still in the FIFO, events the hooks
  journaled while handing over) and otherwise re-asserts the recorded state, so a
  restart changes nothing that was right;
- checks the real servers (app/healthwatch.py) on the same event loop, and applies the
  table their health and the operator's levers leave in every transition.

While the agent holds ``state_dir/agent.lock`` the hooks hand every event over to it;
without it they do the work themselves (the fallback).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from haguard.adapters import failpoint, files, leverfiles, process
from haguard.adapters.host import Host
from haguard.adapters.journal import Journal
from haguard.adapters.locks import PidLock
from haguard.adapters.log import Log, get_logger
from haguard.adapters.metricsserver import MetricsServer
from haguard.adapters.process import now_key
from haguard.adapters.statefile import StateDir
from haguard.adapters.watch import Fifo, OpenWatch, ProcessExit, readable
from haguard.app import ipvsops, rslevers
from haguard.app.healthwatch import HealthWatch, with_table
from haguard.app.levers import expire_due
from haguard.app.rslevers import held_here
from haguard.app.transition import handle_event
from haguard.core.config import Config
from haguard.core.events import ACTIVE_STATES, Event, OrderKey
from haguard.core.fifo import (
    Pending,
    latest_per_instance,
    parse_line,
)
from haguard.core.gcpause import freeze_long_lived
from haguard.core.ipvsconfig import VirtualService
from haguard.core.metrics import Family, agent_families
from haguard.errors import HaguardError, OperationFailed

TICK_S = 0.2          # how often pid files and the FIFO's identity are re-checked
PUBLISH_S = 1.0       # how often the real servers' status is rewritten (when it changed)
OPEN_FILES_SPARE = 1024   # open files beyond one per check: sockets, the FIFO, state files
LAG_PERIOD_S = 1.0    # how often the event loop's lateness is measured (for /metrics)
# The interpreter's switch interval while the agent runs (Python's default is 5 ms): a
# thread writing the status of thousands of real servers holds the interpreter until
# then, and the loop, back from each system call of a transition, waited that long.
SWITCH_INTERVAL_S = 0.0005


class Agent:
    def __init__(self, config: Config, log: Log) -> None:
        if config.agent is None:
            raise OperationFailed(f"{config.path} has no 'agent' section: add `agent: {{}}` "
                                  "(and render keepalived.conf again) to run the agent")
        self.config = config
        self.log = log.bind(node=config.node.name, component="agent")
        self.state_dir = StateDir(config.node.state_dir)
        self.journal = Journal(os.path.join(config.node.state_dir, "journal"))
        self.states: dict[str, str] = {}
        # keepalived's VRRP process: its exit means STOP.
        self.keepalived: ProcessExit | None = None
        self._stop = threading.Event()
        self._lock = PidLock(config.agent_lock)
        self._reload_requested = threading.Event()
        self.health: HealthWatch | None = None
        self._levers_seen: float | None = None
        # When this agent last reconciled each instance's IPVS rules itself (see _apply).
        self._reconciled_at: dict[str, float] = {}
        self.transitions = 0
        self._next_expiry_check = 0.0
        self.host: Host | None = None
        # What `ipvs apply` waits for: the config this agent runs (its digest) and how its
        # last reload went; published with the health snapshot.
        self.loaded: dict[str, Any] = {"path": config.path, "digest": _digest(config.path),
                                       "reload": None}
        # For /metrics: the last health snapshot published, the loop's lateness, and when
        # keepalived last wrote to the FIFO.
        self._published: dict[str, Any] | None = None
        # Snapshots are written by worker threads (and a reload's on the loop): one at a
        # time, and never an older one over a newer.
        self._publish_lock = threading.Lock()
        self._publish_seq = self._written_seq = 0
        self._loop_lag_s: float | None = None
        self._last_fifo_line_at: float | None = None

    # ------------------------------------------------------------------ lifecycle
    def _acquire(self) -> None:
        self.state_dir.ensure()
        other = self._lock.acquire()
        if other is not None:
            raise OperationFailed(f"another haguard agent (pid {other}) holds "
                                  f"{self.config.agent_lock}; one agent per node")

    def stop(self, *_: object) -> None:
        self._stop.set()

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; the VIPs stay as they are when the agent stops."""
        self._acquire()
        process.on_termination(self.stop)
        process.on_reload(self._reload_requested.set)
        assert self.config.agent is not None
        fifo = Fifo(self.config.agent.fifo)
        watch = OpenWatch(fifo.path)
        self.log.info("agent_started", pid=process.own_pid(), fifo=fifo.path,
                      instances=[i.name for i in self.config.instances])
        self._open_files()
        try:
            with Host(keep_sockets=True) as host, process.switch_interval(SWITCH_INTERVAL_S):
                self.host = host
                asyncio.run(self._serve(fifo, watch))
        finally:
            watch.close()
            fifo.close()
            if self.keepalived is not None:
                self.keepalived.close()
            self.log.info("agent_stopped", transitions=self.transitions)
            self._lock.release()
        return 0

    def _open_files(self) -> None:
        """Every check may hold a socket at once: the default limit of 1,024 open files
        made an agent with thousands of checks fail them all, then die (EMFILE)."""
        checks = sum(len(rs.health.checks) for s in (self.config.ipvs.services
                                                      if self.config.ipvs else ())
                     for rs in s.real_servers if rs.health is not None)
        wanted = checks + OPEN_FILES_SPARE
        soft, hard = process.raise_open_files(wanted)
        if soft < wanted:
            self.log.warning("open_files_limit", limit=soft, hard_limit=hard, checks=checks,
                             action="checks beyond the limit fail; raise LimitNOFILE")

    async def _serve(self, fifo: Fifo, watch: OpenWatch) -> None:
        self.health = self._watch_health()
        self._resynchronise(fifo)
        watch.opened()  # our own open, and keepalived's before we started
        tasks = []
        if self.health is not None:
            self.health.start()
            tasks.append(asyncio.get_running_loop().create_task(
                self.health.publish_every(PUBLISH_S), name="health status"))
        freeze_long_lived()
        metrics = await self._serve_metrics()
        if metrics is not None:
            tasks.append(asyncio.get_running_loop().create_task(
                self._measure_lag(), name="loop lag"))
        try:
            while not self._stop.is_set():
                await self._serve_once(fifo, watch)
        finally:
            if self.health is not None:
                self.health.stop()
            if metrics is not None:
                metrics.close()
            for task in tasks:
                task.cancel()

    # ------------------------------------------------------------------ metrics
    async def _serve_metrics(self) -> MetricsServer | None:
        """/metrics where the config says; a port it cannot have is logged and the agent
        goes on without it (its work is the VIPs, not the scrape)."""
        assert self.config.agent is not None
        listen = self.config.agent.metrics_listen
        if listen is None:
            return None
        server = MetricsServer(self._collect_metrics)
        try:
            await server.start(*listen)
        except OSError as exc:
            self.log.error("metrics_listen_failed", address=listen[0], port=listen[1],
                           error=exc.strerror or str(exc),
                           action="serving no /metrics; the textfile is still written")
            return None
        self.log.info("metrics_listening", address=listen[0], port=server.port())
        return server

    def _collect_metrics(self) -> Callable[[], list[Family]]:
        """What a scrape reads, taken on the loop; the families are built by the caller's
        worker thread from it (the records and the last drill are read there, from disk)."""
        node, names = self.config.node.name, [i.name for i in self.config.instances]
        published, state_dir = self._published, self.state_dir
        own = agent_families(node, self._loop_lag_s, self.transitions, self._last_fifo_line_at)
        return lambda: state_dir.metric_families(node, names, published) + own

    async def _measure_lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(LAG_PERIOD_S)
            self._loop_lag_s = max(0.0, loop.time() - start - LAG_PERIOD_S)

    # ------------------------------------------------------------------ health
    def _watch_health(self) -> HealthWatch | None:
        config = self.config
        if config.ipvs is None:
            return None
        watch = HealthWatch(config, self.log, apply=self._apply_services, held=self._holds,
                            publish=self._publish_health,
                            remembered=self.state_dir.read_health())
        self._levers_seen = leverfiles.rs_levers_changed_at(config.node.lever_dir)
        watch.set_levers(leverfiles.read_rs_levers(config.node.lever_dir))
        return watch

    def _publish_health(self, snapshot: dict[str, Any]) -> Callable[[], None]:
        """Take ``snapshot`` as what the agent says (on the loop); return the writing of it
        to state_dir, which health does in a worker thread (encoding ten thousand real
        servers would hold the loop)."""
        snapshot["config"] = self.loaded
        self._published = snapshot
        self._publish_seq += 1
        seq, node = self._publish_seq, self.config.node.name
        names = [i.name for i in self.config.instances]

        def write() -> None:
            with self._publish_lock:
                if seq < self._written_seq:
                    return          # a newer snapshot is on disk already (a reload's)
                self.state_dir.write_health(snapshot)
                self.state_dir.write_metrics(node, names, snapshot)
                self._written_seq = seq
        return write

    def _follow_levers(self) -> None:
        """Take the operator's real-server levers as soon as their file changes."""
        if self.health is None:
            return
        changed = leverfiles.rs_levers_changed_at(self.config.node.lever_dir)
        if changed != self._levers_seen:
            self._levers_seen = changed
            self.health.set_levers(leverfiles.read_rs_levers(self.config.node.lever_dir))

    def _holds(self, service: VirtualService) -> bool:
        """Whether this node holds ``service`` in its kernel now."""
        return held_here(self.config, service, self.states)

    def _apply_services(self, services: list[VirtualService]) -> None:
        assert self.host is not None
        ipvsops.apply_services(self.config, services, connect=self.host.ipvs)

    def _effective(self) -> Config:
        """The config with the table as health leaves it: what a transition applies."""
        if self.health is None or self.config.ipvs is None:
            return self.config
        services = self.health.effective_services(self.config.ipvs.services)
        return self.config if services is self.config.ipvs.services else \
            with_table(self.config, services)

    def _reload(self) -> None:
        """Re-read the config (SIGHUP) and make the kernel's table agree where this node
        holds it: while the agent runs it is the table's one writer, and `ipvs apply`
        asks it to do this instead of writing the kernel itself."""
        self._reload_requested.clear()
        # One read: the digest `ipvs apply` waits for names the bytes this reload parsed.
        digest = None
        try:
            data = files.read_config(self.config.path)
            digest = files.digest_of(data)
            config = files.parse_config(data, self.config.path)
        except HaguardError as exc:
            self._reloaded(digest, f"{exc} (kept the running config)")
            self.log.error("reload_failed", config=self.config.path, error=str(exc),
                           action="kept the running config")
            return
        if [i.name for i in config.instances] != [i.name for i in self.config.instances] \
                or config.agent != self.config.agent:
            self._reloaded(digest, "instances or the agent section changed: restart the "
                                   "agent for that (kept the running config)")
            self.log.error("reload_failed", config=self.config.path,
                           error="instances or the agent section changed",
                           action="kept the running config; restart the agent for that")
            return
        self.config = config
        self._reconciled_at.clear()
        if self.health is not None:
            self.health.reload(config)
        elif (health := self._watch_health()) is not None:
            self.health = health
            health.start()
            asyncio.get_running_loop().create_task(health.publish_every(PUBLISH_S))
        freeze_long_lived()
        self.log.info("reloaded", config=config.path)
        try:
            changes = self._apply_held_table()
        except HaguardError as exc:
            self._reloaded(digest, f"the table was not applied: {exc}")
            self.log.error("reload_apply_failed", error=str(exc))
            return
        for line in changes:
            self.log.info("ipvs_changed", change=line, reason="reload")
        self._reloaded(digest, None, changes)

    def _apply_held_table(self) -> list[str]:
        """The effective table into the kernel where this node holds it: every service
        with ``on_backup: keep``, else the services of the instances it is MASTER of.
        Incremental: only what the reload changed is read back and written."""
        if self.config.ipvs is None:
            return []
        config = self._effective()
        if ipvsops.settings(config).on_backup == "keep":
            return ipvsops.apply(config, incremental=True, connect=self._ipvs_connect())
        changes: list[str] = []
        for inst in self.config.instances:
            if self.states.get(inst.name) in ACTIVE_STATES:
                changes += ipvsops.apply(config, inst.name, incremental=True,
                                         connect=self._ipvs_connect())
        return changes

    def _ipvs_connect(self) -> Callable[[], Any]:
        assert self.host is not None
        return self.host.ipvs

    def _reloaded(self, digest: str | None, error: str | None,
                  changes: list[str] | None = None) -> None:
        """Publish how the reload of the config with ``digest`` went, at once (the table
        changes health queued written first, so the snapshot's ``written`` is current)."""
        self.loaded = {"path": self.config.path, "digest": digest,
                       "reload": {"ok": error is None, "error": error,
                                  "changes": changes or [], "at": time.time()}}
        if self.health is not None:
            self.health.flush()
        snapshot = self.health.snapshot() if self.health is not None else \
            {"at": time.time(), "services": []}
        try:
            self._publish_health(snapshot)()
        except (OSError, HaguardError) as exc:
            self.log.warning("health_publish_failed", error=str(exc))

    # ------------------------------------------------------------------ the loop
    async def _serve_once(self, fifo: Fifo, watch: OpenWatch) -> None:
        self._attach_keepalived()
        if self._reload_requested.is_set():
            self._reload()
        self._follow_levers()
        if time.monotonic() >= self._next_expiry_check:
            # A lever's TTL is on disk; enforcing it here covers a lost expiry waiter.
            self._next_expiry_check = time.monotonic() + 1.0
            try:
                for line in expire_due(self.config) + (
                        rslevers.expire_due(self.config, by_agent=True)
                        if self.config.ipvs else []):
                    self.log.info("lever_expired", detail=line)
            except (OSError, HaguardError) as exc:
                self.log.warning("lever_expiry_failed", error=str(exc))
        fds = [fifo.fd, watch.fd] + ([self.keepalived.fd] if self.keepalived else [])
        ready = await readable(fds, TICK_S)
        if fifo.fd in ready:
            lines = fifo.read_lines()
            if lines:
                self._last_fifo_line_at = time.time()
                failpoint.hit("agent:read")
                self._apply_lines(lines)
                failpoint.hit("agent:applied")
        self._catch_up_journal()
        if self.keepalived is not None and self.keepalived.fd in ready:
            # Events it wrote before it ended were read above; what is still MASTER now
            # lost its VRRP process without a STOP.
            self._keepalived_ended()
        if watch.fd in ready and watch.opened():
            self._reassert_all("keepalived opened the notify FIFO (start or reload)")
        if fifo.replaced():
            self.log.warning("fifo_replaced", fifo=fifo.path,
                             action="recreated and reopened; keepalived must be reloaded "
                                    "to write to it again" if fifo.exists()
                                    else "recreated and reopened")
            fifo.reopen()
            watch.rewatch()

    def _apply_lines(self, lines: list[str]) -> None:
        pending: list[Pending] = []
        for line in lines:
            parsed = parse_line(line)
            if parsed.event is None:
                self.log.info("fifo_line_skipped", line=line, reason=parsed.skipped)
                continue
            pending.append(Pending(parsed.event, parsed.reassert))
        for item in latest_per_instance(pending):
            self._apply(item.event, reason="reassert" if item.reassert else "event")

    def _apply(self, event: Event, reason: str, order: OrderKey | None = None) -> None:
        """Apply ``event``; ``order`` is its place in line (default: now).

        A re-assertion passes the recorded state's own key: an event newer than that
        record (a hook's, while no agent ran) then wins whichever runs first.
        """
        assert self.host is not None, "events are applied only while the agent runs"
        reconciled = self._reconciled_at.get(event.name)
        current = reconciled is not None and (
            self.health is None or reconciled > self.health.last_failure)
        try:
            outcome = handle_event(self._effective(), event, order or now_key(), host=self.host,
                                   in_background=_in_thread, ipvs_current=current,
                                   component="agent", reason=reason)
        except HaguardError:
            self._reconciled_at.pop(event.name, None)
            return  # logged as transition_failed; the next event may finish the job
        if outcome != "ignored":
            self.states[event.name] = event.state
            self.transitions += 1
        if outcome == "applied":
            # This agent has just made the instance's rules what it wants (a BACKUP or
            # FAULT with on_backup: keep, or a MASTER): its next takeover may verify them
            # after announcing instead of before. A passive state with current rules read
            # nothing back: its time stays that of the reconcile that last looked.
            record = self.state_dir.read_state(event.name) or {}
            if not record.get("complete") or event.state not in ("MASTER", "BACKUP", "FAULT"):
                self._reconciled_at.pop(event.name, None)
            elif not (current and event.state != "MASTER"):
                self._reconciled_at[event.name] = time.monotonic()

    # ------------------------------------------------------------------ keepalived
    def _attach_keepalived(self) -> None:
        if self.keepalived is not None:
            return
        pid = process.pid_from_file(self.config.keepalived.vrrp_pid_file)
        if pid is None or not process.alive(pid):
            return
        watched = ProcessExit.of(pid)
        if watched is None:
            return
        self.keepalived = watched
        self.log.info("keepalived_attached", vrrp_pid=pid)

    def _keepalived_ended(self) -> None:
        assert self.keepalived is not None
        pid = self.keepalived.pid
        self.keepalived.close()
        self.keepalived = None
        masters = [name for name, state in self.states.items() if state in ACTIVE_STATES]
        self.log.warning("keepalived_ended", vrrp_pid=pid, stopping=masters)
        for name in masters:
            self._apply(Event("INSTANCE", name, "STOP"), reason="keepalived ended")

    def _keepalived_running(self) -> bool:
        pid = process.pid_from_file(self.config.keepalived.vrrp_pid_file)
        return pid is not None and process.alive(pid)

    # ------------------------------------------------------------------ start-up
    def _resynchronise(self, fifo: Fifo) -> None:
        """Apply what was missed while no agent ran; re-assert the rest."""
        recorded: dict[str, str] = {}
        applied_upto: dict[str, OrderKey | None] = {}
        for inst in self.config.instances:
            record = self.state_dir.read_state(inst.name) or {}
            applied_upto[inst.name] = OrderKey.from_list(record.get("order"))
            if record.get("state"):
                recorded[inst.name] = str(record["state"])
                self.states[inst.name] = recorded[inst.name]
        cutoff = now_key()
        pending = [Pending(ev) for key, ev in self.journal.entries()
                   if (upto := applied_upto.get(ev.name)) is None or key > upto]
        journaled = len(pending)
        for line in fifo.read_lines():
            parsed = parse_line(line)
            if parsed.event is not None:
                pending.append(Pending(parsed.event, parsed.reassert))
        latest = latest_per_instance(pending)
        running = self._keepalived_running()
        self.log.info("agent_resync", journaled=journaled, from_fifo=len(pending) - journaled,
                      recorded=recorded, keepalived_running=running)
        for item in latest:
            self._apply(item.event, reason="missed while no agent ran")
        covered = {item.event.name for item in latest}
        for name, state in recorded.items():
            if name in covered:
                continue
            if not running and state in ACTIVE_STATES:
                self._apply(Event("INSTANCE", name, "STOP"), reason="keepalived is not running")
            else:
                self._apply(Event("INSTANCE", name, state), reason="agent start: re-assert",
                            order=applied_upto.get(name))
        self.journal.forget(upto=cutoff)

    def _reassert_all(self, why: str) -> None:
        self.log.info("reassert", reason=why, states=dict(self.states))
        for name, state in list(self.states.items()):
            record = self.state_dir.read_state(name) or {}
            self._apply(Event("INSTANCE", name, state), reason=why,
                        order=OrderKey.from_list(record.get("order")))

    # ------------------------------------------------------------------ journal
    def _catch_up_journal(self) -> None:
        """Apply a journaled event that is newer than what was applied: a hook that saw
        this agent's lock after its predecessor had read the event from the FIFO and died.
        Entries no newer (in clock ticks) than the applied state are the FIFO's twins."""
        entries = self.journal.entries()
        if not entries:
            return
        applied: dict[str, int] = {}
        for name in {ev.name for _, ev in entries}:
            key = OrderKey.from_list((self.state_dir.read_state(name) or {}).get("order"))
            applied[name] = key.start_ticks if key else -1
        newer = [(key, ev) for key, ev in entries if key.start_ticks > applied[ev.name]]
        latest: dict[str, tuple[OrderKey, Event]] = {}
        for key, ev in newer:
            latest[ev.name] = (key, ev)
        for key, ev in sorted(latest.values(), key=lambda pair: pair[0]):
            self._apply(ev, reason="journaled by a hook, missing from the FIFO", order=key)
        for key, _ in entries:
            self.journal.remove(key)


def _in_thread(work: Callable[[], None]) -> None:
    threading.Thread(target=work, daemon=True).start()


def serve(config: Config) -> int:
    """Run the agent for ``config`` until it is told to stop."""
    log = get_logger(config.node.log_file)
    return Agent(config, log).run()


def _digest(path: str) -> str | None:
    try:
        return files.digest(path)
    except OSError:
        return None
