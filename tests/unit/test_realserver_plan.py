"""Real server planning: what `haguard realserver up/down/status` will do, as values."""

from __future__ import annotations

import ipaddress

from haguard.core.ipvsconfig import RealServerRole
from haguard.core.rsplan import (
    AddHostAddress,
    EnsureLink,
    RemoveAddress,
    RsObserved,
    SetSysctl,
    plan_down,
    plan_up,
    problems,
)

VIP = ipaddress.ip_address("192.0.2.100")
VIP6 = ipaddress.ip_address("2001:db8::100")
GOOD = {"net.ipv4.conf.all.arp_ignore": "1", "net.ipv4.conf.all.arp_announce": "2"}


def observed(lo=(), tunl0=(), sysctls=None) -> RsObserved:
    return RsObserved(addresses={"lo": frozenset(lo), "tunl0": frozenset(tunl0)},
                      sysctls=dict(GOOD if sysctls is None else sysctls))


def test_dr_up_on_a_bare_host_sets_arp_then_adds_host_addresses_on_lo() -> None:
    role = RealServerRole("dr", (VIP, VIP6))
    plan = plan_up(role, observed(sysctls={}))
    assert plan == (EnsureLink("lo"),
                    SetSysctl("net.ipv4.conf.all.arp_ignore", "1", None),
                    SetSysctl("net.ipv4.conf.all.arp_announce", "2", None),
                    AddHostAddress(VIP, "lo"), AddHostAddress(VIP6, "lo"))
    assert [a.prefix for a in plan if isinstance(a, AddHostAddress)] == \
        ["192.0.2.100/32", "2001:db8::100/128"]


def test_dr_up_replaces_the_runbooks_slash_24_on_lo_with_a_host_address() -> None:
    role = RealServerRole("dr", (VIP,))
    plan = plan_up(role, observed(lo={(VIP, 24)}))
    assert plan == (EnsureLink("lo"), RemoveAddress(VIP, 24, "lo"), AddHostAddress(VIP, "lo"))
    found = problems(role, observed(lo={(VIP, 24)}))
    assert found[0].startswith("192.0.2.100/24 on lo: a real server must hold the VIP as a "
                               "host address (/32); with /24 it claims 192.0.2.0/24")


def test_dr_up_when_everything_is_in_place_only_checks_lo() -> None:
    role = RealServerRole("dr", (VIP,))
    assert plan_up(role, observed(lo={(VIP, 32)})) == (EnsureLink("lo"),)
    assert problems(role, observed(lo={(VIP, 32)})) == []


def test_tun_up_loads_ipip_turns_rp_filter_off_and_uses_tunl0() -> None:
    role = RealServerRole("tun", (VIP,))
    plan = plan_up(role, observed(sysctls=GOOD))
    assert plan == (EnsureLink("tunl0", "ipip"),
                    SetSysctl("net.ipv4.conf.all.rp_filter", "0", None),
                    SetSysctl("net.ipv4.conf.tunl0.rp_filter", "0", None),
                    AddHostAddress(VIP, "tunl0"))


def test_down_removes_the_vip_whatever_its_prefix_and_leaves_sysctls() -> None:
    role = RealServerRole("dr", (VIP,))
    assert plan_down(role, observed(lo={(VIP, 32), (VIP, 24)})) == (
        RemoveAddress(VIP, 24, "lo"), RemoveAddress(VIP, 32, "lo"))
    assert plan_down(role, observed()) == ()


def test_problems_name_missing_vips_and_wrong_sysctls() -> None:
    role = RealServerRole("dr", (VIP,))
    assert problems(role, observed(sysctls={"net.ipv4.conf.all.arp_ignore": "0"})) == [
        "192.0.2.100 is not on lo",
        "net.ipv4.conf.all.arp_ignore is 0, needs 1",
        "net.ipv4.conf.all.arp_announce is None, needs 2"]
