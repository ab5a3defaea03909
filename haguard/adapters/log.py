"""Structured logging: one event per action, to stderr, syslog/journald and a file.

keepalived runs hooks with stdio on /dev/null, so syslog (or ``node.log_file``) is
where their story is told: each event is one JSON object there, ``key=value`` text on
stderr. On a MASTER transition the logger is *deferred*: events are stamped when they
happen but written only after the first announcement, so importing structlog costs
the takeover nothing.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import MutableMapping
from typing import Any

# journald listens here too (its syslog socket); HAGUARD_SYSLOG_SOCKET points elsewhere.
_SYSLOG_SOCKET = "/dev/log"
_PRIORITY = {"error": 3, "warning": 4, "info": 6, "debug": 7}
_FACILITY_DAEMON = 3


class _Syslog:
    """RFC 3164-style datagrams to the local syslog socket; silent when there is none."""

    def __init__(self, path: str) -> None:
        import socket

        self._sock: Any = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.connect(path)

    def send(self, method: str, line: str) -> None:
        prio = _FACILITY_DAEMON * 8 + _PRIORITY.get(method, 6)
        try:
            self._sock.send(f"<{prio}>haguard[{os.getpid()}]: {line}".encode())
        except OSError:
            pass  # a full or vanished syslog must not fail a transition


class _FanOut:
    """structlog processor: write the event to the file and syslog, pass it on."""

    def __init__(self, log_file: str | None) -> None:
        self.log_file = log_file
        self._syslog: _Syslog | None = None
        path = os.environ.get("HAGUARD_SYSLOG_SOCKET", _SYSLOG_SOCKET)
        try:
            self._syslog = _Syslog(path)
        except OSError:
            self._syslog = None

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        line = json.dumps(event, default=str, sort_keys=True)
        if self.log_file:
            try:
                with open(self.log_file, "a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
            except OSError:
                pass  # logging must never turn a transition into a failure
        if self._syslog is not None:
            self._syslog.send(method, line)
        return event


def _stamp(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event.setdefault("ts", round(time.time(), 6))
    event.setdefault("level", method)
    event.setdefault("pid", os.getpid())
    return event


def _drop(logger: Any, method: str, event: MutableMapping[str, Any]) -> Any:
    import structlog

    raise structlog.DropEvent


class _Sink:
    """The structlog logger, built on first use; shared by every bound Log."""

    def __init__(self, log_file: str | None, quiet: bool) -> None:
        self.log_file = log_file
        self.quiet = quiet
        self.deferred = True
        self.buffer: list[tuple[str, dict[str, Any]]] = []
        self._logger: Any = None

    def emit(self, method: str, event: dict[str, Any]) -> None:
        if self.deferred:
            self.buffer.append((method, event))
            return
        if self._logger is None:
            import structlog

            last = _drop if self.quiet else structlog.processors.KeyValueRenderer(
                key_order=["event", "instance", "state"], drop_missing=True)
            self._logger = structlog.wrap_logger(
                structlog.PrintLogger(file=sys.stderr),
                processors=[_stamp, _FanOut(self.log_file), last])
        name = event.pop("event")
        getattr(self._logger, method)(name, **event)

    def release(self) -> None:
        self.deferred = False
        buffered, self.buffer = self.buffer, []
        for method, event in buffered:
            self.emit(method, event)


class Log:
    """A structured logger with bound fields; ``release()`` ends deferral."""

    def __init__(self, sink: _Sink, bound: dict[str, Any]) -> None:
        self._sink = sink
        self._bound = bound

    def bind(self, **fields: Any) -> Log:
        return Log(self._sink, {**self._bound, **fields})

    def _log(self, method: str, event: str, fields: dict[str, Any]) -> None:
        record = {**self._bound, **fields, "event": event}
        record.setdefault("ts", round(time.time(), 6))
        self._sink.emit(method, record)

    def info(self, event: str, **fields: Any) -> None:
        self._log("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log("error", event, fields)

    def release(self) -> None:
        self._sink.release()


def get_logger(log_file: str | None = None, quiet: bool = False, deferred: bool = False,
               **bound: Any) -> Log:
    """A logger bound to ``bound`` (node, instance, ...); see the module docstring."""
    sink = _Sink(log_file, quiet)
    if not deferred:
        sink.release()
    return Log(sink, dict(bound))
