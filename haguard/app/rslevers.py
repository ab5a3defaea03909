"""`haguard ipvs disable | enable | drain`: an operator's levers on one real server.

Recorded in ``lever_dir/realservers.json`` (with the expiry, so they survive restarts
and reboots), audited like demote/promote, and part of the effective table everywhere:
the agent re-reads the file when it changes, and `ipvs apply`, a hook's transition and
status read it too. Health never puts a disabled real server back; a draining one stays
at weight 0 whatever its checks say.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from haguard.adapters import leverfiles, locks
from haguard.adapters.host import Host
from haguard.adapters.ipvs import Ipvs
from haguard.adapters.process import invoking_user
from haguard.adapters.statefile import StateDir
from haguard.app import ipvsops
from haguard.app.audit import audit
from haguard.app.levers import expiry_command
from haguard.core.config import Config
from haguard.core.events import ACTIVE_STATES
from haguard.core.health import DISABLED, DRAINING
from haguard.core.ipvsconfig import (
    SERVICE_NAME_FORMS,
    RealServer,
    VirtualService,
    parse_service_name,
)
from haguard.core.leverrules import RsLever, rs_due
from haguard.errors import BadInput, HaguardError, OperationFailed

Say = Callable[[str], None]
DRAIN_POLL_S = 1.0
DRAIN_QUIET_S = 10.0
AGENT_WAIT_S = 30.0        # for a running agent to apply a lever (it follows within a second)
AGENT_POLL_S = 0.1


def find(config: Config, service: str, realserver: str) -> tuple[VirtualService, RealServer]:
    """The configured service and real server these names denote (exit 2 otherwise)."""
    key = parse_service_name(service)
    if key is None:
        raise BadInput(f"{service!r} is not a service name ({SERVICE_NAME_FORMS})")
    found = next((s for s in ipvsops.settings(config).services if s.key == key), None)
    if found is None:
        raise BadInput(f"{service}: not a service of {config.path}")
    rs = next((r for r in found.real_servers if str(r) == realserver.strip()), None)
    if rs is None:
        names = ", ".join(str(r) for r in found.real_servers) or "none"
        raise BadInput(f"{realserver!r} is not a real server of {service} (it has: {names}; "
                       "write address:port, an IPv6 address in brackets)")
    return found, rs


def held_here(config: Config, service: VirtualService,
              states: Mapping[str, str | None] | None = None) -> bool:
    """Whether this node holds ``service`` in its kernel now (``on_backup: keep``, or the
    instance it moves with is MASTER here); ``states`` default to the recorded ones."""
    if ipvsops.settings(config).on_backup == "keep":
        return True
    owner = ipvsops.owner(config, service.key)
    if owner is None:
        return False
    if states is None:
        states = {owner: (StateDir(config.node.state_dir).read_state(owner) or {}).get("state")}
    return states.get(owner) in ACTIVE_STATES


def _write(config: Config, service: VirtualService, rs: RealServer,
           change: Callable[[list[RsLever]], list[RsLever]], *, by_agent: bool = False
           ) -> list[str]:
    """Change the levers and make the kernel agree. Without an agent this writes the
    kernel itself, and on failure the levers are put back.

    While an agent runs, the table is its alone: the levers file is written and the agent
    applies it (it follows the file), and this waits until it says it has. Writing the
    kernel here as well, from its published view, could undo a change it made since it
    last published (a real server it has just found dead, put back). ``by_agent``: the
    agent itself (a lever's TTL) writes the file and goes on."""
    before = leverfiles.read_rs_levers(config.node.lever_dir)
    after = change(before)
    leverfiles.write_rs_levers(config.node.lever_dir, after)
    if by_agent:
        return []
    if config.agent is not None and locks.held_by_another(config.agent_lock):
        name = (str(service.key), str(rs))
        kind = next((lv.kind for lv in after if (lv.service, lv.realserver) == name), None)
        if kind == next((lv.kind for lv in before if (lv.service, lv.realserver) == name),
                        None):
            return [f"{service.key}: {rs} was already so; nothing for the agent to apply"]
        return _wait_for_agent(config, service, rs, kind)
    if not held_here(config, service):
        return [f"{service.key}: not held on this node now; the lever applies when it is"]
    try:
        return ipvsops.apply_only(ipvsops.effective(config), [service.key])
    except HaguardError as exc:
        leverfiles.write_rs_levers(config.node.lever_dir, before)
        raise OperationFailed(f"{service.key}: the kernel was not changed ({exc}); the lever "
                              "was not recorded") from exc


def _wait_for_agent(config: Config, service: VirtualService, rs: RealServer,
                    kind: str | None) -> list[str]:
    """Until the agent publishes ``rs`` with lever ``kind`` and its table in the kernel
    (where the service is held); OperationFailed after AGENT_WAIT_S."""

    def said(health: dict[str, Any]) -> list[str] | None:
        published = {e.get("service"): e for e in health.get("services", [])
                     if isinstance(e, dict)}
        entry = published.get(str(service.key))
        if entry is None and kind is None:
            return [f"{service.key}: the agent holds no lever on it"]
        if entry is not None:
            mine = next((r for r in entry.get("realservers", [])
                         if r.get("realserver") == str(rs)), None)
            if mine is not None and mine.get("lever") == kind and \
                    entry.get("written") is not False:
                where = "in the kernel" if entry.get("written") else \
                    "recorded (not held on this node now)"
                return [f"{service.key}: applied by the agent, {where}"]
        return None
    answer = StateDir(config.node.state_dir).await_health(said, AGENT_WAIT_S, AGENT_POLL_S)
    if answer is None:
        raise OperationFailed(
            f"{service.key}: the lever is recorded, but the running agent has not "
            f"applied it within {AGENT_WAIT_S:g} s (its log says why: "
            "health_apply_failed); it applies it as soon as it can")
    return answer


def pull(config: Config, service: str, realserver: str, *, kind: str, reason: str,
         ttl_s: float | None) -> list[str]:
    """disable (out of the kernel) or drain (weight 0) one real server."""
    if not reason.strip():
        raise BadInput("--reason: say why (it goes to the audit log)")
    svc, rs = find(config, service, realserver)
    now = time.time()
    lever = RsLever(str(svc.key), str(rs), kind, now, invoking_user(), reason,
                    now + ttl_s if ttl_s else None)
    changes = _write(config, svc, rs, lambda levers: [
        lv for lv in levers if (lv.service, lv.realserver) != (lever.service, lever.realserver)
    ] + [lever])
    audit(config, f"rs_{kind}", service=lever.service, realserver=lever.realserver,
          reason=reason, ttl_s=ttl_s)
    if ttl_s:
        with Host() as machine:
            machine.spawn(expiry_command(config))
    what = "out of the kernel" if kind == DISABLED else "at weight 0 (no new connections)"
    until = f" until {time.strftime('%H:%M:%S', time.localtime(lever.expires_at))}" \
        if lever.expires_at else " until `haguard ipvs enable`"
    return [f"{rs} of {svc.key}: {kind}, {what}{until}", *changes]


def enable(config: Config, service: str, realserver: str, *, reason: str,
           why: str = "enable", by_agent: bool = False) -> list[str]:
    """Take the lever off one real server: its health alone decides again."""
    svc, rs = find(config, service, realserver)
    name = (str(svc.key), str(rs))
    was = [lv.kind for lv in leverfiles.read_rs_levers(config.node.lever_dir)
           if (lv.service, lv.realserver) == name]
    changes = _write(config, svc, rs, lambda levers: [
        lv for lv in levers if (lv.service, lv.realserver) != name], by_agent=by_agent)
    audit(config, f"rs_{why}", service=name[0], realserver=name[1], reason=reason,
          cleared=was[0] if was else None)
    return [f"{rs} of {svc.key}: " + (f"{was[0]} lifted" if was else "had no lever"),
            *changes]


def drain(config: Config, service: str, realserver: str, *, reason: str, ttl_s: float | None,
          wait: bool, timeout_s: float, remove: bool, say: Say) -> list[str]:
    """Weight 0; with ``wait``, count its connections down to 0 (``remove``: then out)."""
    lines = pull(config, service, realserver, kind=DRAINING, reason=reason, ttl_s=ttl_s)
    if not wait:
        return lines
    for line in lines:          # before the countdown, not after it
        say(line)
    lines = []
    svc, rs = find(config, service, realserver)
    deadline = time.monotonic() + timeout_s
    said: tuple[tuple[int, int], float] | None = None
    while True:
        with Ipvs() as ipvs:
            active, inactive = ipvs.connections(svc.key).get(str(rs), (0, 0))
        # A line when the figures move, and every DRAIN_QUIET_S while they stand still.
        now = time.monotonic()
        if said is None or said[0] != (active, inactive) or now - said[1] >= DRAIN_QUIET_S:
            say(f"{rs}: {active} active, {inactive} inactive connections")
            said = ((active, inactive), now)
        if active == 0 and inactive == 0:
            break
        if time.monotonic() >= deadline:
            raise OperationFailed(f"{rs} of {svc.key} still has {active} active and {inactive} "
                                  f"inactive connections after {timeout_s:g} s; it stays "
                                  "drained (weight 0)")
        time.sleep(DRAIN_POLL_S)
    lines.append(f"{rs}: no connections left")
    if remove:
        lines += pull(config, service, realserver, kind=DISABLED, reason=reason, ttl_s=ttl_s)
    return lines


def expire_due(config: Config, by_agent: bool = False) -> list[str]:
    """Lift every real-server lever whose time-to-live has run out (``by_agent``: the
    agent, which then follows the levers file itself)."""
    lines = []
    for lever in rs_due(leverfiles.read_rs_levers(config.node.lever_dir), time.time()):
        try:
            lines += enable(config, lever.service, lever.realserver, why="expired",
                            reason=f"ttl expired (set by {lever.by}: {lever.reason})",
                            by_agent=by_agent)
        except BadInput:
            # The config no longer has it: the lever holds nothing back; forget it.
            leverfiles.write_rs_levers(config.node.lever_dir, [
                lv for lv in leverfiles.read_rs_levers(config.node.lever_dir) if lv != lever])
            lines.append(f"{lever.realserver} of {lever.service}: expired (no longer in the "
                         "config)")
    return lines
