"""The kernel's IPVS generic-netlink messages as bytes, both ways. Pure.

Encoding a change is a few ``struct.pack`` calls and decoding a dump walks the
attributes once, so a 10,000-service table costs the kernel's time, not the codec's.
The numbers are the kernel's uapi (linux/ip_vs.h, linux/netlink.h, linux/genetlink.h).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass

from haguard.core.ipvsconfig import (
    FORWARDING,
    PROTOCOLS,
    SCHEDULER_FLAGS,
    SVC_F_ONEPACKET,
    SVC_F_PERSISTENT,
    TUNNEL_TYPES,
    Persistence,
    RealServer,
    ServiceKey,
    VirtualService,
)
from haguard.core.ipvsplan import (
    AddDest,
    AddService,
    DelDest,
    DelService,
    IpvsAction,
    SetDest,
    SetService,
)
from haguard.core.nlmsg import (
    BE16,
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    U16,
    U32,
    U64,
    CodecError,
    attr,
    attrs,
    message,
    nest,
)

# linux/genetlink.h
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
IPVS_GENL_NAME = "IPVS"
IPVS_GENL_VERSION = 1

# linux/ip_vs.h: commands
CMD_NEW_SERVICE, CMD_SET_SERVICE, CMD_DEL_SERVICE, CMD_GET_SERVICE = 1, 2, 3, 4
CMD_NEW_DEST, CMD_SET_DEST, CMD_DEL_DEST, CMD_GET_DEST = 5, 6, 7, 8
CMD_SET_CONFIG, CMD_GET_CONFIG = 12, 13
ATTR_SERVICE, ATTR_DEST = 1, 2
ATTR_TIMEOUT_TCP, ATTR_TIMEOUT_TCP_FIN, ATTR_TIMEOUT_UDP = 4, 5, 6
# IPVS_SVC_ATTR_*
SVC_AF, SVC_PROTOCOL, SVC_ADDR, SVC_PORT, SVC_FWMARK = 1, 2, 3, 4, 5
SVC_SCHED_NAME, SVC_FLAGS, SVC_TIMEOUT, SVC_NETMASK, SVC_STATS = 6, 7, 8, 9, 10
SVC_PE_NAME, SVC_STATS64 = 11, 12
# IPVS_DEST_ATTR_*
DEST_ADDR, DEST_PORT, DEST_FWD_METHOD, DEST_WEIGHT = 1, 2, 3, 4
DEST_U_THRESH, DEST_L_THRESH, DEST_ACTIVE_CONNS, DEST_INACT_CONNS = 5, 6, 7, 8
DEST_PERSIST_CONNS, DEST_STATS, DEST_ADDR_FAMILY, DEST_STATS64 = 9, 10, 11, 12
DEST_TUN_TYPE, DEST_TUN_PORT, DEST_TUN_FLAGS = 13, 14, 15
# IPVS_STATS_ATTR_*
STATS_CONNS, STATS_INPKTS, STATS_OUTPKTS = 1, 2, 3

FWD_MASK = 0x07          # IP_VS_CONN_F_FWD_MASK
FLAG_MASK = 0xFFFF       # the service flags haguard sets are all below this

_GENLHDR = struct.Struct("=BBH")        # cmd, version, reserved

_PROTO_BY_NUMBER = {n: name for name, n in PROTOCOLS.items()}
_FWD_BY_NUMBER = {n: name for name, n in FORWARDING.items()}
_TUN_BY_NUMBER = {n: name for name, n in TUNNEL_TYPES.items()}
_CMD = {AddService: CMD_NEW_SERVICE, SetService: CMD_SET_SERVICE, DelService: CMD_DEL_SERVICE,
        AddDest: CMD_NEW_DEST, SetDest: CMD_SET_DEST, DelDest: CMD_DEL_DEST}


# ============================================================================ encoding
def genl_message(family_id: int, cmd: int, seq: int, flags: int, body: bytes,
                 version: int = IPVS_GENL_VERSION) -> bytes:
    """One generic-netlink request: header, genl header, attributes."""
    return message(family_id, flags, seq, _GENLHDR.pack(cmd, version, 0) + body)


def family_request(seq: int, name: str = IPVS_GENL_NAME) -> bytes:
    """CTRL_CMD_GETFAMILY: the id the kernel gave the ``name`` family (it loads ip_vs)."""
    return genl_message(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, seq, NLM_F_REQUEST,
                   attr(CTRL_ATTR_FAMILY_NAME, name.encode() + b"\0"), version=1)


def _family(key: ServiceKey) -> int:
    return socket.AF_INET if key.family == 4 else socket.AF_INET6


def _addr16(text: str, family: int) -> bytes:
    # union nf_inet_addr: the kernel copies 16 bytes whatever the family.
    return socket.inet_pton(family, text).ljust(16, b"\0")


def _v6_prefix(bits: int) -> bytes:
    # For IPv6 the kernel keeps the persistence prefix length in the __be32 netmask field
    # as a plain (host-order) number.
    return U32.pack(bits)


def _netmask(service: VirtualService) -> bytes:
    if service.key.family == 4:
        mask = service.persistence.netmask if service.persistence else "255.255.255.255"
        return socket.inet_aton(mask)
    return _v6_prefix(int(service.persistence.netmask) if service.persistence else 128)


def service_key_attrs(key: ServiceKey) -> bytes:
    """The attributes that name a service (what a dest command or a delete needs)."""
    family = _family(key)
    if key.protocol == "fwmark":
        return attr(SVC_AF, U16.pack(family)) + attr(SVC_FWMARK, U32.pack(int(key.address)))
    return (attr(SVC_AF, U16.pack(family))
            + attr(SVC_PROTOCOL, U16.pack(PROTOCOLS[key.protocol]))
            + attr(SVC_ADDR, _addr16(key.address, family))
            + attr(SVC_PORT, BE16.pack(key.port)))


def service_attrs(service: VirtualService) -> bytes:
    """A whole service entry, as NEW_SERVICE and SET_SERVICE require it."""
    return (service_key_attrs(service.key)
            + attr(SVC_SCHED_NAME, service.scheduler.encode() + b"\0")
            + attr(SVC_FLAGS, struct.pack("=II", service.flag_bits, FLAG_MASK))
            + attr(SVC_TIMEOUT, U32.pack(service.persistence.timeout_s
                                           if service.persistence else 0))
            + attr(SVC_NETMASK, _netmask(service)))


def dest_attrs(server: RealServer, full: bool = True) -> bytes:
    """A real server entry; ``full=False`` names it only (for a delete)."""
    family = socket.AF_INET if server.address.version == 4 else socket.AF_INET6
    attrs = (attr(DEST_ADDR, server.address.packed.ljust(16, b"\0"))
             + attr(DEST_PORT, BE16.pack(server.port))
             + attr(DEST_ADDR_FAMILY, U16.pack(family)))
    if not full:
        return attrs
    attrs += (attr(DEST_FWD_METHOD, U32.pack(FORWARDING[server.forwarding]))
              + attr(DEST_WEIGHT, U32.pack(server.weight))
              + attr(DEST_U_THRESH, U32.pack(server.upper_threshold))
              + attr(DEST_L_THRESH, U32.pack(server.lower_threshold)))
    if server.forwarding == "tun":
        attrs += (attr(DEST_TUN_TYPE, bytes((TUNNEL_TYPES[server.tunnel_type],)))
                  + attr(DEST_TUN_PORT, BE16.pack(server.tunnel_port))
                  + attr(DEST_TUN_FLAGS, U16.pack(0)))
    return attrs


def action_request(family_id: int, seq: int, action: IpvsAction) -> bytes:
    """The request that carries out one planned change, asking for an acknowledgement."""
    match action:
        case AddService(service=s) | SetService(service=s):
            body = nest(ATTR_SERVICE, service_attrs(s))
        case DelService(key=key):
            body = nest(ATTR_SERVICE, service_key_attrs(key))
        case AddDest(key=key, server=rs) | SetDest(key=key, server=rs):
            body = nest(ATTR_SERVICE, service_key_attrs(key)) + nest(ATTR_DEST, dest_attrs(rs))
        case DelDest(key=key, server=rs):
            body = (nest(ATTR_SERVICE, service_key_attrs(key))
                    + nest(ATTR_DEST, dest_attrs(rs, full=False)))
        case _:
            raise TypeError(f"not an IPVS action: {action!r}")
    return genl_message(family_id, _CMD[type(action)], seq, NLM_F_REQUEST | NLM_F_ACK, body)


def get_config_request(family_id: int, seq: int) -> bytes:
    """IPVS_CMD_GET_CONFIG: the connection timeouts."""
    return genl_message(family_id, CMD_GET_CONFIG, seq, NLM_F_REQUEST, b"")


def set_config_request(family_id: int, seq: int, timeouts: tuple[int, int, int]) -> bytes:
    """IPVS_CMD_SET_CONFIG with the tcp, tcpfin and udp timeouts (s; 0 keeps one)."""
    body = b"".join(attr(kind, struct.pack("=I", value)) for kind, value in
                    zip((ATTR_TIMEOUT_TCP, ATTR_TIMEOUT_TCP_FIN, ATTR_TIMEOUT_UDP), timeouts))
    return genl_message(family_id, CMD_SET_CONFIG, seq, NLM_F_REQUEST | NLM_F_ACK, body)


def decode_config(payload: bytes) -> tuple[int, int, int]:
    """The (tcp, tcpfin, udp) timeouts of a GET_CONFIG reply."""
    found = genl_attrs(payload)
    return (_u32(found, ATTR_TIMEOUT_TCP), _u32(found, ATTR_TIMEOUT_TCP_FIN),
            _u32(found, ATTR_TIMEOUT_UDP))


def dump_services_request(family_id: int, seq: int) -> bytes:
    return genl_message(family_id, CMD_GET_SERVICE, seq, NLM_F_REQUEST | NLM_F_DUMP, b"")


def get_service_request(family_id: int, seq: int, key: ServiceKey) -> bytes:
    """IPVS_CMD_GET_SERVICE for one service (the kernel answers ESRCH when it has none)."""
    return genl_message(family_id, CMD_GET_SERVICE, seq, NLM_F_REQUEST,
                        nest(ATTR_SERVICE, service_key_attrs(key)))


def dump_dests_request(family_id: int, seq: int, key: ServiceKey) -> bytes:
    return genl_message(family_id, CMD_GET_DEST, seq, NLM_F_REQUEST | NLM_F_DUMP,
                   nest(ATTR_SERVICE, service_key_attrs(key)))


# ============================================================================ decoding
def genl_attrs(payload: bytes) -> dict[int, bytes]:
    """The top-level attributes of a generic-netlink reply (after its genl header)."""
    return attrs(payload, _GENLHDR.size)


def family_id(payload: bytes) -> int:
    found = genl_attrs(payload)
    if CTRL_ATTR_FAMILY_ID not in found:
        raise CodecError("the generic-netlink controller's reply has no family id")
    family: int = U16.unpack_from(found[CTRL_ATTR_FAMILY_ID])[0]
    return family


def _u32(found: dict[int, bytes], kind: int, default: int = 0) -> int:
    value = found.get(kind)
    return U32.unpack_from(value)[0] if value else default


def _be16(found: dict[int, bytes], kind: int) -> int:
    value = found.get(kind)
    return BE16.unpack_from(value)[0] if value else 0


def _text(value: bytes | None, default: str) -> str:
    return value.split(b"\0", 1)[0].decode("ascii", "replace") if value else default


def _address(raw: bytes, family: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if family == socket.AF_INET:
        return ipaddress.IPv4Address(raw[:4])
    return ipaddress.IPv6Address(raw[:16])


def _counters(raw: bytes | None) -> dict[int, int]:
    if not raw:
        return {}
    return {kind: (U64 if len(value) == 8 else U32).unpack_from(value)[0]
            for kind, value in attrs(raw).items() if len(value) in (4, 8)}


@dataclass(frozen=True)
class ServiceReply:
    """A dumped service without its real servers, and its counters."""

    service: VirtualService
    connections: int
    in_packets: int
    out_packets: int


@dataclass(frozen=True)
class DestReply:
    server: RealServer
    active: int
    inactive: int


def decode_service(payload: bytes) -> ServiceReply:
    """One IPVS_CMD_NEW_SERVICE message of a service dump."""
    nested = genl_attrs(payload).get(ATTR_SERVICE)
    if nested is None:
        raise CodecError("a service dump message without IPVS_CMD_ATTR_SERVICE")
    found = attrs(nested)
    family = U16.unpack_from(found[SVC_AF])[0] if SVC_AF in found else socket.AF_INET
    version = 4 if family == socket.AF_INET else 6
    fwmark = _u32(found, SVC_FWMARK)
    if fwmark:
        key = ServiceKey(version, "fwmark", str(fwmark), 0)
    else:
        protocol = U16.unpack_from(found[SVC_PROTOCOL])[0] if SVC_PROTOCOL in found else 6
        key = ServiceKey(version, _PROTO_BY_NUMBER.get(protocol, str(protocol)),
                         str(_address(found.get(SVC_ADDR, b"\0" * 16), family)),
                         _be16(found, SVC_PORT))
    scheduler = _text(found.get(SVC_SCHED_NAME), "wlc")
    flag_bits = U32.unpack_from(found[SVC_FLAGS])[0] if SVC_FLAGS in found else 0
    persistence = None
    if flag_bits & SVC_F_PERSISTENT:
        raw_mask = found.get(SVC_NETMASK, b"\xff\xff\xff\xff")
        netmask = (socket.inet_ntoa(raw_mask[:4]) if version == 4
                   else str(U32.unpack_from(raw_mask)[0]))
        persistence = Persistence(timeout_s=_u32(found, SVC_TIMEOUT), netmask=netmask)
    flags = tuple(name for name, (sched, bit) in SCHEDULER_FLAGS.items()
                  if sched == scheduler and flag_bits & bit)
    stats = _counters(found.get(SVC_STATS64) or found.get(SVC_STATS))
    return ServiceReply(VirtualService(key=key, scheduler=scheduler, flags=flags,
                                       persistence=persistence,
                                       ops=bool(flag_bits & SVC_F_ONEPACKET)),
                        connections=stats.get(STATS_CONNS, 0),
                        in_packets=stats.get(STATS_INPKTS, 0),
                        out_packets=stats.get(STATS_OUTPKTS, 0))


def decode_dest(payload: bytes, service_family: int) -> DestReply:
    """One IPVS_CMD_NEW_DEST message of a destination dump."""
    nested = genl_attrs(payload).get(ATTR_DEST)
    if nested is None:
        raise CodecError("a destination dump message without IPVS_CMD_ATTR_DEST")
    found = attrs(nested)
    family = (U16.unpack_from(found[DEST_ADDR_FAMILY])[0] if DEST_ADDR_FAMILY in found
              else (socket.AF_INET if service_family == 4 else socket.AF_INET6))
    tun_type = found.get(DEST_TUN_TYPE)
    server = RealServer(
        address=_address(found.get(DEST_ADDR, b"\0" * 16), family),
        port=_be16(found, DEST_PORT),
        forwarding=_FWD_BY_NUMBER.get(_u32(found, DEST_FWD_METHOD) & FWD_MASK, "nat"),
        weight=_u32(found, DEST_WEIGHT),
        upper_threshold=_u32(found, DEST_U_THRESH),
        lower_threshold=_u32(found, DEST_L_THRESH),
        tunnel_type=_TUN_BY_NUMBER.get(tun_type[0] if tun_type else 0, "ipip"),
        tunnel_port=_be16(found, DEST_TUN_PORT))
    return DestReply(server, active=_u32(found, DEST_ACTIVE_CONNS),
                     inactive=_u32(found, DEST_INACT_CONNS))

