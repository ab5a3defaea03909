"""The rtnetlink codec's byte layouts, and keepalived's FIFO lines turned into the events
the agent applies."""

from __future__ import annotations

import ipaddress
import socket
import struct
import sys

import pytest

from haguard.core import nlmsg, rtnl
from haguard.core.events import Event, OrderKey
from haguard.core.fifo import (
    Pending,
    latest_per_instance,
    parse_journal_entry,
    parse_journal_name,
    parse_line,
)

little_endian = pytest.mark.skipif(sys.byteorder != "little",
                                   reason="golden bytes are written for a little-endian host")
ip = ipaddress.ip_address


def attr(kind: int, payload: bytes) -> bytes:
    size = 4 + len(payload)
    return struct.pack("<HH", size, kind) + payload + b"\0" * (-size & 3)


# ---------------------------------------------------------------------------- rtnetlink
@little_endian
def test_an_ipv4_vip_is_added_with_local_and_address_and_its_label() -> None:
    msg = rtnl.add_address(9, 4, ip("192.0.2.100"), 32, label="eth0:1")
    length, kind, flags, seq, _ = struct.unpack_from("<IHHII", msg)
    assert (length, kind, seq) == (len(msg), rtnl.RTM_NEWADDR, 9)
    assert flags == (nlmsg.NLM_F_REQUEST | nlmsg.NLM_F_ACK | nlmsg.NLM_F_CREATE
                     | nlmsg.NLM_F_EXCL)
    assert msg[16:24] == struct.pack("<BBBBI", socket.AF_INET, 32, 0, 0, 4)
    assert msg[24:] == (attr(2, bytes([192, 0, 2, 100])) + attr(1, bytes([192, 0, 2, 100]))
                        + attr(3, b"eth0:1\0"))


@little_endian
def test_an_ipv6_vip_skips_duplicate_address_detection() -> None:
    msg = rtnl.add_address(1, 7, ip("2001:db8::100"), 64, nodad=True)
    assert msg[16:24] == struct.pack("<BBBBI", socket.AF_INET6, 64, rtnl.IFA_F_NODAD, 0, 7)
    assert nlmsg.attrs(msg, 24) == {1: ip("2001:db8::100").packed,
                                    8: struct.pack("<I", rtnl.IFA_F_NODAD)}


def test_a_delete_names_the_address_without_create_flags() -> None:
    msg = rtnl.del_address(3, 4, ip("192.0.2.100"), 32)
    _, kind, flags, _, _ = struct.unpack_from("=IHHII", msg)
    assert kind == rtnl.RTM_DELADDR and flags == nlmsg.NLM_F_REQUEST | nlmsg.NLM_F_ACK


def test_a_link_is_asked_for_by_name_without_a_dump() -> None:
    msg = rtnl.get_link(5, "eth0")
    _, kind, flags, _, _ = struct.unpack_from("=IHHII", msg)
    assert (kind, flags) == (rtnl.RTM_GETLINK, nlmsg.NLM_F_REQUEST)
    assert nlmsg.attrs(msg, 16 + rtnl.IFINFOMSG.size) == {rtnl.IFLA_IFNAME: b"eth0\0"}


def test_a_link_reply_gives_index_name_mac_and_state() -> None:
    payload = (rtnl.IFINFOMSG.pack(0, 1, 12, rtnl.IFF_UP | 0x1000, 0)
               + attr(rtnl.IFLA_IFNAME, b"eth1\0") + attr(rtnl.IFLA_ADDRESS, bytes(range(1, 7))))
    assert rtnl.decode_link(payload) == rtnl.LinkInfo(12, "eth1", "01:02:03:04:05:06", True)


def test_an_ipv4_address_reply_prefers_the_local_address() -> None:
    payload = (rtnl.IFADDRMSG.pack(socket.AF_INET, 24, 0, 0, 3)
               + attr(rtnl.IFA_ADDRESS, bytes([198, 51, 100, 1]))
               + attr(rtnl.IFA_LOCAL, bytes([192, 0, 2, 10])) + attr(rtnl.IFA_LABEL, b"eth0\0"))
    assert rtnl.decode_address(payload) == rtnl.AddrInfo(3, ip("192.0.2.10"), 24, "eth0")


def test_an_address_of_another_family_is_ignored() -> None:
    assert rtnl.decode_address(rtnl.IFADDRMSG.pack(socket.AF_PACKET, 0, 0, 0, 3)) is None


# ---------------------------------------------------------------------------- the FIFO
@pytest.mark.parametrize(("line", "event"), [
    ('INSTANCE "VI_1" MASTER 150', Event("INSTANCE", "VI_1", "MASTER", 150)),
    ('INSTANCE "VI_1" BACKUP 100', Event("INSTANCE", "VI_1", "BACKUP", 100)),
    ('INSTANCE "web v6" FAULT 0', Event("INSTANCE", "web v6", "FAULT", 0)),
    ('INSTANCE "VI_1" STOP 100', Event("INSTANCE", "VI_1", "STOP", 100)),
    ('GROUP "G1" MASTER 0', Event("GROUP", "G1", "MASTER", 0)),
])
def test_keepalived_fifo_lines_become_events(line: str, event: Event) -> None:
    parsed = parse_line(line)
    assert parsed.event == event and not parsed.reassert and parsed.skipped is None


def test_master_rx_lower_pri_reasserts_the_master() -> None:
    parsed = parse_line('INSTANCE "VI_1" MASTER_RX_LOWER_PRI 150')
    assert parsed.event == Event("INSTANCE", "VI_1", "MASTER", 150) and parsed.reassert


@pytest.mark.parametrize("line", ['INSTANCE "VI_1" MASTER_PRIORITY 120',
                                  'INSTANCE "VI_1" BACKUP_PRIORITY 90',
                                  'VS "10.0.0.1:80" UP', 'INSTANCE "VI_1" SLEEPING 1',
                                  'INSTANCE "VI_1 MASTER 1', 'INSTANCE "VI_1" MASTER high', ""])
def test_lines_that_change_no_state_are_skipped_with_a_reason(line: str) -> None:
    parsed = parse_line(line)
    assert parsed.event is None and parsed.skipped


def P(name: str, state: str, reassert: bool = False) -> Pending:  # noqa: N802 - reads as data
    return Pending(Event("INSTANCE", name, state, 100), reassert)


def test_only_the_last_event_of_each_instance_is_applied_in_their_order() -> None:
    got = latest_per_instance([P("A", "MASTER"), P("B", "BACKUP"), P("A", "BACKUP"),
                               P("B", "MASTER"), P("A", "FAULT")])
    assert got == [P("B", "MASTER"), P("A", "FAULT")]


def test_a_reassertion_after_a_master_keeps_the_master_transition() -> None:
    assert latest_per_instance([P("A", "MASTER"), P("A", "MASTER", reassert=True)]) == \
        [P("A", "MASTER")]
    assert latest_per_instance([P("A", "BACKUP"), P("A", "MASTER", reassert=True)]) == \
        [P("A", "MASTER", reassert=True)]


def test_journal_names_carry_the_hooks_order_key() -> None:
    assert parse_journal_name("1378302.16851") == OrderKey(1378302, 16851)
    for bad in ("1378302.16851.tmp", "x.1", "12", ".1"):
        assert parse_journal_name(bad) is None


def test_journal_entries_are_the_words_the_hook_received() -> None:
    assert parse_journal_entry("INSTANCE VI_1 MASTER 150\n") == Event("INSTANCE", "VI_1",
                                                                      "MASTER", 150)
    assert parse_journal_entry("INSTANCE VI_1 STOP \n") == Event("INSTANCE", "VI_1", "STOP")
    assert parse_journal_entry("garbage") is None
