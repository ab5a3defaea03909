"""systemd: every ``systemctl`` and ``journalctl`` call haguard makes, and the unit texts
it ships (the agent, the real-server setup, keepalived's KillMode drop-in)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

from haguard.adapters.files import write_atomic
from haguard.core.config import Config
from haguard.errors import OperationFailed

AGENT_UNIT_NAME = "haguard-agent.service"
KEEPALIVED_DROPIN = "keepalived.service.d/haguard.conf"

# keepalived forks the STOP hook as it shuts down; the hook detaches (setsid) to outlive
# keepalived but stays in keepalived.service's cgroup. Debian's unit has the default
# KillMode=control-group, so when keepalived exits systemd kills the hook too and the
# stopped director keeps its VIPs. Upstream keepalived's own unit uses KillMode=process.
KEEPALIVED_DROPIN_TEXT = """\
# Written by `haguard hooks install`: let haguard's detached STOP hook finish when
# keepalived stops (with the default KillMode=control-group systemd kills it, and the
# stopped director keeps its VIPs).
[Service]
KillMode=process
"""

_AGENT_HEAD = """\
# {name}: written by `haguard agent -c {config} --unit`.
# Install: save as /etc/systemd/system/{name}, then
#   systemctl daemon-reload && systemctl enable --now {name}
"""
_PACKAGED_HEAD = """\
# {name}: shipped by the haguard package, for {config}.
# Once that file is this node's: systemctl enable --now {name}
"""
_AGENT = """\
[Unit]
Description=haguard agent: applies keepalived's VRRP transitions (VIPs, announcements, IPVS)
Documentation=man:haguard(8) man:keepalived.conf(5)
# Started before keepalived so the notify FIFO exists when keepalived opens it; keepalived
# keeps running (hooks as fallback) when the agent stops or fails.
Before=keepalived.service
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart={command} agent -c {config}
Restart=on-failure
RestartSec=1
# Only the agent: re-announcers it started belong to the MASTER, not to this process.
KillMode=process
# Logs: JSON to journald through /dev/log, key=value on stderr (also in the journal).
SyslogIdentifier=haguard-agent

[Install]
WantedBy=multi-user.target
WantedBy=keepalived.service
"""


REALSERVER_UNIT_NAME = "haguard-realserver.service"

_REALSERVER_HEAD = """\
# Installed by `haguard realserver up`: puts the VIPs back on every boot.
"""
_REALSERVER = """\
[Unit]
Description=haguard real server setup ({what})
Documentation=man:haguard(8)
After=network-pre.target
Wants=network-pre.target
Before=network.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={command} realserver -c {config} up --no-persist
ExecStop={command} realserver -c {config} down

[Install]
WantedBy=multi-user.target
"""


def running() -> bool:
    """systemd is the init system here (what sd_booted() checks)."""
    return os.path.isdir("/run/systemd/system")


def usable() -> bool:
    """systemd runs and systemctl is there to talk to it."""
    return running() and shutil.which("systemctl") is not None


def systemctl(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``systemctl ARGS``, its output captured; the caller judges the exit status."""
    return subprocess.run(["systemctl", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def checked(*args: str) -> None:
    """``systemctl ARGS``; OperationFailed with systemctl's own words when it fails."""
    proc = systemctl(*args)
    if proc.returncode != 0:
        raise OperationFailed(f"systemctl {' '.join(args)}: {proc.stderr.strip()}")


def unit_property(unit: str, name: str) -> str | None:
    """A property of ``unit`` as systemd has it loaded; None without systemd."""
    if not usable():
        return None
    proc = systemctl("show", unit, "-p", name, "--value", timeout=30)
    value = proc.stdout.strip()
    return value if proc.returncode == 0 and value else None


def is_active(unit: str) -> str:
    """``systemctl is-active UNIT``: active, inactive, failed, ... ('' when unknown)."""
    return systemctl("is-active", unit).stdout.strip()


def journal_json(identifier: str, since: float) -> list[dict[str, Any]]:
    """The JSON objects logged under syslog ``identifier`` since ``since`` (wall clock)."""
    if shutil.which("journalctl") is None:
        return []
    proc = subprocess.run(["journalctl", "--no-pager", "-q", "-o", "cat", "-t", identifier,
                           "--since", f"@{int(since) - 1}"], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    events = []
    for line in proc.stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def install_keepalived_dropin(unit_dir: str, reload: bool) -> list[str]:
    """Write keepalived's KillMode=process drop-in under ``unit_dir``; daemon-reload if asked."""
    path = os.path.join(unit_dir, KEEPALIVED_DROPIN)
    try:
        with open(path, encoding="utf-8") as fh:
            if fh.read() == KEEPALIVED_DROPIN_TEXT:
                return [f"{path} is in place (KillMode=process for keepalived)"]
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise OperationFailed(f"reading {path}: {exc}") from exc
    try:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        write_atomic(path, KEEPALIVED_DROPIN_TEXT)
    except OSError as exc:
        raise OperationFailed(f"writing {path} failed: {exc}") from exc
    lines = [f"wrote {path} (KillMode=process: keepalived's stop no longer kills the "
             "detached STOP hook)"]
    if reload:
        checked("daemon-reload")
        lines.append("systemctl daemon-reload done; it applies from keepalived's next start")
    return lines


def realserver_unit(unit_dir: str) -> str | None:
    """The real-server unit's path when it is installed in ``unit_dir``, else None."""
    path = os.path.join(unit_dir, REALSERVER_UNIT_NAME)
    return path if os.path.exists(path) else None


def install_realserver_unit(config: Config, mode: str, vips: str, unit_dir: str) -> list[str]:
    """Write the unit that redoes `realserver up` at boot; enable it where systemd runs."""
    path = os.path.join(unit_dir, REALSERVER_UNIT_NAME)
    os.makedirs(unit_dir, exist_ok=True)
    write_atomic(path, _REALSERVER_HEAD + _REALSERVER.format(
        what=f"{mode.upper()}: {vips}", command=f"{sys.executable} -m haguard",
        config=config.path))
    lines = [f"wrote {path}"]
    if usable():
        checked("daemon-reload")
        checked("enable", REALSERVER_UNIT_NAME)
        lines.append(f"enabled {REALSERVER_UNIT_NAME}")
    else:
        lines.append("systemd is not running here: the unit is written but not enabled "
                     f"(run `systemctl enable {REALSERVER_UNIT_NAME}` on the real host)")
    return lines


def agent_unit(config: Config, python: str | None = None) -> str:
    """haguard-agent.service for ``config``, running this Python's haguard."""
    return (_AGENT_HEAD + _AGENT).format(name=AGENT_UNIT_NAME, config=config.path,
                                         command=f"{python or sys.executable} -m haguard")


# The Debian package's own copies, for /etc/haguard/haguard.yaml and /usr/bin/haguard.
PACKAGED_CONFIG = "/etc/haguard/haguard.yaml"


def packaged_units() -> dict[str, str]:
    """The units and drop-in the package ships, by their path under /lib/systemd/system."""
    agent = (_PACKAGED_HEAD + _AGENT).format(name=AGENT_UNIT_NAME, config=PACKAGED_CONFIG,
                                             command="/usr/bin/haguard")
    realserver = (_PACKAGED_HEAD + _REALSERVER).format(
        name=REALSERVER_UNIT_NAME, what=f"the VIPs of {PACKAGED_CONFIG}",
        command="/usr/bin/haguard", config=PACKAGED_CONFIG)
    return {AGENT_UNIT_NAME: agent, REALSERVER_UNIT_NAME: realserver,
            KEEPALIVED_DROPIN: KEEPALIVED_DROPIN_TEXT.replace(
                "# Written by `haguard hooks install`", "# Shipped by the haguard package")}
