"""The levers' audit trail: one line in lever_dir/audit.log and one event in syslog."""

from __future__ import annotations

import time
from typing import Any

from haguard.adapters import leverfiles
from haguard.adapters.log import get_logger
from haguard.adapters.process import invoking_user
from haguard.core.config import Config


def audit(config: Config, action: str, **fields: Any) -> None:
    """One line in lever_dir/audit.log and one event in syslog/journald."""
    entry = {"ts": round(time.time(), 3), "node": config.node.name, "by": invoking_user(),
             "action": action, **fields}
    leverfiles.append_audit(config.node.lever_dir, entry)
    get_logger(config.node.log_file, quiet=True, node=config.node.name).info(
        f"lever_{action}", **{k: v for k, v in entry.items() if k not in ("node", "ts")})
