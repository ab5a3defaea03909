"""What keepalived tells us: ``TYPE NAME STATE [PRIORITY]``, parsed and judged."""

from __future__ import annotations

from dataclasses import dataclass

from haguard.errors import BadInput, UnknownState

# keepalived's states; DELETED is sent when a reload removes an instance.
ACTIVE_STATES = ("MASTER",)
PASSIVE_STATES = ("BACKUP", "FAULT", "STOP", "DELETED")
STATES = ACTIVE_STATES + PASSIVE_STATES
TYPES = ("INSTANCE", "GROUP")
# A MASTER that hears a lower priority (a split brain healing; keepalived runs
# notify_master_rx_lower_pri) re-asserts MASTER: its VIPs are announced again.
REASSERTS = {"MASTER_RX_LOWER_PRI": "MASTER"}


@dataclass(frozen=True)
class Event:
    """One VRRP state report for one instance (or sync group)."""

    kind: str
    name: str
    state: str
    priority: int | None = None


@dataclass(frozen=True, order=True)
class OrderKey:
    """When keepalived forked the process that carries an event.

    keepalived forks notify scripts one after another, so process start time (clock
    ticks since boot) and then pid order them even when they reach us out of order.
    """

    start_ticks: int
    pid: int

    def as_list(self) -> list[int]:
        return [self.start_ticks, self.pid]

    @classmethod
    def from_list(cls, value: object) -> OrderKey | None:
        if (isinstance(value, list) and len(value) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
            return cls(value[0], value[1])
        return None


def parse_event(kind: str, name: str, state: str, priority: str | None = None) -> Event:
    """Validate the words keepalived passed; raise BadInput / UnknownState."""
    kind_u = kind.upper()
    if kind_u not in TYPES:
        raise BadInput(f"notify: type {kind!r} is not one of {', '.join(TYPES)}")
    state_u = REASSERTS.get(state.upper(), state.upper())
    if state_u not in STATES:
        raise UnknownState(f"notify: state {state!r} is not one of "
                           f"{', '.join((*STATES, *REASSERTS))}")
    prio: int | None = None
    if priority is not None:
        try:
            prio = int(priority)
        except ValueError:
            raise BadInput(f"notify: priority {priority!r} is not a number") from None
        if not 0 <= prio <= 255:
            raise BadInput(f"notify: priority {prio} is out of range (0-255)")
    return Event(kind=kind_u, name=name, state=state_u, priority=prio)


def is_superseded(mine: OrderKey, newest_seen: OrderKey | None,
                  last_applied: OrderKey | None) -> bool:
    """An event is dropped when a later-forked event exists or was already applied."""
    return any(other is not None and other > mine for other in (newest_seen, last_applied))
