"""What a captured VRRP frame says (haguard.core.vrrp.parse_frame), against frames scapy
builds: the fields `status`, `doctor` and the migration proofs compare, the destination
(the group, or the peer's address with unicast_peer) among them."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.layers.vrrp import VRRP, VRRPv3

from haguard.core.vrrp import parse_frame

MAC = "02:00:00:00:00:11"


@pytest.mark.parametrize("destination", ["224.0.0.18", "192.0.2.12"])
def test_a_v2_advert_reads_its_vrid_priority_interval_addresses_and_destination(
        destination: str) -> None:
    frame = bytes(Ether(src=MAC) / IP(src="192.0.2.11", dst=destination, ttl=255) /
                  VRRP(vrid=51, priority=150, adv=1, addrlist=["192.0.2.100", "192.0.2.101"]))
    advert = parse_frame(frame, "eth0", outgoing=True, at=1.0)
    assert advert is not None
    assert (advert.vrid, advert.priority, advert.version, advert.advert_int_s) == \
        (51, 150, 2, 1.0)
    assert advert.addresses == ("192.0.2.100", "192.0.2.101")
    assert (advert.source, advert.destination, advert.source_mac) == \
        ("192.0.2.11", destination, MAC)


def test_a_v3_advert_over_ipv6_reads_its_centisecond_interval_and_destination() -> None:
    frame = bytes(Ether(src=MAC) / IPv6(src="fe80::11", dst="2001:db8::12", hlim=255) /
                  VRRPv3(vrid=52, priority=100, adv=150, ipcount=1, addrlist=["2001:db8::100"]))
    advert = parse_frame(frame, "eth0", outgoing=False, at=1.0)
    assert advert is not None
    assert (advert.vrid, advert.priority, advert.version, advert.advert_int_s) == \
        (52, 100, 3, 1.5)
    assert (advert.destination, advert.addresses) == ("2001:db8::12", ("2001:db8::100",))


def test_a_frame_that_is_not_vrrp_is_none() -> None:
    assert parse_frame(bytes(Ether(src=MAC) / IP(dst="192.0.2.12", proto=6)), "eth0",
                       outgoing=False, at=1.0) is None
