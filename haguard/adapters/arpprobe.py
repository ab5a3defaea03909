"""ARP probes (RFC 5227: sender 0.0.0.0) on a raw socket: who answers for an address.

Used by ``doctor`` (another host answering for a VIP) and by ``demote --wait`` (the new
MASTER answers for it now). A zero sender address changes no neighbour cache on the way.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Sequence

ETH_P_ARP = 0x0806
PACKET_OUTGOING = 4


def _mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def arp_probe(interface: str, mac: str, vips: Sequence[str], seconds: float = 1.0,
              rounds: int = 3) -> dict[str, list[str]]:
    """Send ARP probes (sender IP 0.0.0.0) for ``vips``; the MACs that answered each."""
    own = _mac_bytes(mac)
    frames = []
    for vip in vips:
        arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, own, bytes(4), bytes(6),
                          socket.inet_aton(vip))
        frames.append((b"\xff" * 6 + own + struct.pack("!H", ETH_P_ARP) + arp).ljust(60, b"\0"))
    replies: dict[str, list[str]] = {vip: [] for vip in vips}
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    try:
        sock.bind((interface, ETH_P_ARP))
        sock.setblocking(False)
        start = time.monotonic()
        deadline = start + seconds
        next_round, sent = start, 0
        while True:
            now = time.monotonic()
            if sent < rounds and now >= next_round:
                for frame in frames:
                    sock.send(frame)
                sent += 1
                next_round = start + sent * seconds / (rounds + 1)
            if now >= deadline:
                break
            wake = min(deadline, next_round) if sent < rounds else deadline
            ready, _, _ = select.select([sock], [], [], max(0.0, wake - now))
            while ready:
                try:
                    frame, addr = sock.recvfrom(2048)
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING or len(frame) < 42:
                    continue
                op, sha, spa = struct.unpack_from("!H6s4s", frame, 20)
                sender = socket.inet_ntoa(spa)
                if op == 2 and sender in replies and sha != own:
                    text = ":".join(f"{b:02x}" for b in sha)
                    if text not in replies[sender]:
                        replies[sender].append(text)
    finally:
        sock.close()
    return replies
