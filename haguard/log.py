"""Structured logging: one event per action, to stderr, syslog/journald and a file.

keepalived runs hooks with stdio on /dev/null, so syslog (or ``node.log_file``) is
where their story is told. Each event is one JSON object there and ``key=value`` text
on stderr.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

_SYSLOG_SOCKET = "/dev/log"


class _FanOut:
    """structlog processor: write the event to the file and syslog, pass it on."""

    def __init__(self, log_file: str | None, ident: str) -> None:
        self.log_file = log_file
        self.ident = ident
        self._syslog = None
        if os.path.exists(_SYSLOG_SOCKET):
            import syslog

            syslog.openlog(ident, syslog.LOG_PID, syslog.LOG_DAEMON)
            self._syslog = syslog

    def __call__(self, logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        line = json.dumps(event, default=str, sort_keys=True)
        if self.log_file:
            try:
                with open(self.log_file, "a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
            except OSError:
                pass  # logging must never turn a transition into a failure
        if self._syslog is not None:
            prio = {"error": self._syslog.LOG_ERR, "warning": self._syslog.LOG_WARNING,
                    "debug": self._syslog.LOG_DEBUG}.get(method, self._syslog.LOG_INFO)
            self._syslog.syslog(prio, line)
        return event


def _add_time(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    event.setdefault("ts", round(time.time(), 6))
    event.setdefault("level", method)
    event.setdefault("pid", os.getpid())
    return event


def get_logger(log_file: str | None = None, quiet: bool = False, **bound: Any) -> Any:
    """A structlog logger bound to ``bound`` (node, instance, ...)."""
    import structlog

    processors: list[Any] = [_add_time, _FanOut(log_file, "haguard")]
    if quiet:
        processors.append(_drop)
    else:
        processors.append(structlog.processors.KeyValueRenderer(
            key_order=["event", "instance", "state"], drop_missing=True))
    logger = structlog.wrap_logger(structlog.PrintLogger(file=sys.stderr),
                                   processors=processors)
    return logger.bind(**bound)


def _drop(logger: Any, method: str, event: dict[str, Any]) -> Any:
    import structlog

    raise structlog.DropEvent
