"""`haguard status`: recorded state against what the node really holds."""

from __future__ import annotations

import datetime
import time
from typing import Any

from haguard.adapters import keepalived
from haguard.adapters.netlink import Netlink
from haguard.adapters.statefile import StateDir
from haguard.core.config import Config
from haguard.core.events import ACTIVE_STATES


def collect(config: Config) -> dict[str, Any]:
    """A JSON-able report; ``healthy`` is False when state and reality disagree."""
    state_dir = StateDir(config.node.state_dir)
    kpid = keepalived.running(config.keepalived.pid_file)
    now = time.time()
    instances = []
    with Netlink() as netlink:
        for inst in config.instances:
            record = state_dir.read_state(inst.name) or {}
            link = netlink.link(inst.interface)
            present = {(a.address, a.prefixlen) for a in netlink.addresses(link)} if link else set()
            held = [str(v) for v in inst.vips if (v.address, v.prefixlen) in present]
            missing = [str(v) for v in inst.vips if str(v) not in held]
            state = record.get("state")
            problems = []
            if link is None:
                problems.append(f"interface {inst.interface} does not exist")
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
                "vips_present": held,
                "problems": problems,
            })
    problems_all = [p for i in instances for p in i["problems"]]
    if kpid is None:
        problems_all.append(f"keepalived is not running (pid file {config.keepalived.pid_file})")
    return {"node": config.node.name, "config": config.path,
            "keepalived": {"running": kpid is not None, "pid": kpid,
                           "pid_file": config.keepalived.pid_file},
            "instances": instances, "problems": problems_all, "healthy": not problems_all}


def _iso(ts: Any) -> str | None:
    if not isinstance(ts, (int, float)):
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(timespec="milliseconds")


def format_text(report: dict[str, Any]) -> str:
    k = report["keepalived"]
    lines = [f"node {report['node']}  ({report['config']})",
             f"keepalived: {'running, pid ' + str(k['pid']) if k['running'] else 'NOT running'}"]
    for i in report["instances"]:
        state = i["state"] or "unknown (no transition recorded)"
        since = f" since {i['since_iso']} ({i['for_s']} s)" if i["since_iso"] else ""
        last = f", last transition {i['last_transition_ms']} ms" if i["last_transition_ms"] is not None else ""
        lines.append(f"{i['name']} (VRID {i['virtual_router_id']} on {i['interface']}): {state}{since}{last}")
        lines.append(f"  VIPs present: {', '.join(i['vips_present']) or 'none'}"
                     f"  (configured: {', '.join(i['vips_configured'])})")
        lines += [f"  PROBLEM: {p}" for p in i["problems"]]
    if not report["keepalived"]["running"]:
        lines.append("PROBLEM: keepalived is not running")
    lines.append("healthy" if report["healthy"] else "NOT healthy")
    return "\n".join(lines)
