"""Manual promotion: the levers haguard pulls in keepalived, as values. Pure.

Two track files per instance (see core.render.lever_files): writing 1 to the demote
file puts the instance in FAULT (keepalived hands over at once, priority 0); a number
in the priority file is added to the priority, which moves the MASTER only where
preemption is on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from haguard.core.config import Instance
from haguard.errors import BadInput, OperationFailed

MAX_PRIORITY = 254      # 255 is reserved for the address owner
_TTL = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class Refused(OperationFailed):
    """The lever would not do what was asked; the message says what to do instead."""


@dataclass(frozen=True)
class Lever:
    """One lever pulled on this node, as recorded (and audited)."""

    instance: str
    kind: str                 # demote | promote
    value: int                # what the track file holds
    set_at: float
    by: str
    reason: str
    expires_at: float | None = None


@dataclass(frozen=True)
class RsLever:
    """A real server taken out (disable) or to weight 0 (drain) by an operator."""

    service: str              # as haguard prints it: 'tcp 192.0.2.100:80'
    realserver: str           # '192.0.2.21:80', '[2001:db8::21]:80'
    kind: str                 # disabled | draining (core.health DISABLED, DRAINING)
    set_at: float
    by: str
    reason: str
    expires_at: float | None = None


def parse_ttl(text: str) -> float:
    """``30m``, ``90s``, ``1h30m`` or plain seconds -> seconds."""
    text = text.strip()
    if text.isdigit():
        seconds = float(text)
    else:
        match = _TTL.match(text)
        if not text or match is None or not any(match.groups()):
            raise BadInput(f"--ttl {text!r}: give a duration like 90s, 30m, 1h30m")
        h, m, s = (int(g) if g else 0 for g in match.groups())
        seconds = float(h * 3600 + m * 60 + s)
    if seconds <= 0:
        raise BadInput(f"--ttl {text!r}: must be longer than zero")
    return seconds


def promote_boost(inst: Instance, master_priority: int, master: str) -> int:
    """What the priority file must hold for ``inst`` to outrank the current MASTER."""
    if inst.nopreempt:
        raise Refused(
            f"{inst.name} has nopreempt: a higher priority never takes over from a running "
            f"MASTER, so promote would change nothing. Instead, on the MASTER ({master}) run: "
            f"haguard demote -c <its config> --instance {inst.name} --reason '...' "
            "(it hands over to this node)")
    needed = master_priority - inst.priority + 1
    if inst.priority + needed > MAX_PRIORITY:
        raise Refused(
            f"{inst.name}: the MASTER ({master}) advertises priority {master_priority}; this "
            f"node (priority {inst.priority}) cannot go above it within {MAX_PRIORITY}. "
            f"Demote the MASTER instead: haguard demote -c <its config> --instance {inst.name}")
    return max(needed, 1)


def due(levers: list[Lever], now: float) -> list[Lever]:
    """Levers whose time-to-live has run out."""
    return [lv for lv in levers if lv.expires_at is not None and lv.expires_at <= now]


def rs_due(levers: list[RsLever], now: float) -> list[RsLever]:
    """Real-server levers whose time-to-live has run out."""
    return [lv for lv in levers if lv.expires_at is not None and lv.expires_at <= now]
