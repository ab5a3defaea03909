"""The IPVS generic-netlink codec: byte layouts the kernel expects, and dumps decoded
back into the config's model exactly."""

from __future__ import annotations

import ipaddress
import socket
import struct
import sys

import pytest

from haguard.adapters.ipvs import BATCH_MESSAGES, _batches
from haguard.core import ipvsnl, nlmsg
from haguard.core.ipvsconfig import Persistence, RealServer, ServiceKey, VirtualService
from haguard.core.ipvsplan import AddDest, AddService, DelDest, DelService, SetDest, SetService

pytestmark = pytest.mark.skipif(sys.byteorder != "little",
                                reason="the golden bytes are written for a little-endian host")

ip = ipaddress.ip_address
FAMILY = 0x1D  # any id the kernel may hand out


def attr(kind: int, payload: bytes) -> bytes:
    """An attribute laid out by hand from linux/netlink.h, independent of the codec."""
    size = 4 + len(payload)
    return struct.pack("<HH", size, kind) + payload + b"\0" * (-size & 3)


def reply(cmd: int, nested_kind: int, body: bytes) -> bytes:
    """What the kernel puts after the netlink header of a dump message."""
    return struct.pack("<BBH", cmd, 1, 0) + attr(nested_kind | 0x8000, body)


# ---------------------------------------------------------------------------- encoding
def test_a_service_key_is_laid_out_as_the_kernel_reads_it() -> None:
    encoded = ipvsnl.service_key_attrs(ServiceKey(4, "tcp", "192.0.2.100", 80))
    assert encoded == (attr(1, struct.pack("<H", socket.AF_INET))            # AF
                       + attr(2, struct.pack("<H", 6))                       # TCP
                       + attr(3, bytes([192, 0, 2, 100]) + b"\0" * 12)       # nf_inet_addr
                       + attr(4, b"\x00\x50"))                               # port, big-endian


def test_a_fwmark_service_is_named_by_its_mark_alone() -> None:
    encoded = ipvsnl.service_key_attrs(ServiceKey(6, "fwmark", "7", 0))
    assert encoded == attr(1, struct.pack("<H", socket.AF_INET6)) + attr(5, struct.pack("<I", 7))


def test_a_full_service_carries_scheduler_flags_timeout_and_netmask() -> None:
    svc = VirtualService(ServiceKey(4, "tcp", "192.0.2.100", 443), "sh", flags=("sh-port",),
                         persistence=Persistence(300, "255.255.255.0"))
    encoded = ipvsnl.service_attrs(svc)
    tail = (attr(6, b"sh\0") + attr(7, struct.pack("<II", 0x01 | 0x10, 0xFFFF))
            + attr(8, struct.pack("<I", 300)) + attr(9, bytes([255, 255, 255, 0])))
    assert encoded.endswith(tail)


def test_an_ipv6_persistence_prefix_travels_as_a_host_order_number() -> None:
    svc = VirtualService(ServiceKey(6, "tcp", "2001:db8::100", 443), "wlc",
                         persistence=Persistence(60, "64"))
    assert ipvsnl.service_attrs(svc).endswith(attr(9, struct.pack("<I", 64)))


def test_a_tunnel_real_server_carries_type_and_big_endian_port() -> None:
    server = RealServer(ip("192.0.2.21"), 80, forwarding="tun", weight=3, upper_threshold=100,
                        lower_threshold=10, tunnel_type="gue", tunnel_port=6080)
    encoded = ipvsnl.dest_attrs(server)
    assert encoded == (attr(1, bytes([192, 0, 2, 21]) + b"\0" * 12) + attr(2, b"\x00\x50")
                       + attr(11, struct.pack("<H", socket.AF_INET))
                       + attr(3, struct.pack("<I", 2)) + attr(4, struct.pack("<I", 3))
                       + attr(5, struct.pack("<I", 100)) + attr(6, struct.pack("<I", 10))
                       + attr(13, b"\x01") + attr(14, struct.pack(">H", 6080))
                       + attr(15, struct.pack("<H", 0)))


def test_a_direct_routing_real_server_sends_no_tunnel_attributes() -> None:
    kinds = {k for k in nlmsg.attrs(ipvsnl.dest_attrs(RealServer(ip("192.0.2.21"), 80)))}
    assert kinds == {1, 2, 3, 4, 5, 6, 11}


def test_a_delete_names_the_real_server_only() -> None:
    kinds = set(nlmsg.attrs(ipvsnl.dest_attrs(RealServer(ip("192.0.2.21"), 80), full=False)))
    assert kinds == {1, 2, 11}


@pytest.mark.parametrize(("action", "cmd", "nested"), [
    (AddService(VirtualService(ServiceKey(4, "udp", "192.0.2.100", 53), "rr")), 1, {1}),
    (SetService(VirtualService(ServiceKey(4, "udp", "192.0.2.100", 53), "rr"), ()), 2, {1}),
    (DelService(ServiceKey(4, "udp", "192.0.2.100", 53)), 3, {1}),
    (AddDest(ServiceKey(4, "udp", "192.0.2.100", 53), RealServer(ip("192.0.2.21"), 53)), 5,
     {1, 2}),
    (SetDest(ServiceKey(4, "udp", "192.0.2.100", 53), RealServer(ip("192.0.2.21"), 53), ()), 6,
     {1, 2}),
    (DelDest(ServiceKey(4, "udp", "192.0.2.100", 53), RealServer(ip("192.0.2.21"), 53)), 7,
     {1, 2}),
])
def test_each_change_becomes_its_command_and_asks_for_an_acknowledgement(
        action: object, cmd: int, nested: set[int]) -> None:
    msg = ipvsnl.action_request(FAMILY, 42, action)  # type: ignore[arg-type]
    length, kind, flags, seq, pid = struct.unpack_from("<IHHII", msg)
    assert (length, kind, seq, pid) == (len(msg), FAMILY, 42, 0)
    assert flags == nlmsg.NLM_F_REQUEST | nlmsg.NLM_F_ACK
    assert msg[16:18] == bytes([cmd, 1])
    assert set(nlmsg.attrs(msg, 20)) == nested


def test_numbering_an_encoded_batch_rewrites_each_sequence_number() -> None:
    first = ipvsnl.action_request(FAMILY, 0, DelService(ServiceKey(4, "tcp", "192.0.2.1", 80)))
    second = ipvsnl.action_request(FAMILY, 0, DelService(ServiceKey(4, "tcp", "192.0.2.2", 80)))
    buf = bytearray(first + second)
    nlmsg.set_seq(buf, 0, 7)
    nlmsg.set_seq(buf, len(first), 8)
    assert [r.seq for r in nlmsg.replies(bytes(buf))] == [7, 8]


def test_a_dest_dump_request_names_its_service() -> None:
    key = ServiceKey(4, "tcp", "192.0.2.100", 80)
    msg = ipvsnl.dump_dests_request(FAMILY, 3, key)
    assert struct.unpack_from("<H", msg, 6)[0] == nlmsg.NLM_F_REQUEST | nlmsg.NLM_F_DUMP
    assert nlmsg.attrs(nlmsg.attrs(msg, 20)[1]) == nlmsg.attrs(ipvsnl.service_key_attrs(key))


# ---------------------------------------------------------------------------- decoding
SERVICES = [
    VirtualService(ServiceKey(4, "tcp", "192.0.2.100", 80), "wrr"),
    VirtualService(ServiceKey(4, "udp", "192.0.2.100", 53), "rr",
                   persistence=Persistence(300, "255.255.255.0")),
    VirtualService(ServiceKey(4, "sctp", "192.0.2.100", 3868), "mh",
                   flags=("mh-fallback", "mh-port")),
    VirtualService(ServiceKey(4, "fwmark", "10", 0), "sh", flags=("sh-port",)),
    VirtualService(ServiceKey(6, "tcp", "2001:db8::100", 443), "wlc",
                   persistence=Persistence(60, "64")),
    VirtualService(ServiceKey(6, "fwmark", "11", 0), "lc"),
]


@pytest.mark.parametrize("service", SERVICES, ids=str)
def test_a_dumped_service_decodes_to_the_service_that_was_sent(service: VirtualService) -> None:
    # The kernel dumps a service with the attributes NEW_SERVICE takes, plus counters.
    stats = attr(1, struct.pack("<Q", 12)) + attr(2, struct.pack("<Q", 340)) + attr(
        3, struct.pack("<Q", 0))
    payload = reply(1, 1, ipvsnl.service_attrs(service) + attr(12 | 0x8000, stats))
    decoded = ipvsnl.decode_service(payload)
    assert decoded.service == service
    assert (decoded.connections, decoded.in_packets, decoded.out_packets) == (12, 340, 0)


def test_a_kernel_service_without_persistence_reports_none_whatever_its_netmask() -> None:
    body = (ipvsnl.service_key_attrs(ServiceKey(4, "tcp", "192.0.2.100", 80))
            + attr(6, b"rr\0") + attr(7, struct.pack("<II", 0x02, 0xFFFFFFFF))  # HASHED
            + attr(8, struct.pack("<I", 0)) + attr(9, b"\xff\xff\xff\xff"))
    decoded = ipvsnl.decode_service(reply(1, 1, body)).service
    assert decoded.persistence is None and decoded.flags == ()


DESTS = [
    (RealServer(ip("192.0.2.21"), 80, "dr", 1), 4),
    (RealServer(ip("10.0.0.21"), 8080, "nat", 5, upper_threshold=100, lower_threshold=50), 4),
    (RealServer(ip("192.0.2.22"), 80, "tun", 2, tunnel_type="gue", tunnel_port=6080), 4),
    (RealServer(ip("192.0.2.23"), 80, "tun", 2, tunnel_type="gre"), 4),
    (RealServer(ip("2001:db8::21"), 443, "dr", 0), 6),
]


@pytest.mark.parametrize(("server", "family"), DESTS, ids=lambda v: str(v))
def test_a_dumped_real_server_decodes_to_the_one_that_was_sent(server: RealServer,
                                                                family: int) -> None:
    payload = reply(5, 2, ipvsnl.dest_attrs(server) + attr(7, struct.pack("<I", 3))
                    + attr(8, struct.pack("<I", 9)))
    decoded = ipvsnl.decode_dest(payload, family)
    assert decoded.server == server
    assert (decoded.active, decoded.inactive) == (3, 9)


def test_an_old_kernel_without_address_family_uses_the_services() -> None:
    body = attr(1, ip("2001:db8::21").packed) + attr(2, b"\x01\xbb") + attr(
        3, struct.pack("<I", 3)) + attr(4, struct.pack("<I", 1))
    assert ipvsnl.decode_dest(reply(5, 2, body), 6).server.address == ip("2001:db8::21")


def test_the_forwarding_method_ignores_the_kernels_other_connection_flag_bits() -> None:
    body = attr(1, bytes([192, 0, 2, 21]) + b"\0" * 12) + attr(2, b"\x00\x50") + attr(
        3, struct.pack("<I", 0x0100 | 3))
    assert ipvsnl.decode_dest(reply(5, 2, body), 4).server.forwarding == "dr"


def test_replies_are_split_at_their_aligned_lengths() -> None:
    one = struct.pack("<IHHII", 16 + 5, 0x1D, 2, 1, 99) + b"abcde" + b"\0\0\0"
    two = struct.pack("<IHHII", 20, nlmsg.NLMSG_DONE, 2, 2, 99) + struct.pack("<i", 0)
    got = list(nlmsg.replies(one + two))
    assert [(r.kind, r.seq, r.payload) for r in got] == [
        (0x1D, 1, b"abcde"), (nlmsg.NLMSG_DONE, 2, b"\0\0\0\0")]


def test_a_reply_longer_than_the_read_is_a_codec_error() -> None:
    with pytest.raises(nlmsg.CodecError, match="overruns"):
        list(nlmsg.replies(struct.pack("<IHHII", 64, 0x1D, 0, 1, 0) + b"short"))


def test_an_attribute_longer_than_its_container_is_a_codec_error() -> None:
    with pytest.raises(nlmsg.CodecError, match="overruns"):
        nlmsg.attrs(struct.pack("<HH", 40, 1) + b"\0\0\0\0")


def test_an_error_reply_gives_a_positive_errno_and_an_ack_zero() -> None:
    assert nlmsg.error_code(struct.pack("<i", -17) + b"\0" * 16) == 17
    assert nlmsg.error_code(struct.pack("<i", 0) + b"\0" * 16) == 0


def test_the_controller_reply_gives_the_family_id() -> None:
    payload = struct.pack("<BBH", 1, 2, 0) + attr(2, b"IPVS\0") + attr(1, struct.pack("<H", 0x1D))
    assert ipvsnl.family_id(payload) == 0x1D


def test_the_family_request_asks_the_controller_by_name() -> None:
    msg = ipvsnl.family_request(5)
    assert struct.unpack_from("<HH", msg, 4) == (ipvsnl.GENL_ID_CTRL, nlmsg.NLM_F_REQUEST)
    assert nlmsg.attrs(msg, 20) == {2: b"IPVS\0"}


# ---------------------------------------------------------------------------- batching
KEY = ServiceKey(4, "tcp", "192.0.2.100", 80)


def test_deletions_never_share_a_batch_with_additions() -> None:
    actions = [AddDest(KEY, RealServer(ip("192.0.2.21"), 80)),
               SetDest(KEY, RealServer(ip("192.0.2.22"), 80), ()),
               DelDest(KEY, RealServer(ip("192.0.2.23"), 80)),
               DelService(ServiceKey(4, "tcp", "192.0.2.101", 80))]
    assert _batches(actions, [100] * 4) == [[0, 1], [2, 3]]


def test_batches_are_bounded_in_count_and_keep_order() -> None:
    actions = [AddDest(KEY, RealServer(ip("192.0.2.21"), p)) for p in range(1, 600)]
    batches = _batches(actions, [60] * len(actions))
    assert [i for b in batches for i in b] == list(range(len(actions)))
    assert max(len(b) for b in batches) == BATCH_MESSAGES


def test_batches_are_bounded_in_bytes() -> None:
    actions = [AddDest(KEY, RealServer(ip("192.0.2.21"), p)) for p in range(1, 11)]
    assert _batches(actions, [20_000] * 10) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]


def test_one_packet_scheduling_travels_as_its_flag_bit_and_decodes_back() -> None:
    svc = VirtualService(ServiceKey(4, "udp", "192.0.2.53", 53), "rr", ops=True)
    body = ipvsnl.service_attrs(svc)
    assert attr(6, b"rr\0") + attr(7, struct.pack("<II", 0x04, 0xFFFF)) in body
    decoded = ipvsnl.decode_service(reply(1, 1, body))
    assert decoded.service == svc


def test_timeouts_are_set_as_three_top_level_u32_and_read_back() -> None:
    request = ipvsnl.set_config_request(FAMILY, 7, (7200, 120, 60))
    assert request.endswith(attr(4, struct.pack("<I", 7200)) + attr(5, struct.pack("<I", 120))
                            + attr(6, struct.pack("<I", 60)))
    assert struct.unpack_from("<B", request, 16)[0] == 12          # IPVS_CMD_SET_CONFIG
    payload = struct.pack("<BBH", 13, 1, 0) + attr(4, struct.pack("<I", 900)) \
        + attr(5, struct.pack("<I", 120)) + attr(6, struct.pack("<I", 300))
    assert ipvsnl.decode_config(payload) == (900, 120, 300)
