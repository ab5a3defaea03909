"""A failover's story from the client's side, computed from recorded events: pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from haguard.core.drillreport import ping_outage


@dataclass(frozen=True)
class Milestone:
    at: float            # wall clock
    who: str
    what: str


@dataclass
class Timeline:
    trigger_at: float
    old_node: str
    new_node: str
    old_mac: str
    new_mac: str
    milestones: list[Milestone] = field(default_factory=list)
    outage_ms: float | None = None
    pings_lost: int | None = None
    neighbour_switched_at: dict[str, float] = field(default_factory=dict)
    neighbour_before: dict[str, str] = field(default_factory=dict)
    client_asked: dict[str, bool] = field(default_factory=dict)
    garp_requests: int = 0
    garp_replies: int = 0
    unsolicited_nas: int = 0
    first_announcement_seen_at: float | None = None
    old_master_kept: list[str] = field(default_factory=list)   # VIPs the old MASTER still held

    def ms(self, at: float | None) -> float | None:
        return None if at is None else round((at - self.trigger_at) * 1000, 1)

    @property
    def learned_from_announcement(self) -> bool:
        """Every VIP's entry moved to the new MAC and the client never asked for it."""
        return bool(self.neighbour_switched_at) and not any(self.client_asked.values()) \
            and len(self.neighbour_switched_at) == len(self.neighbour_before)

    def as_dict(self) -> dict[str, Any]:
        return {
            "trigger_at": self.trigger_at, "old_master": self.old_node,
            "new_master": self.new_node, "old_mac": self.old_mac, "new_mac": self.new_mac,
            "milestones": [{"ms": self.ms(m.at), "who": m.who, "what": m.what}
                           for m in sorted(self.milestones, key=lambda m: m.at)],
            "outage_ms": self.outage_ms, "pings_lost": self.pings_lost,
            "neighbour_switched_ms": {ip: self.ms(t) for ip, t in self.neighbour_switched_at.items()},
            "neighbour_before": self.neighbour_before,
            "client_sent_own_request": self.client_asked,
            "garp_request_frames": self.garp_requests, "garp_reply_frames": self.garp_replies,
            "unsolicited_na_frames": self.unsolicited_nas,
            "first_announcement_seen_ms": self.ms(self.first_announcement_seen_at),
            "learned_from_announcement": self.learned_from_announcement,
            "old_master_kept_vips": self.old_master_kept,
        }


def build_timeline(trigger_at: float, old_node: str, new_node: str, old_mac: str, new_mac: str,
                   vips: list[str], probe: list[dict[str, Any]],
                   old_log: list[dict[str, Any]], new_log: list[dict[str, Any]],
                   client_addresses: list[str], ping_interval_ms: int | None,
                   new_mac_of: dict[str, str] | None = None) -> Timeline:
    """Assemble milestones from the probe's records and both directors' haguard logs.

    ``new_mac_of``: the new MASTER's MAC for a VIP on another device than the first
    (vips[].interface), which announces from that device's MAC."""
    def mac_for(vip: str) -> str:
        return (new_mac_of or {}).get(vip, new_mac)

    tl = Timeline(trigger_at=trigger_at, old_node=old_node, new_node=new_node,
                  old_mac=old_mac, new_mac=new_mac)
    tl.milestones.append(Milestone(trigger_at, old_node, "failover triggered"))
    after = [e for e in probe if e.get("t", 0) >= trigger_at]

    # Where each VIP's neighbour entry stood just before the trigger.
    for e in probe:
        if e.get("kind") == "neigh" and e.get("t", 0) < trigger_at and e.get("ip") in vips \
                and e.get("mac"):
            tl.neighbour_before[e["ip"]] = e["mac"]

    for e in old_log:
        if e.get("ts", 0) >= trigger_at and e.get("event") == "vip_removed":
            tl.milestones.append(Milestone(e["ts"], old_node, f"removed {e.get('vip')}"))
    first = {}
    for e in new_log:
        ts = e.get("ts", 0)
        if ts < trigger_at:
            continue
        name = e.get("event")
        if name == "notify_received" and e.get("state") == "MASTER" and "forked" not in first:
            first["forked"] = e
            if isinstance(e.get("forked_at"), (int, float)):
                tl.milestones.append(Milestone(e["forked_at"], new_node,
                                               "keepalived forked the MASTER notify"))
            tl.milestones.append(Milestone(ts, new_node, "haguard notify MASTER started"))
        elif name == "vip_added" and e.get("changed"):
            tl.milestones.append(Milestone(ts, new_node, f"added {e.get('vip')}"))
        elif name == "announced" and "announced" not in first:
            first["announced"] = e
            if isinstance(e.get("first_sent_at"), (int, float)):
                tl.milestones.append(Milestone(e["first_sent_at"], new_node,
                                               "first announcement sent"))

    for e in after:
        kind = e.get("kind")
        if kind == "arp":
            gratuitous = e["spa"] == e["tpa"] and e["spa"] in vips
            if gratuitous and e["sha"] == mac_for(e["spa"]) and e.get("dir") == "in":
                if e["op"] == 1:
                    tl.garp_requests += 1
                elif e["op"] == 2:
                    tl.garp_replies += 1
                if tl.first_announcement_seen_at is None:
                    tl.first_announcement_seen_at = e["t"]
                    tl.milestones.append(Milestone(e["t"], "client", f"first gratuitous ARP for "
                                                   f"{e['spa']} received (from {e['sha']})"))
            if e["op"] == 1 and e.get("dir") == "out" and e["tpa"] in vips \
                    and e["spa"] in client_addresses and e["tpa"] not in tl.neighbour_switched_at:
                tl.client_asked[e["tpa"]] = True
        elif kind == "na" and e.get("target") in vips and e.get("tll") == mac_for(e["target"]) \
                and e.get("dir") == "in":
            tl.unsolicited_nas += 1
            if tl.first_announcement_seen_at is None:
                tl.first_announcement_seen_at = e["t"]
                tl.milestones.append(Milestone(e["t"], "client", f"first unsolicited NA for "
                                               f"{e['target']} received"))
        elif kind == "na" and e.get("dir") == "out" and e.get("target") in vips:
            pass  # the client's own NA is not a question
        elif kind == "neigh" and e.get("ip") in vips and e.get("mac") == mac_for(e["ip"]) \
                and e["ip"] not in tl.neighbour_switched_at and e.get("event") != "dump":
            tl.neighbour_switched_at[e["ip"]] = e["t"]
            tl.milestones.append(Milestone(e["t"], "client", f"neighbour entry {e['ip']} -> "
                                           f"{e['mac']} ({e.get('state')})"))
    # A Neighbor Solicitation from the client for a VIP would also be a question; the
    # probe records NAs only, so IPv6 "asked" relies on the NA witnessing below.
    for ip in tl.neighbour_before:
        tl.client_asked.setdefault(ip, False)

    outage = ping_outage((e["t"] for e in probe if e.get("kind") == "pong"), trigger_at,
                         ping_interval_ms or 0)
    if outage.back_at is not None:
        tl.outage_ms, tl.pings_lost = outage.ms, outage.lost
        tl.milestones.append(Milestone(outage.back_at, "client", "ping answered again after "
                                       "the longest gap"))
    return tl


def format_timeline(tl: Timeline) -> str:
    lines = [f"failover {tl.old_node} -> {tl.new_node}; times in ms from the trigger",
             f"  {tl.old_node} MAC {tl.old_mac}, {tl.new_node} MAC {tl.new_mac}"]
    for m in sorted(tl.milestones, key=lambda m: m.at):
        lines.append(f"  {tl.ms(m.at):>+9.1f}  {m.who:<8} {m.what}")
    if tl.outage_ms is not None:
        lines.append(f"ping outage: {tl.outage_ms:.0f} ms ({tl.pings_lost} probes lost)")
    else:
        lines.append("ping outage: not measured")
    lines.append(f"announcements seen by the client from {tl.new_node}: "
                 f"{tl.garp_requests} GARP requests, {tl.garp_replies} GARP replies, "
                 f"{tl.unsolicited_nas} unsolicited NAs")
    for ip, mac in sorted(tl.neighbour_before.items()):
        switched = tl.neighbour_switched_at.get(ip)
        asked = tl.client_asked.get(ip)
        lines.append(f"client neighbour {ip}: {mac} before -> "
                     + (f"{tl.new_mac} at {tl.ms(switched):+.1f} ms" if switched else "NOT switched")
                     + ("; the client asked (ARP request) itself" if asked else
                        "; the client never asked"))
    if tl.old_master_kept:
        lines.append(f"WARNING: {tl.old_node} still held {', '.join(tl.old_master_kept)} after "
                     f"the takeover (its STOP transition did not finish)")
    lines.append("learned the new MAC from haguard's announcement: "
                 + ("yes" if tl.learned_from_announcement else "NO"))
    return "\n".join(lines)
