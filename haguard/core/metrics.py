"""The Prometheus textfile (node_exporter's textfile collector format). Pure."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from haguard.core.events import STATES


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    return "{" + ",".join([f'{k}="{_esc(v)}"' for k, v in labels]) + "}"


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


@dataclass(frozen=True)
class Family:
    """One metric family: its samples as (labels, value in exposition text)."""

    name: str
    kind: str                 # gauge | counter
    help: str
    samples: tuple[tuple[tuple[tuple[str, str], ...], str], ...]


def render(node: str, records: Iterable[dict[str, Any]], drill: dict[str, Any] | None,
           health: dict[str, Any] | None = None) -> str:
    """The textfile: metrics from the recorded state of every instance, the last drill
    and the agent's real-server health."""
    return text(families(node, records, drill, health))


def text(found: Iterable[Family]) -> str:
    """Families in Prometheus' text exposition format."""
    lines: list[str] = []
    for f in found:
        lines += [f"# HELP {f.name} {f.help}", f"# TYPE {f.name} {f.kind}"]
        name = f.name
        lines += [f"{name}{_labels(labels)} {value}" for labels, value in f.samples]
    return "\n".join(lines) + "\n"


def families(node: str, records: Iterable[dict[str, Any]], drill: dict[str, Any] | None,
             health: dict[str, Any] | None = None) -> list[Family]:
    """Every family the textfile has (an instance family even without samples)."""
    records = [r for r in records if r.get("instance")]
    out = [Family("haguard_instance_state", "gauge",
                  "1 for the VRRP state haguard last applied to the instance, 0 for the others",
                  tuple(((("node", node), ("instance", r["instance"]), ("state", state)),
                         "1" if r.get("state") == state else "0")
                        for r in records for state in STATES))]
    for name, kind, help_text, value in _INSTANCE_FAMILIES:
        out.append(Family(name, kind, help_text, tuple(
            ((("node", node), ("instance", r["instance"])), sample)
            for r in records if (sample := value(r)) is not None)))
    outage = _seconds((drill or {}).get("outage_ms"))
    if drill and outage is not None:
        out.append(Family("haguard_last_drill_outage_seconds", "gauge",
                          "client-observed outage of the last `haguard failover-test`",
                          (((("node", node),), outage),)))
        out.append(Family("haguard_last_drill_timestamp_seconds", "gauge", "when that drill ran",
                          (((("node", node),), f"{float(drill.get('at', 0)):.3f}"),)))
    return out + _health(node, health)


def agent_families(node: str, loop_lag_s: float | None, events_applied: int,
                   last_fifo_line_at: float | None) -> list[Family]:
    """The agent's own health, served with the rest over HTTP: how late its event loop
    runs, the events it has applied, and when keepalived last wrote to it."""
    labels = (("node", node),)
    out = [Family("haguard_agent_events_applied_total", "counter",
                  "keepalived events the agent applied since it started",
                  ((labels, str(events_applied)),))]
    if loop_lag_s is not None:
        out.append(Family("haguard_agent_loop_lag_seconds", "gauge",
                          "how late the agent's event loop ran a timer, last second",
                          ((labels, f"{loop_lag_s:.6f}"),)))
    if last_fifo_line_at is not None:
        out.append(Family("haguard_agent_last_fifo_line_timestamp_seconds", "gauge",
                          "when keepalived last wrote a line to the agent's notify FIFO",
                          ((labels, f"{last_fifo_line_at:.3f}"),)))
    return out


def _health(node: str, health: dict[str, Any] | None) -> list[Family]:
    """Per real server: up, in the kernel and at what weight, transitions, the last
    check's duration and time (a checker that stopped shows as an old time)."""
    services = [s for s in (health or {}).get("services", []) if isinstance(s, dict)]
    if not services:
        return []
    samples: dict[str, list[tuple[tuple[tuple[str, str], ...], str]]] = {
        name: [] for name, _, _ in _RS_FAMILIES}
    for svc in services:
        svc_labels = (("node", node), ("service", str(svc.get("service"))))
        if svc.get("quorum") is not None:
            samples["haguard_service_quorum"].append((svc_labels, "1" if svc["quorum"] else "0"))
        for rs in svc.get("realservers", []):
            labels = (*svc_labels, ("realserver", str(rs.get("realserver"))))
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
                    samples[name].append((labels, value))
    return [Family(name, kind, help_text, tuple(samples[name]))
            for name, kind, help_text in _RS_FAMILIES if samples[name]]


_RS_FAMILIES = (
    ("haguard_service_quorum", "gauge", "1 while the service has quorum"),
    ("haguard_realserver_up", "gauge", "1 while every health check of the real server passes"),
    ("haguard_realserver_in_kernel", "gauge", "1 while the real server is in the IPVS table"),
    ("haguard_realserver_weight", "gauge", "its weight in the IPVS table"),
    ("haguard_realserver_transitions_total", "counter", "up/down changes since the agent started"),
    ("haguard_realserver_check_duration_seconds", "gauge", "how long its last check took"),
    ("haguard_realserver_last_check_timestamp_seconds", "gauge", "when it was last checked"),
)
