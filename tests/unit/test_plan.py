"""Transition planning: (instance, state, observed system) -> exact ordered actions."""

from __future__ import annotations

import ipaddress

import pytest

from haguard.core.config import Announce, Instance, Vip
from haguard.core.events import PASSIVE_STATES, STATES
from haguard.core.plan import (
    AddVip,
    Device,
    Observed,
    RecordState,
    RemoveVip,
    SendAnnouncements,
    SetSysctl,
    StartAnnouncer,
    StopAnnouncer,
    plan_transition,
)
from haguard.errors import OperationFailed

IF = "eth0"
V4 = Vip(ipaddress.ip_interface("192.0.2.100/32"))
V4B = Vip(ipaddress.ip_interface("192.0.2.101/24"), label="eth0:1")
V6 = Vip(ipaddress.ip_interface("2001:db8::100/64"))
VIPS = (V4, V4B, V6)
ANNOUNCE = Announce(count=5, interval_ms=200, repeat_after_s=5.0, refresh_s=0.0)

SYSCTLS = (
    ("net.ipv4.ip_nonlocal_bind", "1"),
    ("net.ipv4.conf.all.arp_ignore", "1"),
    ("net.ipv4.vs.conntrack", "1"),
)

# Addresses the node has that are not VIPs: the plan must never touch them.
UNRELATED = frozenset({
    (ipaddress.ip_address("192.0.2.5"), 24),
    (ipaddress.ip_address("198.51.100.100"), 32),
    (ipaddress.ip_address("fe80::1"), 64),
    (ipaddress.ip_address("2001:db8::5"), 64),
})


def _instance(vips: tuple[Vip, ...] = VIPS, announce: Announce = ANNOUNCE) -> Instance:
    return Instance(name="VI_1", interface=IF, virtual_router_id=51, priority=150,
                    vips=vips, announce=announce)


def _present(*vips: Vip) -> frozenset:
    return frozenset((v.address, v.prefixlen) for v in vips)


def _observed(addresses: frozenset = frozenset(), sysctls: dict | None = None,
              index: int | None = 2) -> Observed:
    return Observed(interface_index=index, addresses=addresses, sysctls=sysctls or {})


ALL_SET = {"net.ipv4.ip_nonlocal_bind": "1", "net.ipv4.conf.all.arp_ignore": "1",
           "net.ipv4.vs.conntrack": "1"}


# --------------------------------------------------------------------------- MASTER


def test_master_from_scratch_sets_differing_sysctls_adds_vips_announces_and_records() -> None:
    observed = _observed(UNRELATED, {"net.ipv4.ip_nonlocal_bind": "0",
                                     "net.ipv4.conf.all.arp_ignore": "1",
                                     "net.ipv4.vs.conntrack": None})
    plan = plan_transition(_instance(), "MASTER", SYSCTLS, observed)
    assert plan.instance == "VI_1"
    assert plan.state == "MASTER"
    assert plan.actions == (
        StopAnnouncer(),
        SetSysctl("net.ipv4.ip_nonlocal_bind", "1", "0"),
        SetSysctl("net.ipv4.vs.conntrack", "1", None),
        AddVip(V4, IF),
        AddVip(V4B, IF),
        AddVip(V6, IF),
        SendAnnouncements(IF, VIPS, 5, 200),
        StartAnnouncer(IF, VIPS, ANNOUNCE),
        RecordState("MASTER"),
    )


def test_master_sets_sysctl_that_was_never_observed() -> None:
    plan = plan_transition(_instance(), "MASTER", (("net.ipv4.ip_nonlocal_bind", "1"),),
                           _observed(_present(*VIPS), {}))
    assert SetSysctl("net.ipv4.ip_nonlocal_bind", "1", None) in plan.actions


def test_master_when_everything_is_in_place_changes_nothing_but_still_announces() -> None:
    observed = _observed(_present(*VIPS) | UNRELATED, dict(ALL_SET))
    plan = plan_transition(_instance(), "MASTER", SYSCTLS, observed)
    assert plan.actions == (
        StopAnnouncer(),
        SendAnnouncements(IF, VIPS, 5, 200),
        StartAnnouncer(IF, VIPS, ANNOUNCE),
        RecordState("MASTER"),
    )


def test_master_replans_identically_when_run_twice_on_the_same_system() -> None:
    observed = _observed(_present(V4), {"net.ipv4.ip_nonlocal_bind": "0"})
    first = plan_transition(_instance(), "MASTER", SYSCTLS, observed)
    assert first == plan_transition(_instance(), "MASTER", SYSCTLS, observed)


def test_master_replaces_vip_present_at_a_wrong_prefix() -> None:
    observed = _observed(_present(V4B, V6) | {(V4.address, 24)} | UNRELATED, dict(ALL_SET))
    plan = plan_transition(_instance(), "MASTER", SYSCTLS, observed)
    assert plan.actions == (
        StopAnnouncer(),
        RemoveVip(V4.address, 24, IF),
        AddVip(V4, IF),
        SendAnnouncements(IF, VIPS, 5, 200),
        StartAnnouncer(IF, VIPS, ANNOUNCE),
        RecordState("MASTER"),
    )


def test_master_removes_every_wrong_prefix_in_ascending_order() -> None:
    observed = _observed(frozenset({(V6.address, 128), (V6.address, 48), (V6.address, 64)}),
                         dict(ALL_SET))
    plan = plan_transition(_instance(vips=(V6,)), "MASTER", SYSCTLS, observed)
    # The right prefix is already there: the wrong ones go, nothing is added.
    assert plan.actions[:3] == (StopAnnouncer(), RemoveVip(V6.address, 48, IF),
                                RemoveVip(V6.address, 128, IF))
    assert not any(isinstance(a, AddVip) for a in plan.actions)


def test_master_with_announce_count_zero_neither_announces_nor_starts_announcer() -> None:
    announce = Announce(count=0, interval_ms=200, repeat_after_s=5.0, refresh_s=60.0)
    plan = plan_transition(_instance(announce=announce), "MASTER", SYSCTLS,
                           _observed(frozenset(), dict(ALL_SET)))
    assert plan.actions == (
        StopAnnouncer(),
        AddVip(V4, IF),
        AddVip(V4B, IF),
        AddVip(V6, IF),
        RecordState("MASTER"),
    )


def test_master_without_repeat_or_refresh_announces_once_without_announcer() -> None:
    announce = Announce(count=3, interval_ms=50, repeat_after_s=0.0, refresh_s=0.0)
    plan = plan_transition(_instance(announce=announce), "MASTER", SYSCTLS,
                           _observed(_present(*VIPS), dict(ALL_SET)))
    assert plan.actions == (
        StopAnnouncer(),
        SendAnnouncements(IF, VIPS, 3, 50),
        RecordState("MASTER"),
    )


@pytest.mark.parametrize(
    ("repeat_after_s", "refresh_s"),
    [(5.0, 0.0), (0.0, 30.0), (2.5, 60.0)],
    ids=["repeat-only", "refresh-only", "repeat-and-refresh"])
def test_master_starts_announcer_when_repeat_or_refresh_is_set(
        repeat_after_s: float, refresh_s: float) -> None:
    announce = Announce(count=1, interval_ms=0, repeat_after_s=repeat_after_s,
                        refresh_s=refresh_s)
    plan = plan_transition(_instance(announce=announce), "MASTER", (),
                           _observed(_present(*VIPS)))
    assert plan.actions == (
        StopAnnouncer(),
        SendAnnouncements(IF, VIPS, 1, 0),
        StartAnnouncer(IF, VIPS, announce),
        RecordState("MASTER"),
    )


def test_master_on_missing_interface_raises_operation_failed_naming_it() -> None:
    with pytest.raises(OperationFailed) as info:
        plan_transition(_instance(), "MASTER", SYSCTLS, _observed(index=None))
    assert IF in str(info.value)
    assert "VI_1" in str(info.value)
    assert info.value.exit_code == 1


# --------------------------------------------------------------------------- passive states


@pytest.mark.parametrize("state", PASSIVE_STATES, ids=PASSIVE_STATES)
def test_passive_state_removes_exactly_the_present_vips(state: str) -> None:
    # V4 is present at a different prefix too; V4B is absent.
    present = _present(V4, V6) | {(V4.address, 24)} | UNRELATED
    plan = plan_transition(_instance(), state, SYSCTLS, _observed(present, {}))
    assert plan.state == state
    assert plan.actions == (
        StopAnnouncer(),
        RemoveVip(V4.address, 24, IF),
        RemoveVip(V4.address, 32, IF),
        RemoveVip(V6.address, 64, IF),
        RecordState(state),
    )


@pytest.mark.parametrize("state", PASSIVE_STATES, ids=PASSIVE_STATES)
def test_passive_state_leaves_unrelated_addresses_alone(state: str) -> None:
    plan = plan_transition(_instance(), state, SYSCTLS, _observed(_present(*VIPS) | UNRELATED))
    removed = {(a.address, a.prefixlen) for a in plan.actions if isinstance(a, RemoveVip)}
    assert removed == _present(*VIPS)
    assert not removed & UNRELATED


@pytest.mark.parametrize("state", PASSIVE_STATES, ids=PASSIVE_STATES)
def test_passive_state_with_nothing_present_only_stops_announcer_and_records(
        state: str) -> None:
    plan = plan_transition(_instance(), state, SYSCTLS,
                           _observed(UNRELATED, {"net.ipv4.ip_nonlocal_bind": "0"}))
    assert plan.actions == (StopAnnouncer(), RecordState(state))


@pytest.mark.parametrize("state", PASSIVE_STATES, ids=PASSIVE_STATES)
def test_passive_state_with_missing_interface_does_not_raise(state: str) -> None:
    plan = plan_transition(_instance(), state, SYSCTLS, _observed(index=None))
    assert plan.actions == (StopAnnouncer(), RecordState(state))


@pytest.mark.parametrize("state", PASSIVE_STATES, ids=PASSIVE_STATES)
def test_passive_state_never_sets_sysctls_or_announces(state: str) -> None:
    plan = plan_transition(_instance(), state, SYSCTLS,
                           _observed(_present(*VIPS), {"net.ipv4.ip_nonlocal_bind": "0"}))
    kinds = {type(a) for a in plan.actions}
    assert not kinds & {SetSysctl, AddVip, SendAnnouncements, StartAnnouncer}


@pytest.mark.parametrize("state", STATES, ids=STATES)
def test_every_state_stops_announcer_first_and_records_state_last(state: str) -> None:
    plan = plan_transition(_instance(), state, SYSCTLS,
                           _observed(_present(V4) | UNRELATED, {"net.ipv4.ip_nonlocal_bind": "0"}))
    assert plan.actions[0] == StopAnnouncer()
    assert plan.actions[-1] == RecordState(state)
    assert sum(isinstance(a, (StopAnnouncer, RecordState)) for a in plan.actions) == 2


# --------------------------------------------------------------------------- sysctl comparison


@pytest.mark.parametrize(
    ("current", "wanted", "must_set"),
    [
        ("1", "1", False),
        (" 1 ", "1", False),
        ("1\n", "1", False),
        ("1", " 1 ", False),
        ("0", "1", True),
        ("10", "1", True),
        ("", "1", True),
        (None, "1", True),
        ("4096\t87380\t6291456", "4096 87380 6291456", False),
        ("4096  87380 6291456\n", "4096 87380 6291456", False),
        ("4096 87380 6291456", "4096 87380 4194304", True),
        ("4096 87380", "4096 87380 6291456", True),
    ],
    ids=["equal", "padded-current", "newline-current", "padded-wanted", "different",
         "prefix-is-not-equal", "empty-current", "unreadable-current", "multi-tabs",
         "multi-extra-spaces", "multi-different", "multi-fewer-values"])
def test_master_compares_sysctls_by_whitespace_split(
        current: str | None, wanted: str, must_set: bool) -> None:
    key = "net.ipv4.tcp_rmem"
    plan = plan_transition(_instance(), "MASTER", ((key, wanted),),
                           _observed(_present(*VIPS), {key: current}))
    sets = [a for a in plan.actions if isinstance(a, SetSysctl)]
    assert sets == ([SetSysctl(key, wanted, current)] if must_set else [])


def test_known_current_rules_move_after_the_announcement_only_with_on_backup_keep() -> None:
    import ipaddress

    from haguard.core.ipvsconfig import IpvsSettings, ServiceKey, VirtualService
    from haguard.core.plan import ReconcileIpvs, SendAnnouncements

    service = VirtualService(key=ServiceKey(4, "tcp", str(ipaddress.ip_address("192.0.2.10")),
                                            80))

    def order(on_backup: str, current: bool) -> list[str]:
        plan = plan_transition(_instance(), "MASTER", (), _observed(),
                               IpvsSettings(on_backup=on_backup, services=(service,)),
                               ipvs_current=current)
        return [type(a).__name__ for a in plan.actions
                if isinstance(a, (ReconcileIpvs, SendAnnouncements))]

    assert order("keep", False) == ["ReconcileIpvs", "SendAnnouncements"]
    assert order("keep", True) == ["SendAnnouncements", "ReconcileIpvs"]
    # with remove the BACKUP holds no rules: they must be made before traffic arrives
    assert order("remove", True) == ["ReconcileIpvs", "SendAnnouncements"]


@pytest.mark.parametrize("state", ["BACKUP", "FAULT"])
def test_a_passive_state_with_known_current_rules_reads_nothing_back(state: str) -> None:
    import ipaddress

    from haguard.core.ipvsconfig import IpvsSettings, ServiceKey, VirtualService
    from haguard.core.plan import ReconcileIpvs, RemoveIpvs

    service = VirtualService(key=ServiceKey(4, "tcp", str(ipaddress.ip_address("192.0.2.10")),
                                            80))

    def ipvs_actions(on_backup: str, current: bool) -> list[str]:
        plan = plan_transition(_instance(), state, (), _observed(_present(*VIPS)),
                               IpvsSettings(on_backup=on_backup, services=(service,)),
                               ipvs_current=current)
        return [type(a).__name__ for a in plan.actions
                if isinstance(a, (ReconcileIpvs, RemoveIpvs))]

    assert ipvs_actions("keep", False) == ["ReconcileIpvs"]
    assert ipvs_actions("keep", True) == []
    # remove takes the rules out whatever the caller knows of them
    assert ipvs_actions("remove", True) == ["RemoveIpvs"]


# --------------------------------------------------------------------------- VIPs on other devices

ON_ETH1 = Vip(ipaddress.ip_interface("198.51.100.10/24"), device="eth1")
ON_ETH1_V6 = Vip(ipaddress.ip_interface("2001:db8:1::10/64"), device="eth1")


def _with_eth1(eth1: frozenset = frozenset(), index: int | None = 3) -> Observed:
    return Observed(interface_index=2, addresses=_present(V4),
                    others={"eth1": Device(index, eth1)})


def test_master_adds_and_announces_each_vip_on_its_own_device() -> None:
    plan = plan_transition(_instance((V4, ON_ETH1, V4B, ON_ETH1_V6)), "MASTER", (),
                           _with_eth1())
    assert plan.actions == (
        StopAnnouncer(),
        AddVip(ON_ETH1, "eth1"),
        AddVip(V4B, IF),
        AddVip(ON_ETH1_V6, "eth1"),
        # One burst per device, the instance's own first: each from its own MAC.
        SendAnnouncements(IF, (V4, V4B), 5, 200),
        SendAnnouncements("eth1", (ON_ETH1, ON_ETH1_V6), 5, 200),
        StartAnnouncer(IF, (V4, ON_ETH1, V4B, ON_ETH1_V6), ANNOUNCE),
        RecordState("MASTER"),
    )


def test_master_fixes_a_wrong_prefix_on_the_vips_own_device_only() -> None:
    # The same address on the instance's interface is not this VIP: it stays.
    wrong = frozenset({(ON_ETH1.address, 32)})
    observed = Observed(interface_index=2, addresses=wrong, others={"eth1": Device(3, wrong)})
    plan = plan_transition(_instance((ON_ETH1,)), "MASTER", (), observed)
    assert plan.actions[:3] == (StopAnnouncer(), RemoveVip(ON_ETH1.address, 32, "eth1"),
                                AddVip(ON_ETH1, "eth1"))


def test_master_is_refused_whole_when_a_vips_device_is_missing() -> None:
    with pytest.raises(OperationFailed, match=r"interface eth1 \(vips\[\]\.interface\) does "
                                              r"not exist on this node; nothing was changed"):
        plan_transition(_instance((V4, ON_ETH1)), "MASTER", (), _with_eth1(index=None))


@pytest.mark.parametrize("state", sorted(PASSIVE_STATES))
def test_passive_states_remove_each_vip_from_its_own_device(state: str) -> None:
    observed = _with_eth1(_present(ON_ETH1) | frozenset(UNRELATED))
    plan = plan_transition(_instance((V4, ON_ETH1)), state, (), observed)
    assert plan.actions == (
        StopAnnouncer(),
        RemoveVip(V4.address, 32, IF),
        RemoveVip(ON_ETH1.address, 24, "eth1"),
        RecordState(state),
    )


def test_passive_states_leave_a_missing_device_alone() -> None:
    plan = plan_transition(_instance((V4, ON_ETH1)), "BACKUP", (), _with_eth1(index=None))
    assert plan.actions == (StopAnnouncer(), RemoveVip(V4.address, 32, IF),
                            RecordState("BACKUP"))
