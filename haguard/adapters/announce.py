"""Gratuitous ARP and unsolicited Neighbor Advertisements, with scapy.

For IPv4 both forms go out (request and reply, sender = target = VIP, to broadcast):
some switches and hosts learn only from replies. For IPv6 an unsolicited NA to ff02::1
with hop limit 255, Override set and Router/Solicited clear. One L2 socket serves a
whole burst; scapy is imported lazily and without its route table (start-up time).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterable

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


@dataclass(frozen=True)
class BurstResult:
    frames_sent: int
    first_sent_at: float | None
    last_sent_at: float | None


def send_burst(interface: str, frames: list[bytes], count: int, interval_ms: int) -> BurstResult:
    """Send every frame ``count`` times, rounds ``interval_ms`` apart, on one socket."""
    if not frames or count <= 0:
        return BurstResult(0, None, None)
    conf = _scapy_conf()
    sent = 0
    first = last = None
    sock = conf.L2socket(iface=interface)
    try:
        for round_no in range(count):
            if round_no:
                time.sleep(interval_ms / 1000.0)
            for frame in frames:
                sock.send(frame)
                last = time.time()
                first = first or last
                sent += 1
    finally:
        sock.close()
    return BurstResult(sent, first, last)
