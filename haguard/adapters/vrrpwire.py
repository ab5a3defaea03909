"""Listening for VRRP adverts on the wire: both directions, only protocol 112.

An AF_PACKET socket sees what this host sends as well as what it receives (a raw IP
socket would miss our own adverts), and a classic BPF filter keeps every other frame
in the kernel, so listening on a busy director costs nothing.
"""

from __future__ import annotations

import ctypes
import select
import socket
import struct
import time
from collections.abc import Callable

from haguard.core.vrrp import Advert, parse_frame
from haguard.errors import OperationFailed

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
PACKET_OUTGOING = 4

# ethertype IPv4 and IP protocol 112, or ethertype IPv6 and next header 112
_FILTER = [
    (0x28, 0, 0, 12),        # ldh [12]
    (0x15, 0, 2, 0x0800),    # jeq IPv4 ? 2 : 4
    (0x30, 0, 0, 23),        # ldb [23]
    (0x15, 3, 4, 112),       # jeq 112 ? accept : reject
    (0x15, 0, 3, 0x86DD),    # jeq IPv6 ? 5 : reject
    (0x30, 0, 0, 20),        # ldb [20]
    (0x15, 0, 1, 112),       # jeq 112 ? accept : reject
    (0x06, 0, 0, 0x40000),   # accept
    (0x06, 0, 0, 0),         # reject
]


def _attach_filter(sock: socket.socket) -> None:
    program = b"".join(struct.pack("HBBI", *insn) for insn in _FILTER)
    buf = ctypes.create_string_buffer(program, len(program))
    # struct sock_fprog: the kernel copies the program during this call.
    fprog = struct.pack("HL", len(_FILTER), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_MULTICAST = 0
# The Ethernet groups of VRRP's multicast addresses 224.0.0.18 and ff02::12.
VRRP_GROUP_MACS = (bytes.fromhex("01005e000012"), bytes.fromhex("333300000012"))


def join_vrrp_groups(sock: socket.socket, interface: str) -> None:
    """Make the interface accept VRRP's multicast frames while ``sock`` is open.

    keepalived joins 224.0.0.18 / ff02::12 only while it runs; a NIC that filters
    multicast (virtio-net, most real ones) then drops the peer's adverts on a node whose
    keepalived is stopped, and a listener there would hear nobody. The membership is the
    socket's and ends with it."""
    index = socket.if_nametoindex(interface)
    for mac in VRRP_GROUP_MACS:
        mreq = struct.pack("iHH8s", index, PACKET_MR_MULTICAST, len(mac), mac)
        sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)


def _open(interface: str) -> socket.socket:
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    except PermissionError:
        raise OperationFailed("listening for VRRP adverts needs root (CAP_NET_RAW)") from None
    try:
        _attach_filter(sock)
        sock.bind((interface, 0))
        join_vrrp_groups(sock, interface)
    except OSError as exc:
        sock.close()
        raise OperationFailed(f"cannot listen on {interface}: {exc.strerror}") from exc
    # Frames queued before the filter was attached may be anything: drop them.
    sock.setblocking(False)
    while True:
        try:
            sock.recv(65535)
        except BlockingIOError:
            break
    return sock


def listen(interfaces: list[str], seconds: float,
           until: Callable[[Advert], bool] | None = None) -> list[Advert]:
    """Every VRRP advert sent or received on ``interfaces`` during ``seconds`` (or up to
    the first one ``until`` accepts)."""
    socks = {_open(name): name for name in dict.fromkeys(interfaces)}
    adverts: list[Advert] = []
    deadline = time.monotonic() + seconds
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select(list(socks), [], [], left)
            for sock in ready:
                while True:
                    try:
                        frame, addr = sock.recvfrom(65535)
                    except BlockingIOError:
                        break
                    advert = parse_frame(frame, socks[sock], addr[2] == PACKET_OUTGOING,
                                         time.time())
                    if advert is not None:
                        adverts.append(advert)
                        if until is not None and until(advert):
                            return adverts
    finally:
        for sock in socks:
            sock.close()
    return adverts
