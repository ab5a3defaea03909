"""The Prometheus textfile (node_exporter's textfile collector format). Pure."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from haguard.core.events import STATES


def _labels(**labels: str) -> str:
    def esc(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in labels.items()) + "}"


def _seconds(ms: Any) -> str | None:
    return f"{ms / 1000:.6f}" if isinstance(ms, (int, float)) else None


# Per-instance families: name, type, help, value from the instance's record (None: no
# sample). The state family has one sample per state and is written on its own.
_INSTANCE_FAMILIES: tuple[tuple[str, str, str, Callable[[dict[str, Any]], str | None]], ...] = (
    ("haguard_transition_complete", "gauge", "1 when the last transition finished every step",
     lambda r: "1" if r.get("complete") else "0"),
    ("haguard_transitions_total", "counter", "transitions applied",
     lambda r: str(int(r.get("transitions", 0)))),
    ("haguard_last_transition_duration_seconds", "gauge",
     "from keepalived's event to the state recorded, last transition",
     lambda r: _seconds(r.get("last_transition_ms"))),
    ("haguard_announcements_total", "counter",
     "announcement bursts (gratuitous ARP / unsolicited NA) started as MASTER",
     lambda r: str(int(r.get("announcements", 0)))),
)


def render(node: str, records: Iterable[dict[str, Any]], drill: dict[str, Any] | None,
           health: dict[str, Any] | None = None) -> str:
    """Metrics from the recorded state of every instance, the last drill and the agent's
    real-server health."""
    records = [r for r in records if r.get("instance")]
    lines: list[str] = []

    def family(name: str, kind: str, text: str) -> None:
        lines.append(f"# HELP {name} {text}")
        lines.append(f"# TYPE {name} {kind}")

    family("haguard_instance_state", "gauge",
           "1 for the VRRP state haguard last applied to the instance, 0 for the others")
    for r in records:
        for state in STATES:
            lines.append(f"haguard_instance_state{_labels(node=node, instance=r['instance'], state=state)} "
                         f"{1 if r.get('state') == state else 0}")
    for name, kind, text, value in _INSTANCE_FAMILIES:
        family(name, kind, text)
        for r in records:
            sample = value(r)
            if sample is not None:
                lines.append(f"{name}{_labels(node=node, instance=r['instance'])} {sample}")
    outage = _seconds((drill or {}).get("outage_ms"))
    if drill and outage is not None:
        family("haguard_last_drill_outage_seconds", "gauge",
               "client-observed outage of the last `haguard failover-test`")
        lines.append(f"haguard_last_drill_outage_seconds{_labels(node=node)} {outage}")
        family("haguard_last_drill_timestamp_seconds", "gauge", "when that drill ran")
        lines.append(f"haguard_last_drill_timestamp_seconds{_labels(node=node)} "
                     f"{float(drill.get('at', 0)):.3f}")
    lines += _health(node, health)
    return "\n".join(lines) + "\n"


def _health(node: str, health: dict[str, Any] | None) -> list[str]:
    """Per real server: up, in the kernel and at what weight, transitions, the last
    check's duration and time (a checker that stopped shows as an old time)."""
    services = [s for s in (health or {}).get("services", []) if isinstance(s, dict)]
    if not services:
        return []
    samples: dict[str, list[str]] = {name: [] for name, _, _ in _RS_FAMILIES}
    for svc in services:
        svc_labels = {"node": node, "service": str(svc.get("service"))}
        if svc.get("quorum") is not None:
            samples["haguard_service_quorum"].append(
                f"haguard_service_quorum{_labels(**svc_labels)} {1 if svc['quorum'] else 0}")
        for rs in svc.get("realservers", []):
            labels = _labels(**svc_labels, realserver=str(rs.get("realserver")))
            checks = [c for c in rs.get("checks", []) if isinstance(c.get("at"), (int, float))]
            values = {
                "haguard_realserver_up": "1" if rs.get("state") == "up" else "0",
                "haguard_realserver_in_kernel": "1" if rs.get("in_kernel") else "0",
                "haguard_realserver_weight": str(rs["weight"])
                if isinstance(rs.get("weight"), int) else None,
                "haguard_realserver_transitions_total": str(int(rs.get("transitions", 0))),
                "haguard_realserver_check_duration_seconds": _seconds(
                    max(checks, key=lambda c: c["at"])["duration_ms"]) if checks else None,
                "haguard_realserver_last_check_timestamp_seconds":
                    f"{max(c['at'] for c in checks):.3f}" if checks else None}
            for name, value in values.items():
                if value is not None:
                    samples[name].append(f"{name}{labels} {value}")
    out: list[str] = []
    for name, kind, text in _RS_FAMILIES:
        if samples[name]:
            out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", *samples[name]]
    return out


_RS_FAMILIES = (
    ("haguard_service_quorum", "gauge", "1 while the service has quorum"),
    ("haguard_realserver_up", "gauge", "1 while every health check of the real server passes"),
    ("haguard_realserver_in_kernel", "gauge", "1 while the real server is in the IPVS table"),
    ("haguard_realserver_weight", "gauge", "its weight in the IPVS table"),
    ("haguard_realserver_transitions_total", "counter", "up/down changes since the agent started"),
    ("haguard_realserver_check_duration_seconds", "gauge", "how long its last check took"),
    ("haguard_realserver_last_check_timestamp_seconds", "gauge", "when it was last checked"),
)
