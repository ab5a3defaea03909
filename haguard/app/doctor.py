"""`haguard doctor`: observe this host (haguard.adapters.observations), judge it with the
rules in haguard.core.doctorrules, and report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from haguard.adapters.observations import NETWORKD_DIRS, observe
from haguard.core import doctorrules as rules
from haguard.core.config import Config
from haguard.core.doctorrules import Finding, Observations

__all__ = ["NETWORKD_DIRS", "format_text", "report", "run"]


def _wire_seen(obs: Observations) -> dict[str, Any]:
    """What the probes and the listener saw, so a clean report shows its evidence."""
    adverts: dict[tuple[str, int, str, str], dict[str, Any]] = {}
    for ad in obs.adverts or ():
        key = (ad.interface, ad.vrid, ad.source, ad.source_mac)
        entry = adverts.setdefault(key, {"interface": ad.interface, "vrid": ad.vrid,
                                         "source": ad.source, "source_mac": ad.source_mac,
                                         "priority": ad.priority, "outgoing": ad.outgoing,
                                         "count": 0})
        entry["count"] += 1
    return {"probes": [{"vip": p.vip, "interface": p.interface, "replies": list(p.replies)}
                       for p in obs.probes if p.skipped is None],
            "adverts": list(adverts.values()) if obs.adverts is not None else None}


def report(config: Config, findings: Sequence[Finding],
           obs: Observations | None = None) -> dict[str, Any]:
    worst: dict[str, str] = {}
    for f in findings:
        if f.check not in worst or rules.SEVERITIES.index(f.severity) < \
                rules.SEVERITIES.index(worst[f.check]):
            worst[f.check] = f.severity
    applicable = _applicable(config, obs)
    return {
        "node": config.node.name,
        "config": config.path,
        "findings": [f.as_dict() for f in findings],
        "summary": rules.summary(findings),
        "checks": [{"check": name, "about": about, "result": worst.get(name, "ok")}
                   for name, about in rules.CHECKS if name in applicable or name in worst],
        "exit_code": rules.exit_code(findings),
        "wire": _wire_seen(obs) if obs is not None else None,
    }


def _applicable(config: Config, obs: Observations | None) -> set[str]:
    out = set()
    if config.instances and obs is not None and obs.killmode is not None:
        out.add("keepalived-killmode")  # only where systemd runs keepalived
    if config.instances:
        out |= {"keepalived-test", "keepalived-conf", "script-security", "nopreempt-weight",
                "networkd", "sysctl", "duplicate-address", "vrid-collision"}
    if config.ipvs is not None:
        out.add("ip_vs")
    if config.realserver is not None:
        out |= {"realserver", "sysctl"}
    return out


def run(config: Config, networkd_dirs: Sequence[str] = NETWORKD_DIRS,
        wire_seconds: float | None = None, skip_wire: bool = False) -> dict[str, Any]:
    obs = observe(config, networkd_dirs, wire_seconds, skip_wire)
    return report(config, rules.diagnose(config, obs), obs)


_LABEL = {"error": "ERROR", "warning": "WARNING", "info": "note"}


def format_text(data: dict[str, Any]) -> str:
    lines = [f"haguard doctor: node {data['node']} ({data['config']})"]
    for f in data["findings"]:
        lines.append(f"{_LABEL[f['severity']]:<8}{f['check']}: {f['what']}")
        lines.append(f"        why: {f['why']}")
        lines.append(f"        fix: {f['fix']}")
    for c in data["checks"]:
        if c["result"] == "ok":
            lines.append(f"{'ok':<8}{c['check']}: {c['about']}")
    s = data["summary"]
    verdict = {0: "clean", 1: "errors found", 3: "warnings found"}.get(data["exit_code"], "")
    lines.append(f"{s['error']} error(s), {s['warning']} warning(s), {s['info']} note(s): "
                 f"{verdict} (exit {data['exit_code']})")
    return "\n".join(lines)
