"""keepalived's notify FIFO lines and the hooks' journal, as events; which to apply. Pure.

keepalived writes ``INSTANCE "VI_1" MASTER 100`` (or ``GROUP ...``) per event, in the
order things happened. Besides the four states it reports MASTER_RX_LOWER_PRI (a MASTER
heard a lower priority: re-assert) and, in newer versions, MASTER_PRIORITY /
BACKUP_PRIORITY (a priority changed, the state did not).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from haguard.core.events import STATES, TYPES, Event, OrderKey

REASSERT = "MASTER_RX_LOWER_PRI"
INFORMATIONAL = ("MASTER_PRIORITY", "BACKUP_PRIORITY")


@dataclass(frozen=True)
class FifoLine:
    """One parsed line: an event, a re-assertion, or something to log and skip."""

    event: Event | None
    reassert: bool = False
    skipped: str | None = None    # why the line was not an event


def parse_line(line: str) -> FifoLine:
    """One FIFO line (without its newline)."""
    try:
        words = shlex.split(line)
    except ValueError:
        return FifoLine(None, skipped=f"unparseable line {line!r}")
    if len(words) not in (3, 4) or words[0] not in TYPES:
        return FifoLine(None, skipped=f"not a VRRP event: {line!r}")
    kind, name, state = words[0], words[1], words[2]
    priority = None
    if len(words) == 4:
        try:
            priority = int(words[3])
        except ValueError:
            return FifoLine(None, skipped=f"priority is not a number: {line!r}")
    if state == REASSERT:
        return FifoLine(Event(kind, name, "MASTER", priority), reassert=True)
    if state in INFORMATIONAL:
        return FifoLine(None, skipped=f"{state} (priority {priority}) changes no state")
    if state not in STATES:
        return FifoLine(None, skipped=f"unknown state {state!r} in {line!r}")
    return FifoLine(Event(kind, name, state, priority))


@dataclass(frozen=True)
class Pending:
    """An event waiting to be applied and whether it only re-asserts a MASTER."""

    event: Event
    reassert: bool = False


def latest_per_instance(items: Iterable[Pending]) -> list[Pending]:
    """The last event of each instance, in the order of those last events.

    Everything before an instance's last event is already overtaken: applying it would
    only flap the VIPs. A re-assertion after a MASTER event of the same instance keeps
    the MASTER (announcing again is part of becoming MASTER).
    """
    last: dict[tuple[str, str], tuple[int, Pending]] = {}
    for position, item in enumerate(items):
        key = (item.event.kind, item.event.name)
        earlier = last.get(key)
        if item.reassert and earlier is not None and not earlier[1].reassert \
                and earlier[1].event.state == "MASTER":
            item = earlier[1]
        last[key] = (position, item)
    return [item for _, item in sorted(last.values(), key=lambda pair: pair[0])]


def parse_journal_name(name: str) -> OrderKey | None:
    """``TICKS.PID``: the hook that journaled the entry (None for anything else)."""
    ticks, dot, pid = name.partition(".")
    if not dot or not ticks.isdigit() or not pid.isdigit():
        return None
    return OrderKey(int(ticks), int(pid))


def parse_journal_entry(text: str) -> Event | None:
    """The words a hook journaled: ``TYPE NAME STATE [PRIORITY]``."""
    parsed = parse_line(text.strip())
    return parsed.event if not parsed.reassert else None
