"""Figures of a failover drill from recorded events: pure.

Shared by the lab drill and the drill on a live pair. Inputs are JSON-line records as
the probes write them (``t`` is the wall clock): pongs, TCP connects, frames seen on the
wire, and haguard's own log events (``ts``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

# What a drill stopped after its trigger says: keepalived may still act on the trigger it
# saw (a lever pulled and released within milliseconds), after the drill has exited.
INTERRUPTED_NOTE = ("trigger undone before the drill finished: the pair may still hand over "
                    "and back for a few seconds; `haguard status` shows where it settles")


@dataclass(frozen=True)
class Outage:
    """The longest silence around a failover, as one probe saw it."""

    ms: float | None            # None: not measurable (no answer before or after)
    lost: int | None
    back_at: float | None       # when the probe was answered again


def ping_outage(pongs: Iterable[float], trigger_at: float, interval_ms: int) -> Outage:
    """Longest gap between echo replies across the trigger, less one interval."""
    times = sorted(pongs)
    before = [t for t in times if t < trigger_at]
    later = [t for t in times if t >= trigger_at]
    if not before or not later or interval_ms <= 0:
        return Outage(None, None, None)
    seq = [before[-1]] + later
    gap, start = max((b - a, a) for a, b in zip(seq, seq[1:]))
    return Outage(round(max(0.0, gap * 1000 - interval_ms), 1),
                  max(0, int(round(gap * 1000 / interval_ms)) - 1), start + gap)


def failure_run(events: Iterable[dict[str, Any]], trigger_at: float,
                ok: Callable[[dict[str, Any]], Any]) -> Outage:
    """Longest run of failed attempts after the trigger (first failure to next success)."""
    after = sorted((e for e in events if e.get("t", 0) >= trigger_at - 0.05),
                   key=lambda e: e["t"])
    longest: float | None = None
    back_at: float | None = None
    lost, start = 0, None
    for e in after:
        if not ok(e):
            lost += 1
            start = start if start is not None else e["t"]
        elif start is not None:
            gap = (e["t"] - start) * 1000
            if longest is None or gap > longest:
                longest, back_at = gap, e["t"]
            start = None
    return Outage(round(longest, 1) if longest is not None else 0.0, lost, back_at)


def ipvs_before_vip(log: Iterable[dict[str, Any]], since: float) -> bool | None:
    """Whether the first IPVS reconcile after ``since`` preceded the first VIP added."""
    events = [e for e in log if e.get("ts", 0) >= since]
    reconciled = next((e["ts"] for e in events if e.get("event") == "ipvs_reconciled"), None)
    added = next((e["ts"] for e in events if e.get("event") == "vip_added"), None)
    if reconciled is None:
        return None
    return added is None or reconciled <= added


@dataclass(frozen=True)
class WireView:
    """What a live drill knows about the node it runs on, to tell its frames apart."""

    node: str
    own_macs: frozenset[str]
    vrids: frozenset[int]
    vips: frozenset[str]


def live_milestones(view: WireView, trigger_at: float, wire: Iterable[dict[str, Any]],
                    own_log: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The timeline a director sees of its own failover: its adverts and log, the peer's
    first advert and first announcement on the wire. Times in ms from the trigger."""
    def ms(at: float) -> float:
        return round((at - trigger_at) * 1000, 1)

    milestones = [{"ms": 0.0, "who": view.node, "what": "failover triggered"}]
    found: dict[str, Any] = {"new_master": None, "new_master_mac": None,
                             "new_master_priority": None, "first_announcement_ms": None,
                             "left_master_ms": None, "new_master_ms": None,
                             "announcements_seen": 0}
    for e in sorted((e for e in own_log if e.get("ts", 0) >= trigger_at),
                    key=lambda e: e["ts"]):
        if e.get("event") == "vip_removed":
            milestones.append({"ms": ms(e["ts"]), "who": view.node,
                               "what": f"removed {e.get('vip')}"})
    for e in sorted((e for e in wire if e.get("t", 0) >= trigger_at), key=lambda e: e["t"]):
        kind, mine = e.get("kind"), e.get("eth_src") in view.own_macs
        if kind == "vrrp" and e.get("vrid") in view.vrids:
            if mine and e.get("priority") == 0 and found["left_master_ms"] is None:
                found["left_master_ms"] = ms(e["t"])
                milestones.append({"ms": ms(e["t"]), "who": view.node,
                                   "what": f"advertised priority 0 for VRID {e['vrid']} "
                                           "(left MASTER)"})
            elif not mine and e.get("priority", 0) > 0 and found["new_master"] is None:
                found.update(new_master=e.get("src"), new_master_mac=e.get("eth_src"),
                             new_master_priority=e.get("priority"), new_master_ms=ms(e["t"]))
                milestones.append({"ms": ms(e["t"]), "who": "wire",
                                   "what": f"new MASTER {e.get('src')} advertises VRID "
                                           f"{e['vrid']} (priority {e.get('priority')})"})
        elif not mine and _announces(e, view.vips):
            found["announcements_seen"] += 1
            if found["first_announcement_ms"] is None:
                found["first_announcement_ms"] = ms(e["t"])
                target = e.get("spa") or e.get("target")
                milestones.append({"ms": ms(e["t"]), "who": "wire",
                                   "what": f"first announcement of {target} from "
                                           f"{e.get('eth_src')}"})
    found["milestones"] = sorted(milestones, key=lambda m: m["ms"])
    return found


def _announces(frame: dict[str, Any], vips: frozenset[str]) -> bool:
    if frame.get("kind") == "arp":
        return frame.get("spa") == frame.get("tpa") and frame.get("spa") in vips
    if frame.get("kind") == "na":
        return frame.get("target") in vips and not frame.get("S")
    return False


def format_text(report: dict[str, Any]) -> str:
    """A drill report (lab or live pair) as the lines `haguard failover-test` prints."""
    where = f"lab {report['lab']}" if "lab" in report else f"{report['node']} (live pair)"
    lines = [f"failover drill on {where} ({report['method']}): "
             f"{report['old_master']} -> {report['new_master']}; times in ms from the trigger"]
    for m in report.get("milestones", []):
        lines.append(f"  {m['ms']:>+9.1f}  {m['who']:8} {m['what']}")
    if "lab" not in report and not report.get("probe_from"):
        lines.append("outage: not measured (no --probe-from: a director cannot probe its "
                     "own VIP)")
    else:
        lines.append(f"outage (ICMP every probe interval): {report.get('outage_ms')} ms, "
                     f"{report.get('pings_lost')} pings lost")
        if report.get("port") is not None:
            lines.append(f"outage (TCP connect to {report['vip']}:{report['port']}): "
                         f"{report.get('tcp_outage_ms')} ms, "
                         f"{report.get('tcp_connects_failed')} connects failed")
            survived = report.get("connections_survived")
            lines.append("long-lived connections surviving: " + (
                f"{survived}/{report.get('connections')}" if survived is not None
                else "unknown (the service did not answer HTTP on them)"))
    ipvs = report.get("ipvs_before_vip")
    lines.append("IPVS rules in place before the VIP" +
                 ("" if "lab" in report else f" ({report['old_master']}'s takeover at failback)")
                 + ": " + ("yes" if ipvs else "no" if ipvs is False else
                           "n/a (no ipvs section or no takeover seen here)"))
    if "failback_ms" in report:
        lines.append(f"failback: {report['old_master']} MASTER again after "
                     f"{report['failback_ms']} ms")
    if report.get("restored"):
        lines.append(f"pair: {report['restored']}")
    if "slo" in report:
        lines.append(report["slo"])
    return "\n".join(lines)
