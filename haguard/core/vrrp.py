"""VRRP adverts as seen on the wire, and what they say about a pair. Pure.

keepalived run by haguard advertises no addresses (haguard owns the VIPs), so an
advert for one of our VRIDs that carries addresses, or a different interval, comes
from somebody else's router.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from haguard.core.config import Config, Instance

IPPROTO_VRRP = 112
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD

# Slack on top of three advert intervals. Listening: a window of exactly three intervals
# can miss the third advert by a little jitter. Waiting for a peer to take over: its
# master_down skew (< one interval) and the start of its notify come on top.
LISTEN_SLACK_S = 0.2
TAKEOVER_SLACK_S = 1.0


def advert_window(instances: Iterable[Instance], slack_s: float = LISTEN_SLACK_S) -> float:
    """Three advert intervals of the slowest instance, plus ``slack_s``: in that time a
    live MASTER is heard at least twice, and a healthy BACKUP has taken over from a
    MASTER that went silent (keepalived's master_down)."""
    return 3 * max((i.advert_int for i in instances), default=1.0) + slack_s


@dataclass(frozen=True)
class Advert:
    """One VRRP advertisement captured on an interface."""

    interface: str
    source: str
    source_mac: str
    vrid: int
    priority: int
    version: int
    advert_int_s: float
    addresses: tuple[str, ...]
    outgoing: bool          # sent by this host
    at: float
    destination: str = ""   # the group address, or the peer's with unicast_peer


def parse_frame(frame: bytes, interface: str, outgoing: bool, at: float) -> Advert | None:
    """An Ethernet frame carrying a VRRP advertisement; None for anything else."""
    if len(frame) < 14:
        return None
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    mac = ":".join(f"{b:02x}" for b in frame[6:12])
    if ethertype == ETH_P_IP and len(frame) >= 34:
        ihl = (frame[14] & 0x0F) * 4
        if frame[23] != IPPROTO_VRRP:
            return None
        source = socket.inet_ntoa(frame[26:30])
        destination = socket.inet_ntoa(frame[30:34])
        body, family = frame[14 + ihl:], 4
    elif ethertype == ETH_P_IPV6 and len(frame) >= 54:
        if frame[20] != IPPROTO_VRRP:
            return None
        source = str(ipaddress.IPv6Address(frame[22:38]))
        destination = str(ipaddress.IPv6Address(frame[38:54]))
        body, family = frame[54:], 6
    else:
        return None
    if len(body) < 8 or body[0] & 0x0F != 1:   # type 1: advertisement
        return None
    version, vrid, priority, count = body[0] >> 4, body[1], body[2], body[3]
    if version == 2:
        interval = float(body[5])
        offset = 8
    elif version == 3:
        interval = (struct.unpack_from("!H", body, 4)[0] & 0x0FFF) / 100.0
        offset = 8
    else:
        return None
    size = 4 if family == 4 else 16
    addresses = []
    for i in range(count):
        raw = body[offset + i * size:offset + (i + 1) * size]
        if len(raw) != size:
            break
        addresses.append(str(ipaddress.ip_address(raw)))
    return Advert(interface=interface, source=source, source_mac=mac, vrid=vrid,
                  priority=priority, version=version, advert_int_s=interval,
                  addresses=tuple(addresses), outgoing=outgoing, at=at,
                  destination=destination)


@dataclass(frozen=True)
class Speaker:
    """Who advertised one VRID during the window."""

    source: str
    source_mac: str
    priority: int          # the last one heard
    adverts: int
    ours: bool             # this host
    foreign: bool          # not our pair: see foreign_reason
    foreign_reason: str | None


@dataclass(frozen=True)
class VridReport:
    instance: str
    interface: str
    vrid: int
    speakers: tuple[Speaker, ...]
    split_brain: bool
    problems: tuple[str, ...]


def _foreign_reason(inst: Instance, adverts: list[Advert]) -> str | None:
    last = adverts[-1]
    if last.addresses:
        return f"advertises addresses {', '.join(last.addresses)} (haguard's pair advertises none)"
    if abs(last.advert_int_s - inst.advert_int) > 0.011:
        return f"advertises every {last.advert_int_s:g} s (this instance: {inst.advert_int:g} s)"
    if inst.unicast_peers and ipaddress.ip_address(last.source) not in inst.unicast_peers:
        return f"{last.source} is not one of the unicast peers"
    return None


def analyse(config: Config, adverts: Iterable[Advert], window_s: float) -> list[VridReport]:
    """Per instance: who advertised its VRID on its interface, split brain, foreigners."""
    reports = []
    adverts = list(adverts)
    for inst in config.instances:
        mine = [a for a in adverts if a.vrid == inst.virtual_router_id
                and a.interface == inst.interface]
        by_source: dict[str, list[Advert]] = {}
        for advert in mine:
            by_source.setdefault(advert.source, []).append(advert)
        speakers = []
        for source, heard in sorted(by_source.items()):
            ours = any(a.outgoing for a in heard)
            reason = None if ours else _foreign_reason(inst, heard)
            speakers.append(Speaker(source=source, source_mac=heard[-1].source_mac,
                                    priority=heard[-1].priority, adverts=len(heard), ours=ours,
                                    foreign=reason is not None, foreign_reason=reason))
        # A MASTER advertises every interval; two sources doing so at a non-zero
        # priority through the window is two MASTERs (priority 0 is one leaving).
        steady = [s for s in speakers if s.priority > 0 and s.adverts >= 2]
        split = len(steady) >= 2
        problems = []
        if split:
            problems.append(f"split brain: {' and '.join(s.source for s in steady)} both "
                            f"advertise VRID {inst.virtual_router_id} as MASTER")
        for s in speakers:
            if s.foreign:
                problems.append(f"foreign router {s.source} ({s.source_mac}) uses VRID "
                                f"{inst.virtual_router_id}: {s.foreign_reason}")
        if not speakers and window_s >= 2 * inst.advert_int:
            problems.append(f"nobody advertised VRID {inst.virtual_router_id} on "
                            f"{inst.interface} for {window_s:g} s: no MASTER")
        reports.append(VridReport(instance=inst.name, interface=inst.interface,
                                  vrid=inst.virtual_router_id, speakers=tuple(speakers),
                                  split_brain=split, problems=tuple(problems)))
    return reports
