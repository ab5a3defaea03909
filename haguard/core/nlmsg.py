"""Netlink framing shared by haguard's codecs: headers, attributes, replies. Pure.

The numbers are the kernel's uapi (linux/netlink.h).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x01
NLM_F_MULTI = 0x02
NLM_F_ACK = 0x04
NLM_F_DUMP = 0x300
NLM_F_EXCL = 0x200      # with NEW requests
NLM_F_CREATE = 0x400
NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF

NLMSGHDR = struct.Struct("=IHHII")     # len, type, flags, seq, pid
NLATTR = struct.Struct("=HH")          # len, type
U16 = struct.Struct("=H")
U32 = struct.Struct("=I")
U64 = struct.Struct("=Q")
BE16 = struct.Struct("!H")


class CodecError(ValueError):
    """A message from the kernel that does not parse; never expected, always a bug."""


def attr(kind: int, payload: bytes) -> bytes:
    """One attribute, padded to 4 bytes."""
    size = NLATTR.size + len(payload)
    return NLATTR.pack(size, kind) + payload + b"\0" * (-size & 3)


def nest(kind: int, *attrs: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(attrs))


def message(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    """A netlink message: header then ``body`` (family header and attributes)."""
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), kind, flags, seq, 0) + body


def set_seq(buf: bytearray, offset: int, seq: int) -> None:
    """Number the message at ``offset`` of ``buf`` (requests are encoded before numbering)."""
    U32.pack_into(buf, offset + 8, seq)


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
    while offset + NLMSGHDR.size <= end:
        length, kind, flags, seq, _pid = NLMSGHDR.unpack_from(buf, offset)
        if length < NLMSGHDR.size or offset + length > end:
            raise CodecError(f"netlink message of length {length} at offset {offset} "
                             f"overruns a {end}-byte read")
        yield Reply(kind, flags, seq, buf[offset + NLMSGHDR.size:offset + length])
        offset += (length + 3) & ~3


def error_code(payload: bytes) -> int:
    """NLMSG_ERROR's errno as a positive number; 0 is an acknowledgement."""
    code: int = struct.unpack_from("=i", payload)[0]
    return -code


def attrs(buf: bytes, offset: int = 0, end: int | None = None) -> dict[int, bytes]:
    """The attributes in ``buf[offset:end]``, by type (nested ones left as bytes)."""
    found: dict[int, bytes] = {}
    end = len(buf) if end is None else end
    while offset + 4 <= end:
        length, kind = NLATTR.unpack_from(buf, offset)
        if length < 4 or offset + length > end:
            raise CodecError(f"netlink attribute of length {length} at offset {offset} "
                             f"overruns its {end}-byte container")
        found[kind & NLA_TYPE_MASK] = buf[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return found
