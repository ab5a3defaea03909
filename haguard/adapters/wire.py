"""The wire capture: what crosses an interface, in both directions, kernel-timestamped.

``listen``: VRRP adverts only (``status``, ``doctor``, the levers and the live drill's
precheck). An AF_PACKET socket sees what this host sends as well as what it receives (a
raw IP socket would miss our own adverts), and a classic BPF filter keeps every other
frame in the kernel, so listening on a busy director costs nothing.

``sniff``: every ARP, Neighbor Advertisement and VRRP frame as a JSON-able record (the
live drill on the director, the lab's witness in the client namespace).
"""

from __future__ import annotations

import ctypes
import ipaddress
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

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


ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETH_P_IP = 0x0800
IPPROTO_VRRP = 112
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def describe_frame(frame: bytes) -> dict[str, Any] | None:
    """Decode the ARP or Neighbor Advertisement in an Ethernet frame, else None."""
    if len(frame) < 14:
        return None
    dst, src, ethertype = frame[0:6], frame[6:12], struct.unpack("!H", frame[12:14])[0]
    body = frame[14:]
    if ethertype == ETH_P_ARP and len(body) >= 28:
        op = struct.unpack("!H", body[6:8])[0]
        return {"kind": "arp", "op": op, "eth_src": _mac(src), "eth_dst": _mac(dst),
                "sha": _mac(body[8:14]), "spa": socket.inet_ntoa(body[14:18]),
                "tha": _mac(body[18:24]), "tpa": socket.inet_ntoa(body[24:28])}
    if ethertype == ETH_P_IP and len(body) >= 20 and body[9] == IPPROTO_VRRP:
        ihl = (body[0] & 0x0F) * 4
        vrrp = body[ihl:]
        if len(vrrp) >= 8:
            return {"kind": "vrrp", "eth_src": _mac(src), "src": socket.inet_ntoa(body[12:16]),
                    "dst": socket.inet_ntoa(body[16:20]), "version": vrrp[0] >> 4,
                    "vrid": vrrp[1], "priority": vrrp[2]}
        return None
    if ethertype == ETH_P_IPV6 and len(body) >= 40 + 24 and body[6] == 58 and body[40] == 136:
        icmp = body[40:]
        flags = icmp[4]
        record: dict[str, Any] = {
            "kind": "na", "eth_src": _mac(src), "eth_dst": _mac(dst),
            "src": str(ipaddress.IPv6Address(body[8:24])),
            "dst": str(ipaddress.IPv6Address(body[24:40])), "hlim": body[7],
            "R": bool(flags & 0x80), "S": bool(flags & 0x40), "O": bool(flags & 0x20),
            "target": str(ipaddress.IPv6Address(icmp[8:24])), "tll": None}
        options = icmp[24:]
        while len(options) >= 8 and options[1]:
            if options[0] == 2:
                record["tll"] = _mac(options[2:8])
            options = options[options[1] * 8:]
        return record
    return None


def sniff(iface: str, emit: Callable[[dict[str, Any]], None], stop: threading.Event,
          ready: threading.Event) -> None:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((iface, 0))
    # VRRP adverts arrive even where keepalived (which joins their group) is not running.
    join_vrrp_groups(sock, iface)
    # The kernel stamps each frame on arrival; userspace wake-up latency stays out.
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.settimeout(0.2)
    ready.set()
    try:
        while not stop.is_set():
            try:
                frame, ancdata, _, addr = sock.recvmsg(65535, 64)
            except TimeoutError:
                continue
            now = time.time()
            for level, kind, data in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                    sec, nsec = struct.unpack("qq", data[:16])
                    now = sec + nsec / 1e9
            try:
                record = describe_frame(frame)
            except (ValueError, IndexError, struct.error):
                record = None  # a truncated or odd frame is not ours to report
            if record is not None:
                record["t"] = now
                record["dir"] = "out" if addr[2] == PACKET_OUTGOING else "in"
                emit(record)
    finally:
        sock.close()


class Capture:
    """``sniff`` on each of ``interfaces`` in its own thread until ``close``; the records
    collect in ``frames`` (appended as they arrive) and a capture that died says why in
    ``errors``."""

    def __init__(self, interfaces: list[str], ready_s: float = 10.0) -> None:
        self.frames: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        readies = []

        def capture(name: str, ready: threading.Event) -> None:
            try:
                sniff(name, self.frames.append, self._stop, ready)
            except Exception as exc:  # noqa: BLE001 - reported by the caller, not lost
                self.errors.append(f"capture on {name} stopped: {exc!r}")
                ready.set()

        for name in dict.fromkeys(interfaces):
            ready = threading.Event()
            thread = threading.Thread(target=capture, args=(name, ready), daemon=True)
            thread.start()
            self._threads.append(thread)
            readies.append(ready)
        if not all(r.wait(ready_s) for r in readies):
            self.close()
            raise OperationFailed("cannot listen on the VRRP interfaces (needs root)")

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(2)
