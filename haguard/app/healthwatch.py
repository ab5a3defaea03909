"""The agent's real-server checks on the agent's event loop (TCP and plain-HTTP checks in
bulk on one epoll set, the others one task each), the results through
haguard.core.health, and the effective table kept in the kernel.

No probe blocks: each waits on its own socket or child process, so a slow or hung real
server costs its own check time, never a VRRP transition's. Checks run on MASTER and
BACKUP alike, so a BACKUP that keeps the table (``on_backup: keep``) has it current when
it takes over; a service is written to the kernel only where it is held (MASTER, or
``on_backup: keep``).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

from haguard.adapters import probes
from haguard.adapters.log import Log
from haguard.adapters.sweep import SLICE_S, Sweep, Target
from haguard.core.config import Config
from haguard.core.health import (
    DEFAULT_QUORUM,
    CheckState,
    Phase,
    ServerState,
    ServerView,
    carry_over,
    dynamic_delta,
    effective,
    initial_server,
    lever_kinds,
    live_weight,
    quorum_holds,
    server_step,
    views,
)
from haguard.core.healthconfig import Check
from haguard.core.ipvsconfig import RealServer, ServiceKey, VirtualService
from haguard.core.leverrules import RsLever

BOOTSTRAP_S = 1.0          # keepalived's BOOTSTRAP_DELAY before a check's first probe
# A check that says what it said before changes nothing worth writing at once; its time
# is written this often (thousands of checks a second must not rewrite the file each).
REFRESH_S = 10.0
NOTIFY_TIMEOUT_S = 10.0    # notify and quorum commands
PUBLISH_SHARE = 10         # the status snapshot takes at most 1/10 of the loop's time


@dataclass
class CheckRecord:
    """What `haguard status` says about one check."""

    kind: str
    ok: bool | None = None
    detail: str = "not checked yet"
    at: float | None = None
    duration_ms: float | None = None
    checks: int = 0


@dataclass
class ServerRecord:
    since: float
    checks: list[CheckRecord]
    failures: int = 0          # consecutive failed results, any check
    transitions: int = 0


@dataclass
class _Service:
    config: VirtualService
    quorum_held: bool | None = None
    applied: VirtualService | None = None
    records: dict[tuple[str, int], ServerRecord] = field(default_factory=dict)
    levers: dict[tuple[str, int], str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Slot:
    """One check of one real server of one service."""

    key: ServiceKey
    rs: RealServer
    index: int
    check: Check


def _probe(check: Check, rs: RealServer, service: VirtualService
           ) -> Callable[[], Coroutine[Any, Any, probes.ProbeResult]]:
    """One probe of ``rs`` as ``check`` says, ready to run again and again (TCP and
    plain-HTTP checks run in bulk instead: adapters/sweep.py)."""
    address, port, timeout = str(rs.address), check.port, check.timeout_s
    if check.http is not None and check.tls is not None:
        spec, tls = check.http, check.tls
        return lambda: probes.https(address, port, spec, timeout, tls)
    if check.dns is not None:
        query = check.dns
        return lambda: probes.dns(address, port, query, timeout)
    assert check.script is not None
    values = {"address": address, "port": str(rs.port), "vip": service.key.address,
              "vport": str(service.key.port), "protocol": service.key.protocol}
    argv = tuple(arg.format(**values) for arg in check.script.command)
    user = check.script.user
    return lambda: probes.command(argv, timeout, user=user)


class HealthWatch:
    """Every checked service of a config, watched until ``stop``."""

    def __init__(self, config: Config, log: Log,
                 apply: Callable[[list[VirtualService]], None],
                 held: Callable[[VirtualService], bool],
                 publish: Callable[[dict[str, Any]], Callable[[], None]],
                 remembered: dict[str, Any] | None = None) -> None:
        self.log = log.bind(component="health")
        self._apply, self._held, self._publish = apply, held, publish
        # What the last agent published: a real server it saw down starts down, so a
        # restart does not put a dead server back until its first check fails.
        self._down_before = {(s.get("service"), r.get("realserver"))
                             for s in (remembered or {}).get("services", [])
                             for r in s.get("realservers", []) if r.get("state") == "down"}
        self.services: dict[ServiceKey, _Service] = {}
        self.states: dict[tuple[ServiceKey, tuple[str, int]], ServerState] = {}
        self.levers: list[RsLever] = []
        self._cached: tuple[tuple[VirtualService, ...], tuple[VirtualService, ...]] | None = None
        # Each watched service's table as last computed (by _changed, or when first asked):
        # a transition asks for all of them, and computing ten thousand real servers'
        # tables again would delay its announcement.
        self._tables: dict[ServiceKey, VirtualService] = {}
        self._tasks: dict[tuple[ServiceKey, tuple[str, int], int], asyncio.Task[None]] = {}
        # TCP and plain-HTTP checks run in bulk (adapters/sweep.py), each a slot by its
        # ident there.
        self._sweep: Sweep | None = None
        self._slots: dict[int, _Slot] = {}
        self._dirty = True
        self._checked = False
        # When a kernel write last failed: a table reconciled before then is not current.
        self.last_failure = 0.0
        # Services whose table changed, written together once the loop has run every
        # check that finished with them: one write of the table's records for a batch,
        # not one per real server, when a switch takes thousands down at once.
        self._pending: dict[ServiceKey, tuple[VirtualService, str]] = {}
        self._flush_scheduled = False
        # An operator's lever ends the pause between publishes: `haguard ipvs drain` and
        # the others wait for the status file to show it, whatever the table's size.
        self._urgent = asyncio.Event()
        self._generation = 0       # one more at each config loaded: a snapshot under way stops
        self._load(config)

    # ------------------------------------------------------------------ config
    def _load(self, config: Config) -> None:
        self._cached = None
        self._tables = {}
        self._generation += 1
        # Tables computed from the config being replaced: what still applies is computed
        # again by the caller (reload, start).
        self._pending = {}
        old = self.services
        self.services = {}
        states = {}
        for svc in config.ipvs.services if config.ipvs else ():
            previous = old.get(svc.key)
            entry = _Service(svc, previous.quorum_held if previous else None,
                             previous.applied if previous else None,
                             levers=lever_kinds(svc, self.levers))
            before = {rs.key: rs for rs in previous.config.real_servers} if previous else {}
            for rs in svc.real_servers:
                if rs.health is None:
                    continue
                was = before.get(rs.key)
                state = self.states.get((svc.key, rs.key))
                if state is None and (str(svc.key), str(rs)) in self._down_before:
                    was, state = rs, ServerState(
                        tuple(CheckState(Phase.DOWN) for _ in rs.health.checks),
                        (0,) * len(rs.health.checks))
                states[(svc.key, rs.key)] = carry_over(
                    was.health if was is not None else None, state, rs.health) \
                    if state is not None else initial_server(rs.health)
                kept = previous.records.get(rs.key) if previous else None
                entry.records[rs.key] = kept if kept is not None and was is not None and \
                    was.health == rs.health else ServerRecord(
                        kept.since if kept else time.time(),
                        [CheckRecord(c.kind) for c in rs.health.checks])
            self.services[svc.key] = entry
        self.states = states
        self._dirty = True

    def reload(self, config: Config) -> None:
        """Take a new config: matched real servers keep their state, the rest start anew."""
        self._load(config)
        self._restart_tasks()
        for key, entry in self.services.items():
            if entry.config.watched or entry.levers:
                self._changed(key, reason="config reloaded")

    def set_levers(self, levers: list[RsLever]) -> None:
        """The operator's real-server levers changed: rewrite the services they touch."""
        self.levers = levers
        self._cached = None
        for key, entry in self.services.items():
            kinds = lever_kinds(entry.config, levers)
            if kinds != entry.levers:
                entry.levers = kinds
                self._dirty = True
                self._urgent.set()
                self._changed(key, reason="lever")

    # ------------------------------------------------------------------ the table
    def view(self, key: ServiceKey) -> tuple[ServerView, ...]:
        entry = self.services[key]
        states = {rs.key: self.states[(key, rs.key)] for rs in entry.config.real_servers
                  if (key, rs.key) in self.states}
        return views(entry.config, states, entry.levers)

    def table(self, key: ServiceKey) -> VirtualService:
        """The service as the kernel should hold it now."""
        entry = self.services[key]
        return effective(entry.config, self.view(key), entry.quorum_held is not False)

    def effective_services(self, services: tuple[VirtualService, ...]
                           ) -> tuple[VirtualService, ...]:
        """``services`` as health and the levers leave them (the same tuple when they
        touch none). Every transition asks: the answer is kept until something changes."""
        if self._cached is not None and self._cached[0] is services:
            return self._cached[1]
        tables = tuple(self._table_of(s) for s in services)
        result = services if all(a is b for a, b in zip(tables, services)) else tables
        self._cached = (services, result)
        return result

    def _table_of(self, service: VirtualService) -> VirtualService:
        table = self._tables.get(service.key)
        if table is None:
            entry = self.services.get(service.key)
            if entry is None or not (entry.config.watched or entry.levers):
                return service
            table = self._tables[service.key] = self.table(service.key)
        return table

    # ------------------------------------------------------------------ running
    def start(self) -> None:
        """Start every check (after keepalived's bootstrap delay and a random warm-up, so
        a restart does not probe every real server at once)."""
        for key, entry in self.services.items():
            if entry.config.watched or entry.levers:
                self._changed(key, reason="agent start")
        self._restart_tasks()

    def _restart_tasks(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        self._tasks = {}
        loop = asyncio.get_running_loop()
        if self._sweep is None:
            self._sweep = Sweep(loop, self._swept)
        else:
            self._sweep.clear()
        self._slots = {}
        for key, entry in self.services.items():
            for rs in entry.config.real_servers:
                if rs.health is None:
                    continue
                for index, check in enumerate(rs.health.checks):
                    slot = _Slot(key, rs, index, check)
                    delay = BOOTSTRAP_S + random.uniform(0, check.interval_s)
                    if check.kind == "tcp" or check.http is not None and check.tls is None:
                        ident = len(self._slots) + 1
                        self._slots[ident] = slot
                        self._sweep.add(ident, Target(str(rs.address), check.port,
                                                      check.timeout_s, check.http), delay)
                    else:
                        self._tasks[(key, rs.key, index)] = loop.create_task(
                            self._run(slot, delay), name=f"check {rs} #{index}")

    def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        self._tasks = {}
        if self._sweep is not None:
            self._sweep.close()
            self._sweep = None
        self.flush()        # what the last checks changed is written before the agent ends

    async def _run(self, slot: _Slot, delay: float) -> None:
        probe = _probe(slot.check, slot.rs, self.services[slot.key].config)
        while True:
            await asyncio.sleep(delay)
            delay = self._outcome(slot, await probe())

    def _swept(self, ident: int, result: probes.ProbeResult) -> float:
        return self._outcome(self._slots[ident], result)

    def _outcome(self, slot: _Slot, result: probes.ProbeResult) -> float:
        """Take one probe's result into the real server's state; the delay before the
        check's next probe."""
        key, rs, index, check = slot.key, slot.rs, slot.index, slot.check
        if result.local:
            return self._not_made(key, rs, index, check, result)
        assert rs.health is not None
        health = rs.health
        ok, delta = result.ok, None
        if check.script is not None and check.script.dynamic_weight and \
                result.exit_code is not None and 2 <= result.exit_code <= 255:
            ok, delta = True, dynamic_delta(rs.weight, result.exit_code)
        elif check.script is not None and check.script.dynamic_weight and ok:
            delta = 0
        state = self.states[(key, rs.key)]
        new, delay = server_step(health, state, index, ok, delta)
        record = self.services[key].records[rs.key]
        before = record.checks[index]
        if (before.ok, before.detail) != (ok, result.detail):
            self._dirty = True
        # Replaced, never changed: a snapshot under way holds the one it read.
        record.checks[index] = CheckRecord(check.kind, ok, result.detail, time.time(),
                                           round(result.duration_s * 1000, 3),
                                           before.checks + 1)
        record.failures = 0 if ok else record.failures + 1
        self._checked = True
        if new is state:       # a pass while up, a failure while down: the common case
            return delay
        self.states[(key, rs.key)] = new
        if new.up != state.up:
            record.since = time.time()
            record.transitions += 1
            self.log.info("realserver_up" if new.up else "realserver_down",
                          service=str(key), realserver=str(rs), check=check.kind,
                          detail=result.detail)
            commands = (health.notify_up if new.up else health.notify_down)
            if commands:
                self._spawn_command(commands, "notify_up" if new.up else "notify_down",
                                    realserver=str(rs))
        if new != state:
            self._changed(key, reason=f"{rs}: {result.detail}")
        return delay

    def _not_made(self, key: ServiceKey, rs: RealServer, index: int, check: Check,
                  result: probes.ProbeResult) -> float:
        """A probe this host could not make (no file descriptor, no port): the real
        server's state stands, status says why it was not checked, and the check is tried
        again an interval later. Its delay before the next probe."""
        record = self.services[key].records[rs.key]
        before = record.checks[index]
        record.checks[index] = CheckRecord(check.kind, before.ok, result.detail, time.time(),
                                           round(result.duration_s * 1000, 3), before.checks)
        if before.detail != result.detail:
            self._dirty = True
            self.log.warning("check_not_made", service=str(key), realserver=str(rs),
                             check=check.kind, detail=result.detail)
        return check.interval_s

    def _changed(self, key: ServiceKey, reason: str) -> None:
        """Recompute quorum and the service's table; write it where it is held."""
        self._cached = None
        entry = self.services[key]
        quorum = entry.config.quorum or DEFAULT_QUORUM
        weight = live_weight(self.view(key))
        held = quorum_holds(quorum, weight, entry.quorum_held)
        # keepalived's update_quorum_state at a service's start: quorum met is "gained"
        # (quorum_up runs), unmet is "lost" only where a sorry server is to stand in.
        starting = entry.quorum_held is None and (held or entry.config.sorry_server is not None)
        if starting or entry.quorum_held is not None and held != entry.quorum_held:
            self.log.info("quorum_gained" if held else "quorum_lost", service=str(key),
                          live_weight=weight, quorum=quorum.weight,
                          hysteresis=quorum.hysteresis, at_start=starting,
                          sorry_server=str(entry.config.sorry_server)
                          if entry.config.sorry_server else None)
            commands = quorum.up if held else quorum.down
            if entry.config.quorum is not None and commands:
                self._spawn_command(commands, "quorum_up" if held else "quorum_down")
        entry.quorum_held = held
        table = self._tables[key] = self.table(key)
        if entry.applied is not None and table == entry.applied:
            self._pending.pop(key, None)     # back to what the kernel has: nothing to write
            return
        if not self._held(entry.config):
            self._pending.pop(key, None)
            entry.applied = None     # the next takeover writes it whole
            return
        self._pending[key] = (table, reason)
        if self._flush_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._flush_scheduled = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write every service whose table changed since the last write, in one batch."""
        self._flush_scheduled = False
        batch, self._pending = self._pending, {}
        if not batch:
            return
        try:
            self._apply([table for table, _ in batch.values()])
        except Exception as exc:  # noqa: BLE001 - a failed write is retried at the next change
            for key, (table, reason) in batch.items():
                if key in self.services:
                    self.services[key].applied = None
                self.log.error("health_apply_failed", service=str(key), reason=reason,
                               realservers=[f"{rs}:{rs.weight}" for rs in table.real_servers],
                               error=str(exc))
            self.last_failure = time.monotonic()
            return
        for key, (table, reason) in batch.items():
            if key in self.services:
                self.services[key].applied = table
            self.log.info("health_applied", service=str(key), reason=reason,
                          realservers=[f"{rs}:{rs.weight}" for rs in table.real_servers])

    def _spawn_command(self, argv: tuple[str, ...], what: str, **fields: str) -> None:
        async def run() -> None:
            result = await probes.command(argv, NOTIFY_TIMEOUT_S)
            (self.log.info if result.ok else self.log.warning)(
                f"{what}_command", command=list(argv), ok=result.ok, detail=result.detail,
                **fields)
        asyncio.get_running_loop().create_task(run(), name=what)

    # ------------------------------------------------------------------ status
    def snapshot(self) -> dict[str, Any]:
        """Every watched real server as `haguard status` shows it."""
        out: dict[str, Any] = {"at": time.time(), "services": []}
        for key, entry in list(self.services.items()):
            item = self._service_snapshot(key, entry)
            if item is not None:
                out["services"].append(item)
        return out

    async def snapshot_sliced(self) -> tuple[dict[str, Any], float] | None:
        """The snapshot, built a slice at a time (the sweep's SLICE_S: with ten thousand
        real servers it takes a fifth of a second natively) with the loop's other work,
        a VRRP event, between, and the loop's time it took; None when a config was loaded
        meanwhile (its own publishing follows)."""
        generation = self._generation
        out: dict[str, Any] = {"at": time.time(), "services": []}
        busy = 0.0
        began = time.monotonic()
        for key, entry in list(self.services.items()):
            if time.monotonic() > began + SLICE_S:
                busy += time.monotonic() - began
                await asyncio.sleep(0)
                if self._generation != generation:
                    return None
                began = time.monotonic()
            item = self._service_snapshot(key, entry)
            if item is not None:
                out["services"].append(item)
        return out, busy + time.monotonic() - began

    def _service_snapshot(self, key: ServiceKey, entry: _Service) -> dict[str, Any] | None:
        """One service of the snapshot (None: not watched). What it holds is never changed
        afterwards (a check's result replaces its CheckRecord), so a worker thread may
        encode it while the loop goes on."""
        if not entry.config.watched and not entry.levers:
            return None
        table = self._table_of(entry.config)
        in_table = {rs.key: rs.weight for rs in table.real_servers}
        servers = []
        for view in self.view(key):
            rs = view.server
            record = entry.records.get(rs.key)
            servers.append({
                "realserver": str(rs), "checked": rs.health is not None,
                "state": "up" if view.up else "down", "lever": view.lever,
                "in_kernel": rs.key in in_table, "weight": in_table.get(rs.key),
                "since": record.since if record else None,
                "failures": record.failures if record else 0,
                "transitions": record.transitions if record else 0,
                "checks": [vars(c) for c in record.checks] if record else []})
        sorry = entry.config.sorry_server
        return {
            "service": str(key), "quorum": entry.quorum_held,
            # Whether the kernel has this table (None: not held on this node now).
            "written": entry.applied == table if self._held(entry.config) else None,
            "sorry_server": str(sorry) if sorry else None,
            "sorry_server_active": sorry is not None and sorry.key in in_table,
            "realservers": servers}

    async def publish_every(self, seconds: float) -> None:
        """Write the snapshot within ``seconds`` of a change, and every REFRESH_S while
        checks only repeat themselves (their times move on). It is built on the loop a
        slice at a time and written by a worker thread; one that takes long (thousands of
        real servers) is written less often: publishing takes at most 1/PUBLISH_SHARE of
        the time, the checks and the transitions the rest."""
        written = 0.0
        while True:
            pause = seconds
            if self._dirty or (self._checked and time.monotonic() - written >= REFRESH_S):
                self._dirty = self._checked = False
                self.flush()       # what is published as the table is in the kernel first
                written = time.monotonic()
                built = await self.snapshot_sliced()
                if built is None:
                    self._dirty = True
                    continue
                snapshot, busy = built
                work, spent = self._publish(snapshot), [0.0]

                def write() -> None:
                    begun = time.thread_time()
                    try:
                        work()
                    finally:
                        spent[0] = time.thread_time() - begun
                try:
                    await asyncio.to_thread(write)
                except Exception as exc:  # noqa: BLE001 - status is stale, checks go on
                    self.log.warning("health_publish_failed", error=str(exc))
                # What publishing cost (the loop's slices, the writer's CPU), not its wall
                # time: a writer waiting for the interpreter or the disk costs the checks
                # nothing, and nine times such a wait would hold the next change back.
                pause = max(seconds, (busy + spent[0]) * (PUBLISH_SHARE - 1))
            try:
                await asyncio.wait_for(self._urgent.wait(), pause)
            except TimeoutError:
                pass
            self._urgent.clear()


def with_table(config: Config, services: tuple[VirtualService, ...]) -> Config:
    """``config`` with its IPVS services replaced (the effective table)."""
    assert config.ipvs is not None
    return replace(config, ipvs=replace(config.ipvs, services=services))
