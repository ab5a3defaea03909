"""Real-server health: each check's state machine, a real server as the AND of its
checks, quorum with hysteresis, and the effective IPVS table they leave. Pure.

keepalived's semantics (keepalived/check/), reproduced:

- a check that is up re-probes a failure ``retries`` times, ``retry_interval_s`` apart,
  and is down at the next failure; one success resets the count;
- before its first result a check that starts up has its count used up, so its first
  failure is down at once (keepalived pre-sets ``retry_it``); ``start: down`` (alpha)
  starts it down instead;
- a check that is down is probed every ``interval_s``;
- a real server is down while any of its checks is;
- a dynamic script check's exit 2-255 sets the weight to exit - 2, each check's part
  kept separately and added once (keepalived issue 2720);
- quorum: the live real servers' weights added up; gained at quorum + hysteresis, lost
  below quorum - hysteresis or at zero; without quorum the sorry server stands in.

Changed on purpose: ``rise`` successes bring a check back (keepalived: always one; the
default here is one too), and a reload carries each real server's state even where its
check changed (a changed check starts where the real server stood, so a server that is
down is not put back by an edit to, say, its interval).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from haguard.core.healthconfig import Check, Quorum, RealServerHealth
from haguard.core.ipvsconfig import MAX_WEIGHT, IpvsSettings, RealServer, VirtualService
from haguard.core.leverrules import RsLever


class Phase(enum.Enum):
    FRESH = "fresh"          # starts up and has no result yet
    UP = "up"
    RETRYING = "retrying"    # up, re-probing after ``count`` failures
    DOWN = "down"
    RISING = "rising"        # down, ``count`` successes toward ``rise``


@dataclass(frozen=True)
class CheckState:
    phase: Phase
    count: int = 0

    @property
    def up(self) -> bool:
        return self.phase in (Phase.FRESH, Phase.UP, Phase.RETRYING)


# (phase, result ok) -> rule; the rules below read the check's numbers.
RULES: dict[tuple[Phase, bool], str] = {
    (Phase.FRESH, True): "up",
    (Phase.FRESH, False): "down",
    (Phase.UP, True): "up",
    (Phase.UP, False): "retry_or_down",
    (Phase.RETRYING, True): "up",
    (Phase.RETRYING, False): "retry_or_down",
    (Phase.DOWN, True): "rise_or_up",
    (Phase.DOWN, False): "down",
    (Phase.RISING, True): "rise_or_up",
    (Phase.RISING, False): "down",
}


@dataclass(frozen=True)
class Step:
    state: CheckState
    next_in_s: float        # when to probe again


def initial(check: Check) -> CheckState:
    return CheckState(Phase.FRESH if check.start == "up" else Phase.DOWN)


def step(check: Check, state: CheckState, ok: bool) -> Step:
    """One result of ``check`` applied to ``state``."""
    rule = RULES[(state.phase, ok)]
    if rule == "retry_or_down":
        failures = state.count if state.phase is Phase.RETRYING else 0
        if failures < check.retries:
            return Step(CheckState(Phase.RETRYING, failures + 1), check.retry_interval_s)
        return Step(CheckState(Phase.DOWN), check.interval_s)
    if rule == "rise_or_up":
        successes = (state.count if state.phase is Phase.RISING else 0) + 1
        if successes < check.rise:
            return Step(CheckState(Phase.RISING, successes), check.interval_s)
        return Step(CheckState(Phase.UP), check.interval_s)
    return Step(CheckState(Phase.UP if rule == "up" else Phase.DOWN), check.interval_s)


# --------------------------------------------------------------------------- real servers

@dataclass(frozen=True)
class ServerState:
    """One real server: its checks' states and each dynamic check's weight change."""

    checks: tuple[CheckState, ...]
    deltas: tuple[int, ...]

    @property
    def up(self) -> bool:
        return all(c.up for c in self.checks)


def initial_server(health: RealServerHealth) -> ServerState:
    return ServerState(tuple(initial(c) for c in health.checks), (0,) * len(health.checks))


def dynamic_delta(configured: int, exit_code: int) -> int:
    """A dynamic script's weight change: exit 2-255 means weight exit - 2; 0 keeps the
    configured weight."""
    return exit_code - 2 - configured if 2 <= exit_code <= 255 else 0


def server_step(health: RealServerHealth, state: ServerState, index: int, ok: bool,
                delta: int | None = None) -> tuple[ServerState, float]:
    """Check ``index`` of a real server reported ``ok`` (``delta``: a dynamic script's
    weight change); the new state and when that check runs next."""
    check, now = health.checks[index], state.checks[index]
    # The common results, a pass while up and a failure while down, change nothing: the
    # same state comes back (the checker compares it by identity first).
    if delta is None and not now.count and (now.phase is Phase.UP if ok else
                                            now.phase is Phase.DOWN and not state.deltas[index]):
        return state, check.interval_s
    result = step(check, now, ok)
    deltas = list(state.deltas)
    if delta is not None and ok:
        deltas[index] = delta
    elif not result.state.up:
        deltas[index] = 0    # a check that went down gives its weight part back
    checks = state.checks[:index] + (result.state,) + state.checks[index + 1:]
    return ServerState(checks, tuple(deltas)), result.next_in_s


def weight(rs: RealServer, state: ServerState | None) -> int:
    if state is None:
        return rs.weight
    return max(0, min(MAX_WEIGHT, rs.weight + sum(state.deltas)))


def carry_over(old: RealServerHealth | None, state: ServerState | None,
               new: RealServerHealth) -> ServerState:
    """The state a reloaded real server starts with: a check that did not change keeps its
    state; a changed or new one starts where the real server stood."""
    if old is None or state is None:
        return initial_server(new)
    standing = CheckState(Phase.UP if state.up else Phase.DOWN)
    checks, deltas = [], []
    for i, check in enumerate(new.checks):
        if i < len(old.checks) and old.checks[i] == check:
            checks.append(state.checks[i])
            deltas.append(state.deltas[i])
        else:
            checks.append(standing)
            deltas.append(0)
    return ServerState(tuple(checks), tuple(deltas))


# --------------------------------------------------------------------------- quorum

DEFAULT_QUORUM = Quorum()


def quorum_holds(quorum: Quorum, live_weight: int, held: bool | None) -> bool:
    """Whether the service has quorum now; ``held`` is whether it had (None: at start)."""
    if held is None:
        return live_weight >= quorum.weight and live_weight > 0
    if held:
        return not (live_weight == 0 or live_weight < quorum.weight - quorum.hysteresis)
    return live_weight >= quorum.weight + quorum.hysteresis and live_weight > 0


# --------------------------------------------------------------------------- the table

DISABLED = "disabled"
DRAINING = "draining"


@dataclass(frozen=True)
class ServerView:
    """Why a real server is where it is in the effective table."""

    server: RealServer
    up: bool                 # health (True when it is not checked)
    lever: str | None        # disabled | draining | None
    weight: int              # in the kernel (0 when it is out of it)
    in_table: bool


def views(service: VirtualService, states: Mapping[tuple[str, int], ServerState],
          levers: Mapping[tuple[str, int], str]) -> tuple[ServerView, ...]:
    """Each real server as health and the operator's levers leave it (quorum aside)."""
    out = []
    for rs in service.real_servers:
        state = states.get(rs.key) if rs.health is not None else None
        up = state.up if state is not None else True
        lever = levers.get(rs.key)
        if lever == DISABLED:
            out.append(ServerView(rs, up, lever, 0, False))
        elif not up:
            weight0 = rs.health is not None and rs.health.on_down == "weight0"
            out.append(ServerView(rs, up, lever, 0, weight0))
        else:
            out.append(ServerView(rs, up, lever, 0 if lever == DRAINING else weight(rs, state),
                                  True))
    return tuple(out)


def lever_kinds(service: VirtualService, levers: Iterable[RsLever]
                ) -> dict[tuple[str, int], str]:
    """The operator's levers on ``service``'s real servers, by real-server key."""
    name = str(service.key)
    pulled = {lv.realserver: lv.kind for lv in levers if lv.service == name}
    if not pulled:
        return {}
    return {rs.key: pulled[str(rs)] for rs in service.real_servers if str(rs) in pulled}


def with_levers(service: VirtualService, levers: Iterable[RsLever]) -> VirtualService:
    """``service`` with disabled real servers out and draining ones at weight 0."""
    kinds = lever_kinds(service, levers)
    if not kinds:
        return service
    return replace(service, real_servers=tuple(
        replace(rs, weight=0) if kinds.get(rs.key) == DRAINING else rs
        for rs in service.real_servers if kinds.get(rs.key) != DISABLED))


def live_weight(server_views: tuple[ServerView, ...]) -> int:
    return sum(v.weight for v in server_views if v.in_table and v.up)


def effective(service: VirtualService, server_views: tuple[ServerView, ...],
              quorum_held: bool) -> VirtualService:
    """The service as the kernel should hold it: what health and levers leave, or the
    sorry server alone while quorum is lost."""
    if not quorum_held and service.sorry_server is not None:
        return replace(service, real_servers=(service.sorry_server,))
    return replace(service, real_servers=tuple(
        replace(v.server, weight=v.weight) for v in server_views if v.in_table))


def as_published(service: VirtualService, published: Mapping[str, object] | None
                 ) -> VirtualService:
    """``service`` as the agent last published it (its ``health.json`` entry): real servers
    it took out stay out, at the weight it gave the rest; one it did not know (added to
    the config since) is as configured, unless it starts down; one its checks have up but
    a lever held is as configured, for the caller to apply the levers of now."""
    if published is None:
        return service
    listed = published.get("realservers")
    known = {str(r.get("realserver")): r for r in listed if isinstance(r, dict)} \
        if isinstance(listed, list) else {}
    if published.get("sorry_server_active") and service.sorry_server is not None:
        return replace(service, real_servers=(service.sorry_server,))
    servers = []
    for rs in service.real_servers:
        entry = known.get(str(rs))
        if entry is None:
            if rs.health is None or all(c.start == "up" for c in rs.health.checks):
                servers.append(rs)
        elif entry.get("lever") and entry.get("state") == "up":
            # Up by its checks, out or at weight 0 only by a lever: the levers as they are
            # now decide (an `enable` puts it back when the command returns), at its
            # configured weight; a dynamic weight is the agent's again at its next write.
            servers.append(rs)
        elif entry.get("in_kernel") and isinstance(entry.get("weight"), int):
            servers.append(replace(rs, weight=entry["weight"]))
    return replace(service, real_servers=tuple(servers))


def commands(ipvs: IpvsSettings) -> list[tuple[str, str]]:
    """Every program the agent runs for this table, each with where it is configured:
    script checks, notify and quorum commands (script security judges them all)."""
    out: list[tuple[str, str]] = []
    for service in ipvs.services:
        for rs in service.real_servers:
            if rs.health is None:
                continue
            for check in rs.health.checks:
                if check.script is not None:
                    out.append((f"{service.key} {rs}: script check", check.script.command[0]))
            for what, argv in (("notify up", rs.health.notify_up),
                               ("notify down", rs.health.notify_down)):
                if argv:
                    out.append((f"{service.key} {rs}: {what}", argv[0]))
        if service.quorum is not None:
            for what, argv in (("quorum up", service.quorum.up),
                               ("quorum down", service.quorum.down)):
                if argv:
                    out.append((f"{service.key}: {what}", argv[0]))
    return list(dict.fromkeys(out))
