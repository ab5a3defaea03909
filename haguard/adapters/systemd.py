"""systemd units haguard ships, as text for one node's config."""

from __future__ import annotations

import sys

from haguard.core.config import Config

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

_AGENT = """\
# {name}: written by `haguard agent -c {config} --unit`.
# Install: save as /etc/systemd/system/{name}, then
#   systemctl daemon-reload && systemctl enable --now {name}
[Unit]
Description=haguard agent: applies keepalived's VRRP transitions (VIPs, announcements, IPVS)
Documentation=man:keepalived.conf(5)
# Started before keepalived so the notify FIFO exists when keepalived opens it; keepalived
# keeps running (hooks as fallback) when the agent stops or fails.
Before=keepalived.service
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart={python} -m haguard agent -c {config}
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


def agent_unit(config: Config, python: str | None = None) -> str:
    """haguard-agent.service for ``config``, running this Python's haguard."""
    return _AGENT.format(name=AGENT_UNIT_NAME, config=config.path, python=python or sys.executable)
