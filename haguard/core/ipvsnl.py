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
from typing import Iterator

from haguard.core.ipvsconfig import (FORWARDING, PROTOCOLS, SCHEDULER_FLAGS, SVC_F_PERSISTENT,
                                     TUNNEL_TYPES, Persistence, RealServer, ServiceKey,
                                     VirtualService)
from haguard.core.ipvsplan import (AddDest, AddService, DelDest, DelService, IpvsAction,
                                   SetDest, SetService)

# linux/netlink.h
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x01
NLM_F_MULTI = 0x02
NLM_F_ACK = 0x04
NLM_F_DUMP = 0x300
NLA_F_NESTED = 0x8000
_NLA_TYPE_MASK = 0x3FFF
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
ATTR_SERVICE, ATTR_DEST = 1, 2
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

_NLMSGHDR = struct.Struct("=IHHII")     # len, type, flags, seq, pid
_GENLHDR = struct.Struct("=BBH")        # cmd, version, reserved
_NLATTR = struct.Struct("=HH")          # len, type
_U16 = struct.Struct("=H")
_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")
_BE16 = struct.Struct("!H")
_HDR_LEN = _NLMSGHDR.size + _GENLHDR.size

_PROTO_BY_NUMBER = {n: name for name, n in PROTOCOLS.items()}
_FWD_BY_NUMBER = {n: name for name, n in FORWARDING.items()}
_TUN_BY_NUMBER = {n: name for name, n in TUNNEL_TYPES.items()}
_CMD = {AddService: CMD_NEW_SERVICE, SetService: CMD_SET_SERVICE, DelService: CMD_DEL_SERVICE,
        AddDest: CMD_NEW_DEST, SetDest: CMD_SET_DEST, DelDest: CMD_DEL_DEST}


class CodecError(ValueError):
    """A message from the kernel that does not parse; never expected, always a bug."""


# ============================================================================ encoding
def _attr(kind: int, payload: bytes) -> bytes:
    size = _NLATTR.size + len(payload)
    return _NLATTR.pack(size, kind) + payload + b"\0" * (-size & 3)


def _nest(kind: int, *attrs: bytes) -> bytes:
    return _attr(kind | NLA_F_NESTED, b"".join(attrs))


def message(family_id: int, cmd: int, seq: int, flags: int, body: bytes,
            version: int = IPVS_GENL_VERSION) -> bytes:
    """One generic-netlink request: header, genl header, attributes."""
    return (_NLMSGHDR.pack(_HDR_LEN + len(body), family_id, flags, seq, 0)
            + _GENLHDR.pack(cmd, version, 0) + body)


def set_seq(buf: bytearray, offset: int, seq: int) -> None:
    """Number the message at ``offset`` of ``buf`` (requests are encoded before numbering)."""
    _U32.pack_into(buf, offset + 8, seq)


def family_request(seq: int, name: str = IPVS_GENL_NAME) -> bytes:
    """CTRL_CMD_GETFAMILY: the id the kernel gave the ``name`` family (it loads ip_vs)."""
    return message(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, seq, NLM_F_REQUEST,
                   _attr(CTRL_ATTR_FAMILY_NAME, name.encode() + b"\0"), version=1)


def _family(key: ServiceKey) -> int:
    return socket.AF_INET if key.family == 4 else socket.AF_INET6


def _addr16(text: str, family: int) -> bytes:
    # union nf_inet_addr: the kernel copies 16 bytes whatever the family.
    return socket.inet_pton(family, text).ljust(16, b"\0")


def _v6_prefix(bits: int) -> bytes:
    # For IPv6 the kernel keeps the persistence prefix length in the __be32 netmask field
    # as a plain (host-order) number.
    return _U32.pack(bits)


def _netmask(service: VirtualService) -> bytes:
    if service.key.family == 4:
        mask = service.persistence.netmask if service.persistence else "255.255.255.255"
        return socket.inet_aton(mask)
    return _v6_prefix(int(service.persistence.netmask) if service.persistence else 128)


def service_key_attrs(key: ServiceKey) -> bytes:
    """The attributes that name a service (what a dest command or a delete needs)."""
    family = _family(key)
    if key.protocol == "fwmark":
        return _attr(SVC_AF, _U16.pack(family)) + _attr(SVC_FWMARK, _U32.pack(int(key.address)))
    return (_attr(SVC_AF, _U16.pack(family))
            + _attr(SVC_PROTOCOL, _U16.pack(PROTOCOLS[key.protocol]))
            + _attr(SVC_ADDR, _addr16(key.address, family))
            + _attr(SVC_PORT, _BE16.pack(key.port)))


def service_attrs(service: VirtualService) -> bytes:
    """A whole service entry, as NEW_SERVICE and SET_SERVICE require it."""
    return (service_key_attrs(service.key)
            + _attr(SVC_SCHED_NAME, service.scheduler.encode() + b"\0")
            + _attr(SVC_FLAGS, struct.pack("=II", service.flag_bits, FLAG_MASK))
            + _attr(SVC_TIMEOUT, _U32.pack(service.persistence.timeout_s
                                           if service.persistence else 0))
            + _attr(SVC_NETMASK, _netmask(service)))


def dest_attrs(server: RealServer, full: bool = True) -> bytes:
    """A real server entry; ``full=False`` names it only (for a delete)."""
    family = socket.AF_INET if server.address.version == 4 else socket.AF_INET6
    attrs = (_attr(DEST_ADDR, server.address.packed.ljust(16, b"\0"))
             + _attr(DEST_PORT, _BE16.pack(server.port))
             + _attr(DEST_ADDR_FAMILY, _U16.pack(family)))
    if not full:
        return attrs
    attrs += (_attr(DEST_FWD_METHOD, _U32.pack(FORWARDING[server.forwarding]))
              + _attr(DEST_WEIGHT, _U32.pack(server.weight))
              + _attr(DEST_U_THRESH, _U32.pack(server.upper_threshold))
              + _attr(DEST_L_THRESH, _U32.pack(server.lower_threshold)))
    if server.forwarding == "tun":
        attrs += (_attr(DEST_TUN_TYPE, bytes((TUNNEL_TYPES[server.tunnel_type],)))
                  + _attr(DEST_TUN_PORT, _BE16.pack(server.tunnel_port))
                  + _attr(DEST_TUN_FLAGS, _U16.pack(0)))
    return attrs


def action_request(family_id: int, seq: int, action: IpvsAction) -> bytes:
    """The request that carries out one planned change, asking for an acknowledgement."""
    match action:
        case AddService(service=s) | SetService(service=s):
            body = _nest(ATTR_SERVICE, service_attrs(s))
        case DelService(key=key):
            body = _nest(ATTR_SERVICE, service_key_attrs(key))
        case AddDest(key=key, server=rs) | SetDest(key=key, server=rs):
            body = _nest(ATTR_SERVICE, service_key_attrs(key)) + _nest(ATTR_DEST, dest_attrs(rs))
        case DelDest(key=key, server=rs):
            body = (_nest(ATTR_SERVICE, service_key_attrs(key))
                    + _nest(ATTR_DEST, dest_attrs(rs, full=False)))
        case _:
            raise TypeError(f"not an IPVS action: {action!r}")
    return message(family_id, _CMD[type(action)], seq, NLM_F_REQUEST | NLM_F_ACK, body)


def dump_services_request(family_id: int, seq: int) -> bytes:
    return message(family_id, CMD_GET_SERVICE, seq, NLM_F_REQUEST | NLM_F_DUMP, b"")


def dump_dests_request(family_id: int, seq: int, key: ServiceKey) -> bytes:
    return message(family_id, CMD_GET_DEST, seq, NLM_F_REQUEST | NLM_F_DUMP,
                   _nest(ATTR_SERVICE, service_key_attrs(key)))


# ============================================================================ decoding
@dataclass(frozen=True)
class Reply:
    """One message from the kernel: its type, flags, sequence number and payload."""

    kind: int
    flags: int
    seq: int
    payload: bytes


def replies(buf: bytes) -> Iterator[Reply]:
    """Split what one recv() returned into messages."""
    offset, end = 0, len(buf)
    while offset + _NLMSGHDR.size <= end:
        length, kind, flags, seq, _pid = _NLMSGHDR.unpack_from(buf, offset)
        if length < _NLMSGHDR.size or offset + length > end:
            raise CodecError(f"netlink message of length {length} at offset {offset} "
                             f"overruns a {end}-byte read")
        yield Reply(kind, flags, seq, buf[offset + _NLMSGHDR.size:offset + length])
        offset += (length + 3) & ~3


def error_code(payload: bytes) -> int:
    """NLMSG_ERROR's errno as a positive number; 0 is an acknowledgement."""
    return -struct.unpack_from("=i", payload)[0]


def attrs(buf: bytes, offset: int = 0, end: int | None = None) -> dict[int, bytes]:
    """The attributes in ``buf[offset:end]``, by type (nested ones left as bytes)."""
    found: dict[int, bytes] = {}
    end = len(buf) if end is None else end
    while offset + 4 <= end:
        length, kind = _NLATTR.unpack_from(buf, offset)
        if length < 4 or offset + length > end:
            raise CodecError(f"netlink attribute of length {length} at offset {offset} "
                             f"overruns its {end}-byte container")
        found[kind & _NLA_TYPE_MASK] = buf[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return found


def genl_attrs(payload: bytes) -> dict[int, bytes]:
    """The top-level attributes of a generic-netlink reply (after its genl header)."""
    return attrs(payload, _GENLHDR.size)


def family_id(payload: bytes) -> int:
    found = genl_attrs(payload)
    if CTRL_ATTR_FAMILY_ID not in found:
        raise CodecError("the generic-netlink controller's reply has no family id")
    return _U16.unpack_from(found[CTRL_ATTR_FAMILY_ID])[0]


def _u32(found: dict[int, bytes], kind: int, default: int = 0) -> int:
    value = found.get(kind)
    return _U32.unpack_from(value)[0] if value else default


def _be16(found: dict[int, bytes], kind: int) -> int:
    value = found.get(kind)
    return _BE16.unpack_from(value)[0] if value else 0


def _text(value: bytes | None, default: str) -> str:
    return value.split(b"\0", 1)[0].decode("ascii", "replace") if value else default


def _address(raw: bytes, family: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if family == socket.AF_INET:
        return ipaddress.IPv4Address(raw[:4])
    return ipaddress.IPv6Address(raw[:16])


def _counters(raw: bytes | None) -> dict[int, int]:
    if not raw:
        return {}
    return {kind: (_U64 if len(value) == 8 else _U32).unpack_from(value)[0]
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
    family = _U16.unpack_from(found[SVC_AF])[0] if SVC_AF in found else socket.AF_INET
    version = 4 if family == socket.AF_INET else 6
    fwmark = _u32(found, SVC_FWMARK)
    if fwmark:
        key = ServiceKey(version, "fwmark", str(fwmark), 0)
    else:
        protocol = _U16.unpack_from(found[SVC_PROTOCOL])[0] if SVC_PROTOCOL in found else 6
        key = ServiceKey(version, _PROTO_BY_NUMBER.get(protocol, str(protocol)),
                         str(_address(found.get(SVC_ADDR, b"\0" * 16), family)),
                         _be16(found, SVC_PORT))
    scheduler = _text(found.get(SVC_SCHED_NAME), "wlc")
    flag_bits = _U32.unpack_from(found[SVC_FLAGS])[0] if SVC_FLAGS in found else 0
    persistence = None
    if flag_bits & SVC_F_PERSISTENT:
        raw_mask = found.get(SVC_NETMASK, b"\xff\xff\xff\xff")
        netmask = (socket.inet_ntoa(raw_mask[:4]) if version == 4
                   else str(_U32.unpack_from(raw_mask)[0]))
        persistence = Persistence(timeout_s=_u32(found, SVC_TIMEOUT), netmask=netmask)
    flags = tuple(name for name, (sched, bit) in SCHEDULER_FLAGS.items()
                  if sched == scheduler and flag_bits & bit)
    stats = _counters(found.get(SVC_STATS64) or found.get(SVC_STATS))
    return ServiceReply(VirtualService(key=key, scheduler=scheduler, flags=flags,
                                       persistence=persistence),
                        connections=stats.get(STATS_CONNS, 0),
                        in_packets=stats.get(STATS_INPKTS, 0),
                        out_packets=stats.get(STATS_OUTPKTS, 0))


def decode_dest(payload: bytes, service_family: int) -> DestReply:
    """One IPVS_CMD_NEW_DEST message of a destination dump."""
    nested = genl_attrs(payload).get(ATTR_DEST)
    if nested is None:
        raise CodecError("a destination dump message without IPVS_CMD_ATTR_DEST")
    found = attrs(nested)
    family = (_U16.unpack_from(found[DEST_ADDR_FAMILY])[0] if DEST_ADDR_FAMILY in found
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

