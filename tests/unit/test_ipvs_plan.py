"""IPVS planning: desired services vs the kernel's table -> exact ordered changes,
and where the IPVS steps sit in a VRRP transition."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from haguard.core.config import Announce, Instance, Vip
from haguard.core.events import PASSIVE_STATES
from haguard.core.ipvsconfig import (
    IpvsSettings,
    Persistence,
    RealServer,
    ServiceKey,
    SyncSettings,
    VirtualService,
)
from haguard.core.ipvsplan import (
    AddDest,
    AddService,
    DelDest,
    DelService,
    SetDest,
    SetService,
    describe,
    plan_reconcile,
    plan_removal,
)
from haguard.core.plan import (
    AddVip,
    Observed,
    ReconcileIpvs,
    RecordState,
    RemoveIpvs,
    RemoveVip,
    SendAnnouncements,
    SetSysctl,
    StartAnnouncer,
    StopAnnouncer,
    SyncDaemon,
    plan_transition,
)

ip = ipaddress.ip_address

K80 = ServiceKey(4, "tcp", "192.0.2.100", 80)
K443 = ServiceKey(4, "tcp", "192.0.2.100", 443)
KDNS = ServiceKey(4, "udp", "192.0.2.100", 53)
KMARK = ServiceKey(4, "fwmark", "10", 0)
KV6 = ServiceKey(6, "tcp", "2001:db8::100", 443)
KFOREIGN = ServiceKey(4, "tcp", "192.0.2.100", 8080)
KOLD = ServiceKey(4, "tcp", "192.0.2.100", 25)
KGONE = ServiceKey(4, "tcp", "192.0.2.100", 110)


def rs(address: str, port: int = 80, **fields: object) -> RealServer:
    return RealServer(ip(address), port, **fields)  # type: ignore[arg-type]


RS11 = rs("192.0.2.11", weight=2)
RS12 = rs("192.0.2.12")
RS13 = rs("192.0.2.13")
WEB = VirtualService(K80, "wrr", real_servers=(RS11, RS12))
TLS = VirtualService(K443, "wlc", persistence=Persistence(300, "255.255.255.255"),
                     real_servers=(rs("192.0.2.11", 443), rs("192.0.2.12", 443)))
DNS = VirtualService(KDNS, "rr", real_servers=(rs("10.0.0.11", 5353, forwarding="nat"),))
MARK = VirtualService(KMARK, "sh", flags=("sh-port",), real_servers=(rs("192.0.2.31", 0),))
V6 = VirtualService(KV6, "wlc", real_servers=(rs("2001:db8::41", 443),))
FOREIGN = VirtualService(KFOREIGN, "rr", real_servers=(rs("192.0.2.99", 8080),))
OLD = VirtualService(KOLD, "rr", real_servers=(rs("192.0.2.25", 25),))

DESIRED = (WEB, TLS, DNS, MARK, V6)


def table(*services: VirtualService) -> dict[ServiceKey, VirtualService]:
    return {s.key: s for s in services}


def replace(obj, **changes):  # type: ignore[no-untyped-def]
    return dataclasses.replace(obj, **changes)


# --------------------------------------------------------------------------- plan_reconcile

def test_empty_kernel_gets_every_service_then_its_servers_in_config_order() -> None:
    assert plan_reconcile(DESIRED, {}) == (
        AddService(WEB), AddDest(K80, RS11), AddDest(K80, RS12),
        AddService(TLS), AddDest(K443, TLS.real_servers[0]), AddDest(K443, TLS.real_servers[1]),
        AddService(DNS), AddDest(KDNS, DNS.real_servers[0]),
        AddService(MARK), AddDest(KMARK, MARK.real_servers[0]),
        AddService(V6), AddDest(KV6, V6.real_servers[0]),
    )


def test_service_without_real_servers_is_added_alone() -> None:
    bare = VirtualService(K80)
    assert plan_reconcile((bare,), {}) == (AddService(bare),)


def test_kernel_that_matches_the_config_needs_nothing() -> None:
    keys = [s.key for s in DESIRED]
    assert plan_reconcile(DESIRED, table(*DESIRED)) == ()
    assert plan_reconcile(DESIRED, table(*DESIRED), previously_owned=keys) == ()


def test_real_server_order_in_the_kernel_does_not_matter() -> None:
    shuffled = replace(WEB, real_servers=(RS12, RS11))
    assert plan_reconcile((WEB,), table(shuffled)) == ()


def test_weight_change_is_one_set_dest_saying_old_and_new() -> None:
    kernel = replace(WEB, real_servers=(replace(RS11, weight=1), RS12))
    assert plan_reconcile((WEB,), table(kernel)) == (SetDest(K80, RS11, ("weight 1 -> 2",)),)


def test_threshold_changes_are_listed_in_field_order() -> None:
    want = replace(RS12, upper_threshold=100, lower_threshold=50)
    assert plan_reconcile((replace(WEB, real_servers=(RS11, want)),), table(WEB)) == (
        SetDest(K80, want, ("upper_threshold 0 -> 100", "lower_threshold 0 -> 50")),)


def test_scheduler_change_is_a_set_service() -> None:
    kernel = replace(WEB, scheduler="rr")
    assert plan_reconcile((WEB,), table(kernel)) == (SetService(WEB, ("scheduler rr -> wrr",)),)


def test_persistence_switched_on_is_one_change_line() -> None:
    kernel = replace(TLS, persistence=None)
    assert plan_reconcile((TLS,), table(kernel)) == (
        SetService(TLS, ("persistence off -> 300",)),)


def test_persistence_switched_off_is_one_change_line() -> None:
    want = replace(TLS, persistence=None)
    assert plan_reconcile((want,), table(TLS)) == (
        SetService(want, ("persistence 300 -> off",)),)


def test_persistence_timeout_change() -> None:
    want = replace(TLS, persistence=Persistence(600, "255.255.255.255"))
    assert plan_reconcile((want,), table(TLS)) == (
        SetService(want, ("persistence 300 -> 600",)),)


def test_persistence_netmask_change() -> None:
    want = replace(TLS, persistence=Persistence(300, "255.255.255.0"))
    assert plan_reconcile((want,), table(TLS)) == (
        SetService(want, ("netmask 255.255.255.255 -> 255.255.255.0",)),)


def test_scheduler_flag_added() -> None:
    want = replace(MARK, flags=("sh-fallback", "sh-port"))
    assert plan_reconcile((want,), table(MARK)) == (
        SetService(want, ("flags sh-port -> sh-fallback,sh-port",)),)


def test_scheduler_flag_removed() -> None:
    want = replace(MARK, flags=())
    assert plan_reconcile((want,), table(MARK)) == (
        SetService(want, ("flags sh-port -> none",)),)


def test_sh_port_to_mh_port_is_the_same_kernel_bit_so_only_the_scheduler_changes() -> None:
    want = replace(MARK, scheduler="mh", flags=("mh-port",))
    assert plan_reconcile((want,), table(MARK)) == (
        SetService(want, ("scheduler sh -> mh",)),)


def test_real_server_added_and_removed_adds_before_it_deletes() -> None:
    want = replace(WEB, real_servers=(RS11, RS13))
    assert plan_reconcile((want,), table(WEB)) == (AddDest(K80, RS13), DelDest(K80, RS12))


def test_across_services_all_adds_come_before_sets_and_sets_before_deletes() -> None:
    web = replace(WEB, scheduler="rr", real_servers=(replace(RS11, weight=5), RS13))
    plan = plan_reconcile((web, TLS), table(WEB), previously_owned=(KOLD,))
    assert plan == (
        AddDest(K80, RS13),
        AddService(TLS), AddDest(K443, TLS.real_servers[0]), AddDest(K443, TLS.real_servers[1]),
        SetService(web, ("scheduler wrr -> rr",)),
        SetDest(K80, replace(RS11, weight=5), ("weight 2 -> 5",)),
        DelDest(K80, RS12),
    )


def test_forwarding_change_dr_to_nat_is_a_set_dest() -> None:
    nat = replace(RS12, forwarding="nat")
    want = replace(WEB, real_servers=(RS11, nat))
    assert plan_reconcile((want,), table(WEB)) == (
        SetDest(K80, nat, ("forwarding dr -> nat",)),)


def test_tunnel_fields_are_ignored_for_a_non_tun_server() -> None:
    kernel = replace(WEB, real_servers=(replace(RS11, tunnel_type="gue", tunnel_port=6080),
                                        replace(RS12, tunnel_type="gre")))
    assert plan_reconcile((WEB,), table(kernel)) == ()


def test_tunnel_fields_are_compared_for_a_tun_server() -> None:
    tun = replace(RS12, forwarding="tun", tunnel_type="gue", tunnel_port=6080)
    want = replace(WEB, real_servers=(RS11, tun))
    assert plan_reconcile((want,), table(WEB)) == (
        SetDest(K80, tun, ("forwarding dr -> tun", "tunnel_type ipip -> gue",
                           "tunnel_port 0 -> 6080")),)
    kernel = replace(want, real_servers=(RS11, replace(tun, tunnel_port=5555)))
    assert plan_reconcile((want,), table(kernel)) == (
        SetDest(K80, tun, ("tunnel_port 5555 -> 6080",)),)


def test_foreign_service_in_the_kernel_is_never_touched() -> None:
    odd = replace(FOREIGN, scheduler="lc", real_servers=())
    assert plan_reconcile((WEB,), table(WEB, odd)) == ()
    assert plan_reconcile((), table(odd), previously_owned=(KOLD,)) == ()


def test_previously_owned_service_that_left_the_config_is_deleted() -> None:
    assert plan_reconcile((WEB,), table(WEB, OLD, FOREIGN),
                          previously_owned=(K80, KOLD)) == (DelService(KOLD),)


def test_previously_owned_services_are_deleted_in_key_order() -> None:
    gone = replace(OLD, key=KGONE)
    old6 = replace(OLD, key=KV6, real_servers=())
    assert plan_reconcile((), table(old6, gone, OLD),
                          previously_owned=(KV6, KGONE, KOLD)) == (
        DelService(KOLD), DelService(KGONE), DelService(KV6))


def test_previously_owned_service_absent_from_the_kernel_produces_nothing() -> None:
    assert plan_reconcile((WEB,), table(WEB), previously_owned=(KOLD, KGONE)) == ()


def test_desired_service_is_never_deleted_even_if_previously_owned() -> None:
    assert plan_reconcile((WEB,), table(WEB), previously_owned=(K80,)) == ()


def test_reconcile_takes_any_iterable_of_desired_services() -> None:
    assert plan_reconcile(iter((WEB,)), {}) == plan_reconcile((WEB,), {})


@dataclasses.dataclass(frozen=True)
class KernelService(VirtualService):
    """A service as the kernel reports it, with flag bits the model has no name for.

    ``VirtualService.flag_bits`` is computed from ``flags`` and ``persistence``, so the
    public dataclass cannot carry IP_VS_SVC_F_HASHED (0x2); this subclass adds raw bits.
    """

    extra_bits: int = 0

    @property
    def flag_bits(self) -> int:
        return super().flag_bits | self.extra_bits


def test_kernel_hashed_flag_bit_is_ignored() -> None:
    hashed = KernelService(key=K443, scheduler=TLS.scheduler, persistence=TLS.persistence,
                           real_servers=TLS.real_servers, extra_bits=0x02)
    assert hashed.flag_bits == TLS.flag_bits | 0x02
    assert plan_reconcile((TLS,), table(hashed)) == ()


def test_kernel_hashed_bit_does_not_hide_a_real_flag_change() -> None:
    hashed = KernelService(key=KMARK, scheduler="sh", real_servers=MARK.real_servers,
                           extra_bits=0x02)
    assert plan_reconcile((MARK,), table(hashed)) == (
        SetService(MARK, ("flags none -> sh-port",)),)


# --------------------------------------------------------------------------- plan_removal

def test_removal_deletes_desired_and_owned_services_present_in_the_kernel_sorted() -> None:
    kernel = table(WEB, TLS, OLD, FOREIGN)
    plan = plan_removal((TLS, WEB, DNS), kernel, previously_owned=(KOLD, KGONE))
    assert plan == (DelService(KOLD), DelService(K80), DelService(K443))


def test_removal_leaves_foreign_services_alone() -> None:
    assert plan_removal((WEB,), table(FOREIGN)) == ()


def test_removal_with_an_empty_kernel_does_nothing() -> None:
    assert plan_removal(DESIRED, {}, previously_owned=(KOLD,)) == ()


# --------------------------------------------------------------------------- describe

@pytest.mark.parametrize(
    ("action", "text"),
    [(AddService(WEB), "+ service tcp 192.0.2.100:80 (wrr)"),
     (AddService(replace(MARK, persistence=Persistence(300, "255.255.255.255"))),
      "+ service fwmark 10 (sh, flags sh-port, persistent 300 s)"),
     (AddService(TLS), "+ service tcp 192.0.2.100:443 (wlc, persistent 300 s)"),
     (SetService(WEB, ("scheduler rr -> wrr", "flags none -> persistent")),
      "~ service tcp 192.0.2.100:80: scheduler rr -> wrr; flags none -> persistent"),
     (DelService(KV6), "- service tcp [2001:db8::100]:443"),
     (AddDest(K80, RS11), "+ tcp 192.0.2.100:80 -> 192.0.2.11:80 (dr, weight 2)"),
     (AddDest(KV6, V6.real_servers[0]),
      "+ tcp [2001:db8::100]:443 -> [2001:db8::41]:443 (dr, weight 1)"),
     (AddDest(KDNS, DNS.real_servers[0]), "+ udp 192.0.2.100:53 -> 10.0.0.11:5353 (nat, weight 1)"),
     (SetDest(K80, RS11, ("weight 1 -> 2", "forwarding nat -> dr")),
      "~ tcp 192.0.2.100:80 -> 192.0.2.11:80: weight 1 -> 2; forwarding nat -> dr"),
     (DelDest(KMARK, MARK.real_servers[0]), "- fwmark 10 -> 192.0.2.31:0")],
    ids=["add-service", "add-service-flags-and-persistence", "add-service-persistent",
         "set-service", "del-service-ipv6", "add-dest", "add-dest-ipv6", "add-dest-nat",
         "set-dest", "del-dest-fwmark"])
def test_describe_gives_one_line_per_action(action: object, text: str) -> None:
    assert describe(action) == text  # type: ignore[arg-type]


# --------------------------------------------------------------------------- transitions

IF = "eth0"
VIP4 = Vip(ipaddress.ip_interface("192.0.2.100/32"))
VIP6 = Vip(ipaddress.ip_interface("2001:db8::100/64"))
VIPS = (VIP4, VIP6)
ANNOUNCE = Announce(count=5, interval_ms=200, repeat_after_s=5.0, refresh_s=0.0)
SYSCTLS = (("net.ipv4.vs.expire_nodest_conn", "1"),
           ("net.ipv4.vs.expire_quiescent_template", "1"))
SYNC = SyncSettings(interface="eth1", syncid=7)


def _instance() -> Instance:
    return Instance(name="VI_1", interface=IF, virtual_router_id=51, priority=150,
                    vips=VIPS, announce=ANNOUNCE)


def _observed(*present: Vip) -> Observed:
    return Observed(interface_index=2,
                    addresses=frozenset((v.address, v.prefixlen) for v in present),
                    sysctls={"net.ipv4.vs.expire_nodest_conn": "0"})


def _ipvs(on_backup: str = "keep", sync: SyncSettings | None = SYNC,
          services: tuple[VirtualService, ...] = (WEB,)) -> IpvsSettings:
    return IpvsSettings(on_backup=on_backup, sync=sync, services=services)


def test_master_reconciles_ipvs_before_the_vips_and_syncs_as_master_after_announcing() -> None:
    plan = plan_transition(_instance(), "MASTER", SYSCTLS, _observed(), _ipvs())
    assert plan.actions == (
        StopAnnouncer(),
        SetSysctl("net.ipv4.vs.expire_nodest_conn", "1", "0"),
        SetSysctl("net.ipv4.vs.expire_quiescent_template", "1", None),
        ReconcileIpvs(),
        AddVip(VIP4, IF),
        AddVip(VIP6, IF),
        SendAnnouncements(IF, VIPS, 5, 200),
        StartAnnouncer(IF, VIPS, ANNOUNCE),
        SyncDaemon("master", "eth1", 7),
        RecordState("MASTER"),
    )


def test_master_reconciles_before_replacing_a_vip_at_a_wrong_prefix() -> None:
    observed = Observed(interface_index=2, addresses=frozenset({(VIP4.address, 24),
                                                                (VIP6.address, 64)}))
    plan = plan_transition(_instance(), "MASTER", (), observed, _ipvs(sync=None))
    assert plan.actions == (
        StopAnnouncer(),
        ReconcileIpvs(),
        RemoveVip(VIP4.address, 24, IF),
        AddVip(VIP4, IF),
        SendAnnouncements(IF, VIPS, 5, 200),
        StartAnnouncer(IF, VIPS, ANNOUNCE),
        RecordState("MASTER"),
    )


def test_master_with_vips_in_place_still_reconciles_and_syncs() -> None:
    plan = plan_transition(_instance(), "MASTER", (), _observed(*VIPS), _ipvs())
    assert plan.actions == (
        StopAnnouncer(),
        ReconcileIpvs(),
        SendAnnouncements(IF, VIPS, 5, 200),
        StartAnnouncer(IF, VIPS, ANNOUNCE),
        SyncDaemon("master", "eth1", 7),
        RecordState("MASTER"),
    )


@pytest.mark.parametrize("state", PASSIVE_STATES, ids=PASSIVE_STATES)
def test_passive_with_on_backup_remove_drops_vips_then_rules_then_syncs_as_backup(
        state: str) -> None:
    plan = plan_transition(_instance(), state, SYSCTLS, _observed(*VIPS),
                           _ipvs(on_backup="remove"))
    assert plan.actions == (
        StopAnnouncer(),
        RemoveVip(VIP4.address, 32, IF),
        RemoveVip(VIP6.address, 64, IF),
        RemoveIpvs(),
        SyncDaemon("backup", "eth1", 7),
        RecordState(state),
    )


@pytest.mark.parametrize("state", ["BACKUP", "FAULT"])
def test_passive_with_on_backup_keep_keeps_the_rules_reconciled_and_syncs_as_backup(
        state: str) -> None:
    plan = plan_transition(_instance(), state, SYSCTLS, _observed(*VIPS),
                           _ipvs(on_backup="keep"))
    assert plan.actions == (
        StopAnnouncer(),
        RemoveVip(VIP4.address, 32, IF),
        RemoveVip(VIP6.address, 64, IF),
        ReconcileIpvs(),
        SyncDaemon("backup", "eth1", 7),
        RecordState(state),
    )


@pytest.mark.parametrize("state", ["STOP", "DELETED"])
def test_stopping_with_on_backup_keep_leaves_the_rules_alone(state: str) -> None:
    plan = plan_transition(_instance(), state, SYSCTLS, _observed(*VIPS),
                           _ipvs(on_backup="keep"))
    assert plan.actions == (
        StopAnnouncer(),
        RemoveVip(VIP4.address, 32, IF),
        RemoveVip(VIP6.address, 64, IF),
        SyncDaemon("backup", "eth1", 7),
        RecordState(state),
    )


def test_backup_with_on_backup_remove_and_no_sync_removes_the_rules_only() -> None:
    plan = plan_transition(_instance(), "BACKUP", (), _observed(VIP4),
                           _ipvs(on_backup="remove", sync=None))
    assert plan.actions == (
        StopAnnouncer(),
        RemoveVip(VIP4.address, 32, IF),
        RemoveIpvs(),
        RecordState("BACKUP"),
    )


def test_backup_with_on_backup_keep_and_no_sync_only_reconciles_the_rules() -> None:
    plan = plan_transition(_instance(), "BACKUP", (), _observed(VIP4),
                           _ipvs(on_backup="keep", sync=None))
    assert plan.actions == (StopAnnouncer(), RemoveVip(VIP4.address, 32, IF),
                            ReconcileIpvs(), RecordState("BACKUP"))


def test_master_and_backup_without_an_ipvs_section_have_no_ipvs_actions() -> None:
    master = plan_transition(_instance(), "MASTER", (), _observed(), None)
    backup = plan_transition(_instance(), "BACKUP", (), _observed(*VIPS), None)
    assert master.actions == (StopAnnouncer(), AddVip(VIP4, IF), AddVip(VIP6, IF),
                              SendAnnouncements(IF, VIPS, 5, 200),
                              StartAnnouncer(IF, VIPS, ANNOUNCE), RecordState("MASTER"))
    assert backup.actions == (StopAnnouncer(), RemoveVip(VIP4.address, 32, IF),
                              RemoveVip(VIP6.address, 64, IF), RecordState("BACKUP"))


def test_empty_services_list_has_no_rule_actions_but_still_syncs() -> None:
    master = plan_transition(_instance(), "MASTER", (), _observed(*VIPS),
                             _ipvs(on_backup="remove", services=()))
    backup = plan_transition(_instance(), "BACKUP", (), _observed(),
                             _ipvs(on_backup="remove", services=()))
    assert master.actions == (StopAnnouncer(), SendAnnouncements(IF, VIPS, 5, 200),
                              StartAnnouncer(IF, VIPS, ANNOUNCE), SyncDaemon("master", "eth1", 7),
                              RecordState("MASTER"))
    assert backup.actions == (StopAnnouncer(), SyncDaemon("backup", "eth1", 7),
                              RecordState("BACKUP"))


def test_empty_services_list_without_sync_is_the_same_as_no_ipvs_section() -> None:
    for state, observed in (("MASTER", _observed()), ("BACKUP", _observed(*VIPS))):
        with_empty = plan_transition(_instance(), state, SYSCTLS, observed,
                                     _ipvs(on_backup="remove", sync=None, services=()))
        assert with_empty == plan_transition(_instance(), state, SYSCTLS, observed, None)


def test_master_with_announcements_off_syncs_right_after_the_vips() -> None:
    instance = dataclasses.replace(_instance(), announce=Announce(count=0))
    plan = plan_transition(instance, "MASTER", (), _observed(), _ipvs())
    assert plan.actions == (StopAnnouncer(), ReconcileIpvs(), AddVip(VIP4, IF),
                            AddVip(VIP6, IF), SyncDaemon("master", "eth1", 7),
                            RecordState("MASTER"))


def test_one_packet_scheduling_on_or_off_is_a_set_service_saying_so() -> None:
    udp = VirtualService(ServiceKey(4, "udp", "192.0.2.53", 53), "rr", real_servers=(RS11,))
    want = replace(udp, ops=True)
    (change,) = plan_reconcile((want,), table(udp))
    assert change == SetService(want, ("flags none -> ops",))
    assert describe(AddService(want)) == "+ service udp 192.0.2.53:53 (rr, flags ops)"
