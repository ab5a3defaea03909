"""`haguard status`: recorded state against what the node really holds."""

from __future__ import annotations

import datetime
import time
from typing import Any

from haguard.adapters import keepalived
from haguard.adapters.host import Host, opened
from haguard.adapters.statefile import StateDir
from haguard.app import levers
from haguard.app.healthwatch import REFRESH_S
from haguard.core.config import Config
from haguard.core.events import ACTIVE_STATES

STALE_SLACK_S = 5.0   # beyond two check intervals and the agent's refresh, before stale


def collect(config: Config, wire_s: float | None = None, *,
            host: Host | None = None) -> dict[str, Any]:
    """A JSON-able report; ``healthy`` is False when state and reality disagree.

    With ``wire_s`` the VRRP adverts on the instances' interfaces are listened to for that
    long: who advertises each VRID, split brain, foreign routers on our VRIDs. ``host``:
    the machine to look at (default: this one).
    """
    state_dir = StateDir(config.node.state_dir)
    kpid = keepalived.running(config.keepalived.pid_file)
    now = time.time()
    instances: list[dict[str, Any]] = []
    with opened(host) as machine:
        for inst in config.instances:
            record = state_dir.read_state(inst.name) or {}
            found, gone = levers.vips_present(machine, inst)
            held = [str(v) for v in found]
            missing = [str(v) for v in inst.vips if str(v) not in held]
            state = record.get("state")
            problems = [f"interface {device} does not exist" for device in gone]
            if state in ACTIVE_STATES and missing:
                problems.append(f"MASTER but missing {', '.join(missing)}")
            if state not in ACTIVE_STATES and held:
                problems.append(f"{state or 'no recorded state'} but holding {', '.join(held)}")
            if record and not record.get("complete", True):
                problems.append(f"last transition incomplete: {record.get('error')}")
            since = record.get("since")
            instances.append({
                "name": inst.name,
                "interface": inst.interface,
                "virtual_router_id": inst.virtual_router_id,
                "state": state,
                "since": since,
                "since_iso": _iso(since),
                "for_s": round(now - since, 1) if isinstance(since, (int, float)) else None,
                "last_transition_ms": record.get("last_transition_ms"),
                "vips_configured": [str(v) for v in inst.vips],
                # Only the VIPs that live elsewhere than the instance's interface.
                "vip_devices": {str(v): v.device for v in inst.vips if v.device},
                "vips_present": held,
                "problems": problems,
            })
    if wire_s:
        _add_wire(config, instances, wire_s)
    ipvs_problem = _ipvs_problem(config)
    problems_all = [p for i in instances for p in i["problems"]]
    if ipvs_problem:
        problems_all.append(ipvs_problem)
    realservers = None
    if config.ipvs is not None and config.ipvs.watched:
        realservers, stale = _realservers(config, state_dir, now)
        if stale:
            problems_all.append(stale)
    if kpid is None:
        problems_all.append(f"keepalived is not running (pid file {config.keepalived.pid_file})")
    return {"node": config.node.name, "config": config.path,
            "keepalived": {"running": kpid is not None, "pid": kpid,
                           "pid_file": config.keepalived.pid_file},
            "instances": instances, "realservers": realservers, "problems": problems_all,
            "healthy": not problems_all}


def _realservers(config: Config, state_dir: StateDir, now: float
                 ) -> tuple[list[dict[str, Any]], str | None]:
    """The watched services as the agent last published them, and whether that is stale
    (no agent, or a checker that stopped checking)."""
    assert config.ipvs is not None
    snapshot = state_dir.read_health()
    intervals = [c.interval_s for s in config.ipvs.services for rs in s.real_servers
                 if rs.health for c in rs.health.checks]
    bound = 2 * max(intervals, default=0) + REFRESH_S + STALE_SLACK_S
    if snapshot is None:
        return [], "no real-server health published: is `haguard agent` running?"
    services = [s for s in snapshot.get("services", []) if isinstance(s, dict)]
    for entry in services:
        for rs in entry.get("realservers", []):
            since = rs.get("since")
            rs["for_s"] = round(now - since, 1) if isinstance(since, (int, float)) else None
    checked = [c.get("at") for s in services for rs in s.get("realservers", [])
               for c in rs.get("checks", []) if isinstance(c.get("at"), (int, float))]
    newest = max(checked, default=snapshot.get("at") or 0)
    if intervals and now - newest > bound:
        return services, (f"the newest real-server check is {now - newest:.0f} s old "
                          f"(expected within {bound:g} s): is `haguard agent` running?")
    return services, None


def _add_wire(config: Config, instances: list[dict[str, Any]], seconds: float) -> None:
    from haguard.adapters.wire import listen
    from haguard.core.vrrp import analyse

    adverts = listen([i.interface for i in config.instances], seconds)
    for entry, report in zip(instances, analyse(config, adverts, seconds)):
        entry["wire"] = {
            "listened_s": round(seconds, 2),
            "speakers": [{"source": s.source, "mac": s.source_mac, "priority": s.priority,
                          "adverts": s.adverts, "this_node": s.ours, "foreign": s.foreign,
                          "foreign_reason": s.foreign_reason} for s in report.speakers],
            "split_brain": report.split_brain}
        entry["problems"] += list(report.problems)
        ours = any(s.ours and s.priority > 0 and s.adverts >= 2 for s in report.speakers)
        if entry["state"] in ACTIVE_STATES and not ours:
            entry["problems"].append("recorded MASTER but this node sends no VRRP adverts")
        if ours and entry["state"] not in ACTIVE_STATES:
            entry["problems"].append(f"this node advertises VRID {report.vrid} but the "
                                     f"recorded state is {entry['state'] or 'unknown'}")


def _ipvs_problem(config: Config) -> str | None:
    """IPVS rules out of sync with the config (only for a config with an ipvs section)."""
    if config.ipvs is None or not config.ipvs.services:
        return None
    from haguard.app import ipvsops
    from haguard.errors import HaguardError

    try:
        changes = ipvsops.diff(ipvsops.effective(config))
    except HaguardError as exc:
        return f"IPVS cannot be read: {exc}"
    if changes:
        return (f"IPVS rules differ from the config ({len(changes)} change(s); "
                f"`haguard ipvs diff -c {config.path}` shows them)")
    return None


def _iso(ts: Any) -> str | None:
    if not isinstance(ts, (int, float)):
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat(timespec="milliseconds")


def format_text(report: dict[str, Any]) -> str:
    k = report["keepalived"]
    lines = [f"node {report['node']}  ({report['config']})",
             f"keepalived: {'running, pid ' + str(k['pid']) if k['running'] else 'NOT running'}"]
    for i in report["instances"]:
        state = i["state"] or "unknown (no transition recorded)"
        since = f" since {i['since_iso']} ({i['for_s']} s)" if i["since_iso"] else ""
        last = f", last transition {i['last_transition_ms']} ms" if i["last_transition_ms"] is not None else ""
        lines.append(f"{i['name']} (VRID {i['virtual_router_id']} on {i['interface']}): {state}{since}{last}")
        devices = i.get("vip_devices", {})
        configured = [v + (f" on {devices[v]}" if v in devices else "")
                      for v in i["vips_configured"]]
        lines.append(f"  VIPs present: {', '.join(i['vips_present']) or 'none'}"
                     f"  (configured: {', '.join(configured)})")
        wire = i.get("wire")
        if wire is not None:
            heard = ", ".join(f"{s['source']} prio {s['priority']} x{s['adverts']}"
                              + (" (this node)" if s["this_node"] else "")
                              + (" FOREIGN" if s["foreign"] else "")
                              for s in wire["speakers"]) or "nobody"
            lines.append(f"  on the wire ({wire['listened_s']} s): {heard}")
        lines += [f"  PROBLEM: {p}" for p in i["problems"]]
    for svc in report.get("realservers") or []:
        quorum = {True: "quorum held", False: "QUORUM LOST", None: "quorum unknown"}[
            svc.get("quorum")]
        sorry = f", sorry server {svc['sorry_server']} ACTIVE" if svc.get(
            "sorry_server_active") else ""
        lines.append(f"{svc['service']}: {quorum}{sorry}")
        for rs in svc.get("realservers", []):
            state = rs["state"] if rs.get("checked") else "not checked"
            where = f"in kernel at weight {rs['weight']}" if rs.get("in_kernel") else \
                "out of the kernel"
            lever = f", {rs['lever']}" if rs.get("lever") else ""
            since = f" for {rs['for_s']} s" if rs.get("for_s") is not None else ""
            lines.append(f"  {rs['realserver']}: {state}{lever}{since}, {where}")
            for check in rs.get("checks", []):
                took = f" in {check['duration_ms']} ms" if check.get("duration_ms") is not None \
                    else ""
                fails = f", {rs['failures']} failed in a row" if rs.get("failures") else ""
                lines.append(f"    {check['kind']}: {check['detail']}{took}{fails}")
    if not report["keepalived"]["running"]:
        lines.append("PROBLEM: keepalived is not running")
    shown = {p for i in report["instances"] for p in i["problems"]}
    lines += [f"PROBLEM: {p}" for p in report["problems"]
              if p not in shown and not p.startswith("keepalived is not running")]
    lines.append("healthy" if report["healthy"] else "NOT healthy")
    return "\n".join(lines)
