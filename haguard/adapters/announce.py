"""Gratuitous ARP and unsolicited Neighbor Advertisements: built with scapy, sent raw.

For IPv4 both forms go out (request and reply, sender = target = VIP, to broadcast):
some switches and hosts learn only from replies. For IPv6 an unsolicited NA to ff02::1
with hop limit 255, Override set and Router/Solicited clear.

Importing scapy costs about 0.2 s, too much on the takeover path. The frames depend
only on the interface MAC and the VIPs, so they are built by scapy ahead of time (on
BACKUP, which keepalived always reports before MASTER) and cached in the state
directory; MASTER sends the cached bytes through one AF_PACKET socket per burst and
falls back to building them on the spot when the cache does not match.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from haguard.core.config import Vip

BROADCAST = "ff:ff:ff:ff:ff:ff"
ALL_NODES_MAC = "33:33:00:00:00:01"


def _scapy_conf() -> Any:
    from scapy.config import conf

    conf.route_autoload = False
    conf.route6_autoload = False
    conf.verb = 0
    return conf


def build_frames(mac: str, vips: Iterable[Vip]) -> list[bytes]:
    """The frames of one round: 2 per IPv4 VIP (request, reply), 1 per IPv6 VIP."""
    vips = tuple(vips)
    _scapy_conf()
    frames: list[bytes] = []
    if any(v.family == 4 for v in vips):
        from scapy.layers.l2 import ARP, Ether

        for vip in (v for v in vips if v.family == 4):
            ip = str(vip.address)
            frames.append(bytes(Ether(dst=BROADCAST, src=mac) / ARP(
                op=1, hwsrc=mac, psrc=ip, hwdst="00:00:00:00:00:00", pdst=ip)))
            frames.append(bytes(Ether(dst=BROADCAST, src=mac) / ARP(
                op=2, hwsrc=mac, psrc=ip, hwdst=BROADCAST, pdst=ip)))
    if any(v.family == 6 for v in vips):
        from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
        from scapy.layers.l2 import Ether

        for vip in (v for v in vips if v.family == 6):
            ip = str(vip.address)
            frames.append(bytes(
                Ether(dst=ALL_NODES_MAC, src=mac)
                / IPv6(src=ip, dst="ff02::1", hlim=255)
                / ICMPv6ND_NA(tgt=ip, R=0, S=0, O=1)
                / ICMPv6NDOptDstLLAddr(lladdr=mac)))
    return frames


def _cache_key(mac: str, vips: Iterable[Vip]) -> list[str]:
    return [mac.lower(), *(str(v) for v in vips)]


def cached_frames(path: str, mac: str, vips: Iterable[Vip]) -> list[bytes] | None:
    """The cached frames when they were built for exactly this MAC and these VIPs."""
    try:
        with open(path, encoding="ascii") as fh:
            data = json.load(fh)
        if data.get("key") != _cache_key(mac, vips):
            return None
        return [bytes.fromhex(f) for f in data["frames"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def store_frames(path: str, mac: str, vips: Iterable[Vip], frames: list[bytes]) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="ascii") as fh:
        json.dump({"key": _cache_key(mac, vips), "frames": [f.hex() for f in frames]}, fh)
    os.replace(tmp, path)


def frames_for(path: str, mac: str, vips: Iterable[Vip]) -> tuple[list[bytes], bool]:
    """(frames, came_from_cache): the cache if it matches, else built and cached."""
    vips = tuple(vips)
    frames = cached_frames(path, mac, vips)
    if frames is not None:
        return frames, True
    frames = build_frames(mac, vips)
    try:
        store_frames(path, mac, vips, frames)
    except OSError:
        pass  # a cache is an optimisation; sending does not depend on it
    return frames, False


@dataclass(frozen=True)
class BurstResult:
    frames_sent: int
    first_sent_at: float | None
    last_sent_at: float | None


def send_burst(interface: str, frames: list[bytes], count: int, interval_ms: int,
               keep_going: Callable[[], bool] = lambda: True, wait_first: bool = False,
               sock: socket.socket | None = None) -> BurstResult:
    """Send every frame ``count`` times, rounds ``interval_ms`` apart, on one socket.

    Before each later round (and the first when ``wait_first``) ``keep_going`` is asked
    whether this node still owns the VIPs; the burst ends as soon as it does not.
    """
    if not frames or count <= 0:
        return BurstResult(0, None, None)
    sent = 0
    first = last = None
    own = sock is None
    if sock is None:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    try:
        if own:
            sock.bind((interface, 0))
        for round_no in range(count):
            if round_no or wait_first:
                time.sleep(interval_ms / 1000.0)
                if not keep_going():
                    break
            for frame in frames:
                sock.send(frame)
                last = time.time()
                first = first or last
                sent += 1
    finally:
        if own:
            sock.close()  # slow (the kernel waits for a grace period): the agent keeps one
    return BurstResult(sent, first, last)


class PacketSockets:
    """AF_PACKET sockets kept open per interface, for a process that announces often."""

    def __init__(self) -> None:
        self._open: dict[str, tuple[int, socket.socket]] = {}

    def get(self, interface: str, index: int) -> socket.socket:
        """The socket bound to ``interface``; a new one when the interface was recreated."""
        held = self._open.get(interface)
        if held is not None and held[0] == index:
            return held[1]
        if held is not None:
            held[1].close()
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        sock.bind((interface, 0))
        self._open[interface] = (index, sock)
        return sock

    def close(self) -> None:
        for _, sock in self._open.values():
            sock.close()
        self._open.clear()
