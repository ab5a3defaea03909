"""keepalived's VRRP vocabulary beyond the election: trackers, scripts, sync groups,
unicast source, preemption delay, and the operator's own notify commands.

These are rendered into keepalived.conf (keepalived does the tracking) except the notify
commands, which haguard runs itself after its own work for the state. Pure validation,
collected like the rest of the config.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from haguard.core.checker import Checker, argv, field, show
from haguard.core.yamlsrc import Path

if TYPE_CHECKING:
    from haguard.core.config import Instance
    from haguard.core.events import Event

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_USER_RE = re.compile(r"^[a-z_][a-z0-9_.-]*\$?$")
TRACK_WEIGHT = 253          # keepalived: -253..253 for track_script / track_interface
MAX_PREEMPT_DELAY_S = 1000  # keepalived's limit
NOTIFY_STATES = ("master", "backup", "fault", "stop")
# What haguard fills in an operator's notify command (keepalived's generic notify script
# gets the same words appended).
NOTIFY_PLACEHOLDERS = ("instance", "state", "priority")
_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")
DEFAULT_NOTIFY_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class VrrpScript:
    """A ``vrrp_script``: keepalived runs it every interval; instances track it."""

    name: str
    command: tuple[str, ...]
    interval_s: float = 1.0
    timeout_s: float | None = None   # keepalived's default: the interval
    rise: int = 1
    fall: int = 1
    weight: int = 0                  # 0: a failure is FAULT; else added to the priority
    user: str | None = None          # keepalived's script_user (haguard renders root)


@dataclass(frozen=True)
class Tracked:
    """One tracked script, interface or process; weight None: the tracked thing's own."""

    name: str
    weight: int | None = None


@dataclass(frozen=True)
class Track:
    scripts: tuple[Tracked, ...] = ()
    interfaces: tuple[Tracked, ...] = ()
    processes: tuple[Tracked, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.scripts or self.interfaces or self.processes)


@dataclass(frozen=True)
class NotifyCommands:
    """The operator's commands per state, run in order after haguard's own work."""

    master: tuple[tuple[str, ...], ...] = ()
    backup: tuple[tuple[str, ...], ...] = ()
    fault: tuple[tuple[str, ...], ...] = ()
    stop: tuple[tuple[str, ...], ...] = ()
    timeout_s: float = DEFAULT_NOTIFY_TIMEOUT_S

    def for_state(self, state: str) -> tuple[tuple[str, ...], ...]:
        return {"MASTER": self.master, "BACKUP": self.backup, "FAULT": self.fault,
                "STOP": self.stop}.get(state, ())

    def __bool__(self) -> bool:
        return bool(self.master or self.backup or self.fault or self.stop)


@dataclass(frozen=True)
class SyncGroup:
    """A ``vrrp_sync_group``: its instances change state together."""

    name: str
    instances: tuple[str, ...]


def _argv_list(c: Checker, raw: Any, path: Path) -> tuple[tuple[str, ...], ...] | None:
    """A list of commands (each an argument list) for haguard to run itself."""
    out: list[tuple[str, ...]] = []
    for i, item in enumerate(c.listing(raw, path)):
        one = argv(c, item, path + (i,), placeholders=NOTIFY_PLACEHOLDERS)
        if one is None:
            return None
        out.append(one)
    return tuple(out)


_SCRIPT_KEYS = ("name", "command", "interval_s", "timeout_s", "rise", "fall", "weight", "user")


def parse_scripts(c: Checker, raw: Any) -> tuple[VrrpScript, ...]:
    """The top-level ``scripts`` list (keepalived's vrrp_script blocks)."""
    out: list[VrrpScript] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(c.listing(raw, ("scripts",))):
        path: Path = ("scripts", i)
        data = c.mapping(item, path, _SCRIPT_KEYS, required=("name", "command"))
        if not data:
            continue
        name = field(c, data, "name", path, lambda v, p: c.string(
            v, p, NAME_RE, "a valid script name (letters, digits, _ . -)"))
        program = field(c, data, "command", path,
                        lambda v, p: argv(c, v, p, script_line=True, elsewhere="a vrrp_script "
                                          "runs as written"))
        interval = field(c, data, "interval_s", path, lambda v, p: c.number(v, p, 0.1, 3600),
                         1.0)
        timeout = field(c, data, "timeout_s", path, lambda v, p: c.number(v, p, 0.01, 3600),
                        None) if "timeout_s" in data else None
        rise = field(c, data, "rise", path, lambda v, p: c.integer(v, p, 1, 100), 1)
        fall = field(c, data, "fall", path, lambda v, p: c.integer(v, p, 1, 100), 1)
        weight = field(c, data, "weight", path,
                       lambda v, p: c.integer(v, p, -TRACK_WEIGHT, TRACK_WEIGHT), 0)
        user = field(c, data, "user", path, lambda v, p: c.string(v, p, _USER_RE, "a user name"),
                     None) if "user" in data else None
        if name is not None and name in seen:
            c.fail(path + ("name",), f"'{name}' is already the name of scripts[{seen[name]}]")
            continue
        if None in (name, program, interval, rise, fall, weight) or \
                ("timeout_s" in data and timeout is None) or ("user" in data and user is None):
            continue
        assert name is not None and program is not None and interval is not None
        seen[name] = i
        out.append(VrrpScript(name=name, command=program, interval_s=interval, timeout_s=timeout,
                              rise=rise, fall=fall, weight=weight, user=user))
    return tuple(out)


def parse_track(c: Checker, raw: Any, path: Path, scripts: tuple[VrrpScript, ...]) -> Track:
    """An instance's ``track``: scripts (by name), interfaces, processes (by name)."""
    data = c.mapping(raw, path, ("scripts", "interfaces", "processes"))
    known = {s.name for s in scripts}
    parts: dict[str, list[Tracked]] = {"scripts": [], "interfaces": [], "processes": []}
    for part in parts:
        if part not in data:
            continue
        seen: set[str] = set()
        for i, item in enumerate(c.listing(data[part], path + (part,))):
            ipath = path + (part, i)
            entry = c.mapping(item, ipath, ("name", "weight"), required=("name",))
            if not entry:
                continue
            name = field(c, entry, "name", ipath, c.ifname if part == "interfaces" else
                         (lambda v, p: c.string(v, p, NAME_RE, "a valid name")))
            weight = field(c, entry, "weight", ipath,
                           lambda v, p: c.integer(v, p, -TRACK_WEIGHT, TRACK_WEIGHT), None) \
                if "weight" in entry else None
            if name is None or ("weight" in entry and weight is None):
                continue
            if part == "scripts" and name not in known:
                c.fail(ipath + ("name",), f"'{name}' is not in scripts (known: "
                                          f"{', '.join(sorted(known)) or 'none'})")
                continue
            if name in seen:
                c.fail(ipath + ("name",), f"'{name}' is tracked twice")
                continue
            seen.add(name)
            parts[part].append(Tracked(name, weight))
    return Track(scripts=tuple(parts["scripts"]), interfaces=tuple(parts["interfaces"]),
                 processes=tuple(parts["processes"]))


def parse_notify(c: Checker, raw: Any, path: Path) -> NotifyCommands:
    data = c.mapping(raw, path, (*NOTIFY_STATES, "timeout_s"))
    lists: dict[str, tuple[tuple[str, ...], ...]] = {}
    for state in NOTIFY_STATES:
        if state in data:
            lists[state] = _argv_list(c, data[state], path + (state,)) or ()
    timeout = field(c, data, "timeout_s", path, lambda v, p: c.number(v, p, 0.1, 600),
                    DEFAULT_NOTIFY_TIMEOUT_S)
    return NotifyCommands(**lists, timeout_s=timeout or DEFAULT_NOTIFY_TIMEOUT_S)


def parse_unicast_src(c: Checker, raw: Any, path: Path) -> ipaddress.IPv4Address | \
        ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(raw) if isinstance(raw, str) else None
    except ValueError:
        address = None
    if address is None:
        c.fail(path, f"{show(raw)} is not an IP address")
    elif address.is_multicast or address.is_unspecified:
        c.fail(path, f"{raw} cannot be a source address (multicast or unspecified)")
        return None
    return address


def parse_preempt_delay(c: Checker, raw: Any, path: Path) -> float | None:
    return c.number(raw, path, 0, MAX_PREEMPT_DELAY_S)


def parse_sync_groups(c: Checker, raw: Any, instance_names: list[str]) -> tuple[SyncGroup, ...]:
    """The top-level ``sync_groups``: names, their instances (known, in one group each)."""
    out: list[SyncGroup] = []
    member_of: dict[str, str] = {}
    names: set[str] = set()
    for i, item in enumerate(c.listing(raw, ("sync_groups",))):
        path: Path = ("sync_groups", i)
        data = c.mapping(item, path, ("name", "instances"), required=("name", "instances"))
        if not data:
            continue
        name = field(c, data, "name", path, lambda v, p: c.string(
            v, p, NAME_RE, "a valid group name (letters, digits, _ . -)"))
        members: list[str] = []
        ipath = path + ("instances",)
        listed = c.listing(data.get("instances"), ipath) if "instances" in data else []
        for j, member in enumerate(listed):
            if member not in instance_names:
                c.fail(ipath + (j,), f"{show(member)} is not an instance of this config "
                                     f"(it has: {', '.join(instance_names)})")
            elif member in member_of:
                c.fail(ipath + (j,), f"'{member}' is already in sync group "
                                     f"'{member_of[member]}' (an instance syncs with one group)")
            elif member in members:
                c.fail(ipath + (j,), f"'{member}' is listed twice")
            else:
                members.append(member)
        if isinstance(data.get("instances"), list) and len(listed) < 2:
            c.fail(ipath, "a sync group needs at least two instances (one alone syncs with "
                          "nothing)")
            continue
        if name is None or len(members) != len(listed):
            continue
        if name in names:
            c.fail(path + ("name",), f"'{name}' is already a sync group")
            continue
        names.add(name)
        for member in members:
            member_of[member] = name
        out.append(SyncGroup(name=name, instances=tuple(members)))
    return tuple(out)


def fill_placeholders(argv: tuple[str, ...], inst: Instance, event: Event) -> tuple[str, ...]:
    """``{instance}``, ``{state}`` and ``{priority}`` (the event's, else the configured
    one) filled in a notify command."""
    values = {"instance": inst.name, "state": event.state,
              "priority": str(event.priority if event.priority is not None else inst.priority)}
    return tuple(_PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], arg) for arg in argv)


def vrrp_commands(scripts: tuple[VrrpScript, ...], instances: tuple[Instance, ...]
                  ) -> list[tuple[str, str]]:
    """Every program keepalived (vrrp_script) or haguard (notify) runs as root for the
    VRRP side, each with where it is configured: script security judges them."""
    out = [(f"scripts {s.name}", s.command[0]) for s in scripts]
    for inst in instances:
        for state in NOTIFY_STATES:
            for cmd in inst.notify.for_state(state.upper()):
                out.append((f"instances {inst.name} notify.{state}", cmd[0]))
    return list(dict.fromkeys(out))
