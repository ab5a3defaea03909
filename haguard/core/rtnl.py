"""rtnetlink messages for links and addresses, as bytes both ways. Pure.

What a transition needs from rtnetlink is small: a link by name, the addresses on it,
add one, delete one. Encoding it here keeps a takeover to one short request and its
acknowledgement. Numbers from linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass

from haguard.core.nlmsg import (
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_EXCL,
    NLM_F_REQUEST,
    U32,
    attr,
    attrs,
    message,
)

RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
IFLA_ADDRESS, IFLA_IFNAME = 1, 3
IFA_ADDRESS, IFA_LOCAL, IFA_LABEL, IFA_FLAGS = 1, 2, 3, 8
IFA_F_NODAD = 0x02
IFF_UP = 0x1

IFINFOMSG = struct.Struct("=BxHiII")   # family, type, index, flags, change
IFADDRMSG = struct.Struct("=BBBBI")    # family, prefixlen, flags, scope, index

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class LinkInfo:
    index: int
    name: str
    mac: str
    up: bool


@dataclass(frozen=True)
class AddrInfo:
    index: int
    address: IPAddress
    prefixlen: int
    label: str | None


def get_link(seq: int, name: str) -> bytes:
    """RTM_GETLINK for one link by name (the kernel answers ENODEV when there is none)."""
    body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + attr(IFLA_IFNAME, name.encode() + b"\0")
    return message(RTM_GETLINK, NLM_F_REQUEST, seq, body)


def dump_links(seq: int) -> bytes:
    return message(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq,
                   IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0))


def set_link_up(seq: int, index: int) -> bytes:
    return message(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq,
                   IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP))


def dump_addresses(seq: int) -> bytes:
    return message(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq,
                   IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0))


def _addr_body(index: int, address: IPAddress, prefixlen: int, flags: int,
               label: str | None) -> bytes:
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    body = IFADDRMSG.pack(family, prefixlen, flags & 0xFF, 0, index)
    if address.version == 4:
        # IFA_LOCAL is the address; IFA_ADDRESS the peer, the same on a broadcast link.
        body += attr(IFA_LOCAL, address.packed) + attr(IFA_ADDRESS, address.packed)
        if label:
            body += attr(IFA_LABEL, label.encode() + b"\0")
    else:
        body += attr(IFA_ADDRESS, address.packed)
    if flags:
        body += attr(IFA_FLAGS, U32.pack(flags))
    return body


def add_address(seq: int, index: int, address: IPAddress, prefixlen: int,
                label: str | None = None, nodad: bool = False) -> bytes:
    """RTM_NEWADDR that fails with EEXIST when the address is already there."""
    flags = IFA_F_NODAD if nodad and address.version == 6 else 0
    return message(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq,
                   _addr_body(index, address, prefixlen, flags, label))


def del_address(seq: int, index: int, address: IPAddress, prefixlen: int) -> bytes:
    return message(RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, seq,
                   _addr_body(index, address, prefixlen, 0, None))


def _mac(raw: bytes | None) -> str:
    return ":".join(f"{b:02x}" for b in raw) if raw else "00:00:00:00:00:00"


def decode_link(payload: bytes) -> LinkInfo:
    _family, _type, index, flags, _change = IFINFOMSG.unpack_from(payload)
    found = attrs(payload, IFINFOMSG.size)
    name = found.get(IFLA_IFNAME, b"").split(b"\0", 1)[0].decode("utf-8", "replace")
    return LinkInfo(index=index, name=name, mac=_mac(found.get(IFLA_ADDRESS)),
                    up=bool(flags & IFF_UP))


def decode_address(payload: bytes) -> AddrInfo | None:
    """One RTM_NEWADDR of a dump; None for a family haguard does not manage."""
    family, prefixlen, _flags, _scope, index = IFADDRMSG.unpack_from(payload)
    found = attrs(payload, IFADDRMSG.size)
    if family == socket.AF_INET:
        raw = found.get(IFA_LOCAL) or found.get(IFA_ADDRESS)
        address: IPAddress | None = ipaddress.IPv4Address(raw) if raw else None
    elif family == socket.AF_INET6:
        raw = found.get(IFA_ADDRESS) or found.get(IFA_LOCAL)
        address = ipaddress.IPv6Address(raw) if raw else None
    else:
        return None
    if address is None:
        return None
    label = found.get(IFA_LABEL)
    return AddrInfo(index=index, address=address, prefixlen=prefixlen,
                    label=label.split(b"\0", 1)[0].decode("utf-8", "replace") if label else None)
