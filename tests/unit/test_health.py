"""The checker's state machine and the effective table (haguard.core.health), table-driven:
keepalived's retry, alpha and pre-set first failure, haguard's rise, the AND of checks,
dynamic weights, quorum with hysteresis, the sorry server, and levers over health."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest

from haguard.core.health import (
    DISABLED,
    DRAINING,
    RULES,
    CheckState,
    Phase,
    ServerState,
    as_published,
    carry_over,
    dynamic_delta,
    effective,
    initial,
    initial_server,
    live_weight,
    quorum_holds,
    server_step,
    step,
    views,
    weight,
    with_levers,
)
from haguard.core.healthconfig import Check, Quorum, RealServerHealth
from haguard.core.ipvsconfig import RealServer, ServiceKey, VirtualService
from haguard.core.leverrules import RsLever

TCP = Check(kind="tcp", port=80, interval_s=2.0, timeout_s=1.0, retries=2,
            retry_interval_s=0.5)


def run(check: Check, results: str) -> list[tuple[str, float]]:
    """Feed results ('+' ok, '-' failed); each step's phase (with its count) and delay."""
    state = initial(check)
    out = []
    for r in results:
        result = step(check, state, r == "+")
        state = result.state
        out.append((f"{state.phase.value}{state.count or ''}", result.next_in_s))
    return out


def test_every_phase_has_a_rule_for_both_results() -> None:
    assert set(RULES) == {(p, ok) for p in Phase for ok in (True, False)}


@pytest.mark.parametrize(("check", "results", "wanted"), [
    # keepalived pre-sets the retry count: the first result of a check that starts up
    # decides at once
    (TCP, "-", [("down", 2.0)]),
    (TCP, "+", [("up", 2.0)]),
    # retries: 2 means two re-probes, half a second apart, then down at the third failure
    (TCP, "+---", [("up", 2.0), ("retrying1", 0.5), ("retrying2", 0.5), ("down", 2.0)]),
    # a success in between resets the count
    (TCP, "+--+-", [("up", 2.0), ("retrying1", 0.5), ("retrying2", 0.5), ("up", 2.0),
                    ("retrying1", 0.5)]),
    # a check that is down is probed every interval and one success brings it back
    (TCP, "-" + "-+", [("down", 2.0), ("down", 2.0), ("up", 2.0)]),
    # retries: 0 is down at the first failure
    (replace(TCP, retries=0), "+-", [("up", 2.0), ("down", 2.0)]),
    # start: down (alpha) joins after its first success
    (replace(TCP, start="down"), "+", [("up", 2.0)]),
    (replace(TCP, start="down"), "-+", [("down", 2.0), ("up", 2.0)]),
    # rise: 3 needs three successes in a row, a failure starts over
    (replace(TCP, start="down", rise=3), "++-+++",
     [("rising1", 2.0), ("rising2", 2.0), ("down", 2.0), ("rising1", 2.0), ("rising2", 2.0),
      ("up", 2.0)]),
])
def test_a_check_follows_keepalived_s_retry_semantics(check: Check, results: str,
                                                      wanted: list[tuple[str, float]]) -> None:
    assert run(check, results) == wanted


def test_a_fresh_check_counts_as_up_and_an_alpha_check_as_down() -> None:
    assert initial(TCP).up and not initial(replace(TCP, start="down")).up
    assert CheckState(Phase.RETRYING, 1).up and not CheckState(Phase.RISING, 1).up


HTTP = replace(TCP, kind="http", retries=0)
TWO = RealServerHealth(checks=(TCP, HTTP))


def test_a_real_server_is_down_while_any_check_is_and_up_when_the_last_recovers() -> None:
    state = initial_server(TWO)
    state, _ = server_step(TWO, state, 0, True)
    state, _ = server_step(TWO, state, 1, True)
    assert state.up
    state, _ = server_step(TWO, state, 1, False)
    assert not state.up
    state, _ = server_step(TWO, state, 0, False)    # the tcp check retries: still up itself
    assert state.checks[0].phase is Phase.RETRYING and not state.up
    state, _ = server_step(TWO, state, 1, True)
    assert state.up


def test_a_real_server_step_is_its_check_s_step_in_every_state_including_the_short_cut(
        ) -> None:
    # server_step returns the state it was given for a pass while up and a failure while
    # down: in every state, with and without a weight part, the answer is what `step`
    # gives and the weight part rule says.
    states = [CheckState(p, n) for p in Phase for n in (0, 1, 2)]
    for other in states:
        for mine in states:
            for deltas in ((0, 0), (0, 3)):
                for ok in (True, False):
                    for delta in (None, 4):
                        state = ServerState((other, mine), deltas)
                        got, delay = server_step(TWO, state, 1, ok, delta)
                        wanted = step(HTTP, mine, ok)
                        part = delta if delta is not None and ok else \
                            0 if not wanted.state.up else deltas[1]
                        assert (got, delay) == (ServerState((other, wanted.state),
                                                            (0, part)), wanted.next_in_s)


RS = RealServer(address=ipaddress.ip_address("192.0.2.21"), port=80, weight=10)


@pytest.mark.parametrize(("configured", "exit_code", "wanted"), [
    (10, 0, 0), (10, 2, -10), (10, 7, -5), (10, 255, 243), (10, 1, 0), (1, 12, 9)])
def test_a_dynamic_script_s_exit_sets_the_weight_to_exit_minus_two(
        configured: int, exit_code: int, wanted: int) -> None:
    assert dynamic_delta(configured, exit_code) == wanted


def test_each_dynamic_check_s_part_is_kept_apart_and_a_failing_one_gives_it_back() -> None:
    script = replace(TCP, kind="script", retries=0)
    health = RealServerHealth(checks=(script, script))
    state = initial_server(health)
    state, _ = server_step(health, state, 0, True, dynamic_delta(10, 7))    # 5 wanted
    assert weight(RS, state) == 5
    state, _ = server_step(health, state, 0, True, dynamic_delta(10, 7))    # again: still 5
    assert weight(RS, state) == 5
    state, _ = server_step(health, state, 1, True, dynamic_delta(10, 10))   # -2 more
    assert weight(RS, state) == 3
    state, _ = server_step(health, state, 0, False)
    assert state.deltas == (0, -2) and not state.up


@pytest.mark.parametrize(("quorum", "weights", "wanted"), [
    # at start: held when the live weight reaches the quorum
    (Quorum(weight=3), [3], [True]),
    (Quorum(weight=3), [2], [False]),
    # hysteresis 1 around quorum 3: lost below 2, gained at 4
    (Quorum(weight=3, hysteresis=1), [3, 2, 1, 2, 3, 4, 2], [True, True, False, False, False,
                                                            True, True]),
    # zero live weight always loses it
    (Quorum(weight=1, hysteresis=5), [1, 0], [True, False]),
])
def test_quorum_is_gained_and_lost_with_hysteresis(quorum: Quorum, weights: list[int],
                                                   wanted: list[bool]) -> None:
    held: bool | None = None
    got = []
    for w in weights:
        held = quorum_holds(quorum, w, held)
        got.append(held)
    assert got == wanted


def _rs(last: int, **changes: object) -> RealServer:
    return replace(RealServer(address=ipaddress.ip_address(f"192.0.2.{last}"), port=80),
                   **changes)  # type: ignore[arg-type]


def _service(*servers: RealServer, sorry: RealServer | None = None) -> VirtualService:
    return VirtualService(key=ServiceKey(4, "tcp", "192.0.2.100", 80), real_servers=servers,
                          sorry_server=sorry)


DOWN = ServerState((CheckState(Phase.DOWN),), (0,))
UP = ServerState((CheckState(Phase.UP),), (0,))
REMOVE = RealServerHealth(checks=(TCP,))
WEIGHT0 = RealServerHealth(checks=(TCP,), on_down="weight0")


def _table(service: VirtualService, states: dict[tuple[str, int], ServerState],
           levers: dict[tuple[str, int], str], held: bool = True) -> list[tuple[str, int]]:
    return [(str(rs), rs.weight) for rs in
            effective(service, views(service, states, levers), held).real_servers]


def test_a_down_real_server_leaves_the_table_or_stays_at_weight_zero_as_on_down_says() -> None:
    a, b, c = _rs(21, health=REMOVE, weight=2), _rs(22, health=WEIGHT0, weight=3), _rs(23)
    service = _service(a, b, c)
    assert _table(service, {a.key: DOWN, b.key: DOWN}, {}) == [
        ("192.0.2.22:80", 0), ("192.0.2.23:80", 1)]
    assert _table(service, {a.key: UP, b.key: UP}, {}) == [
        ("192.0.2.21:80", 2), ("192.0.2.22:80", 3), ("192.0.2.23:80", 1)]


def test_levers_win_over_health_disabled_leaves_and_draining_is_weight_zero() -> None:
    a, b = _rs(21, health=REMOVE, weight=2), _rs(22, weight=3)
    service = _service(a, b)
    assert _table(service, {a.key: UP}, {a.key: DISABLED, b.key: DRAINING}) == [
        ("192.0.2.22:80", 0)]
    # a disabled real server that recovers stays out
    assert _table(service, {a.key: UP}, {a.key: DISABLED}) == [("192.0.2.22:80", 3)]


def test_quorum_loss_swaps_in_the_sorry_server_and_gain_swaps_it_out() -> None:
    a = _rs(21, health=REMOVE)
    sorry = _rs(30)
    service = _service(a, sorry=sorry)
    lost = views(service, {a.key: DOWN}, {})
    assert live_weight(lost) == 0
    assert _table(service, {a.key: DOWN}, {}, held=False) == [("192.0.2.30:80", 1)]
    assert _table(service, {a.key: UP}, {}, held=True) == [("192.0.2.21:80", 1)]
    # without a sorry server, losing quorum changes nothing in the table
    assert _table(_service(a), {a.key: UP}, {}, held=False) == [("192.0.2.21:80", 1)]


def test_drained_and_weight0_servers_add_nothing_to_the_live_weight() -> None:
    a, b, c = _rs(21, weight=4), _rs(22, weight=5), _rs(23, health=WEIGHT0, weight=6)
    service = _service(a, b, c)
    assert live_weight(views(service, {c.key: DOWN}, {b.key: DRAINING})) == 4


def test_a_reload_keeps_unchanged_checks_and_starts_changed_ones_where_the_server_stood(
) -> None:
    slower = replace(TCP, interval_s=10.0)
    old = RealServerHealth(checks=(TCP, HTTP))
    state = ServerState((CheckState(Phase.RETRYING, 1), CheckState(Phase.DOWN)), (0, 0))
    new = RealServerHealth(checks=(TCP, replace(HTTP, interval_s=10.0), slower))
    carried = carry_over(old, state, new)
    # the server was down: a changed check must not put it back
    assert carried.checks == (CheckState(Phase.RETRYING, 1), CheckState(Phase.DOWN),
                              CheckState(Phase.DOWN))
    assert not carried.up
    assert carry_over(None, None, new) == initial_server(new)


def test_a_published_table_keeps_out_what_the_agent_took_out_at_its_weights() -> None:
    a, b = _rs(21, health=REMOVE, weight=2), _rs(22, health=REMOVE, weight=3)
    new, alpha = _rs(23, health=REMOVE), _rs(24, health=RealServerHealth(
        checks=(replace(TCP, start="down"),)))
    service = _service(a, b, new, alpha, sorry=_rs(30))
    published = {"realservers": [
        {"realserver": "192.0.2.21:80", "in_kernel": False, "weight": None},
        {"realserver": "192.0.2.22:80", "in_kernel": True, "weight": 7}]}
    # a real server the agent did not know yet is as configured, unless it starts down
    assert [(str(rs), rs.weight) for rs in as_published(service, published).real_servers] == [
        ("192.0.2.22:80", 7), ("192.0.2.23:80", 1)]
    assert as_published(service, None) == service
    assert [str(rs) for rs in as_published(
        service, {**published, "sorry_server_active": True}).real_servers] == ["192.0.2.30:80"]


def test_a_server_only_a_lever_held_comes_back_as_configured_once_the_lever_is_gone() -> None:
    # `haguard ipvs enable` computes the table from what the agent published, in which
    # the disabled (or draining) real server is out (or at 0) though its checks pass.
    disabled, draining, dead = (_rs(21, health=REMOVE, weight=2), _rs(22, health=REMOVE,
                                weight=3), _rs(23, health=REMOVE))
    service = _service(disabled, draining, dead)
    published = {"realservers": [
        {"realserver": "192.0.2.21:80", "state": "up", "lever": DISABLED,
         "in_kernel": False, "weight": None},
        {"realserver": "192.0.2.22:80", "state": "up", "lever": DRAINING,
         "in_kernel": True, "weight": 0},
        {"realserver": "192.0.2.23:80", "state": "down", "lever": DISABLED,
         "in_kernel": False, "weight": None}]}
    assert [(str(rs), rs.weight) for rs in as_published(service, published).real_servers] == [
        ("192.0.2.21:80", 2), ("192.0.2.22:80", 3)]
    # With the levers still pulled, the caller's with_levers keeps them out / at 0.
    levers = [RsLever("tcp 192.0.2.100:80", "192.0.2.21:80", DISABLED, 0.0, "op", "x", None),
              RsLever("tcp 192.0.2.100:80", "192.0.2.22:80", DRAINING, 0.0, "op", "x", None)]
    assert [(str(rs), rs.weight) for rs in with_levers(
        as_published(service, published), levers).real_servers] == [("192.0.2.22:80", 0)]


def test_every_program_the_agent_runs_is_listed_once_with_where_it_is_configured() -> None:
    from haguard.core.config import loads
    from haguard.core.health import commands

    config = loads("""\
node: {name: lb1}
agent: {}
instances: [{name: VI_1, interface: eth0, virtual_router_id: 51, priority: 150,
             vips: [192.0.2.100/32]}]
ipvs:
  services:
    - vip: 192.0.2.100
      port: 80
      health: {check: script, script: {command: [/usr/local/lib/check, "{address}"]},
               notify: {down: [/usr/local/bin/down, x]}}
      quorum: {up: [/usr/local/bin/q-up]}
      real_servers: [{address: 192.0.2.21}, {address: 192.0.2.22, health: {check: tcp}}]
""", "lb1.yaml")
    assert config.ipvs is not None
    assert commands(config.ipvs) == [
        ("tcp 192.0.2.100:80 192.0.2.21:80: script check", "/usr/local/lib/check"),
        ("tcp 192.0.2.100:80 192.0.2.21:80: notify down", "/usr/local/bin/down"),
        ("tcp 192.0.2.100:80 192.0.2.22:80: notify down", "/usr/local/bin/down"),
        ("tcp 192.0.2.100:80: quorum up", "/usr/local/bin/q-up")]
