"""Shared test helpers: how a tier that cannot run here says so; and a run that is
interrupted (SIGTERM from a time limit, SIGINT from an operator) still tears down."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from haguard.adapters import process
from tests import ledger


class _Interrupt:
    """What the run was told to stop by, and the session to stop.

    The first SIGTERM or SIGINT raises KeyboardInterrupt in whatever the main thread runs,
    and pytest then tears everything down. Raised inside a ``__del__``, Python would print
    it and carry on: there the signal is sent again a moment later instead. Should one be
    lost anyway (a GC callback), the signal is remembered and the session stops after the
    test that was running. A signal that arrives during a teardown raises nothing (a
    finalizer cut short leaves things behind): that teardown finishes, then the session
    stops.
    """

    signal: str | None = None
    session: pytest.Session | None = None
    in_teardown = False


def _interrupted(signum: int, frame: Any) -> None:
    if process.in_finalizer(frame):
        # A KeyboardInterrupt raised inside a __del__ is printed and dropped: ask again
        # once the finalizer is over.
        process.signal_again_soon(signum)
        return
    # pytest runs every pending finalizer on KeyboardInterrupt; a second signal must not
    # cut that teardown short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _Interrupt.signal = signal.Signals(signum).name
    if _Interrupt.session is not None:
        _Interrupt.session.shouldstop = f"{_Interrupt.signal}: tearing down what the tests made"
    if not _Interrupt.in_teardown:
        raise KeyboardInterrupt(f"{_Interrupt.signal}: tearing down what the tests made")


def pytest_sessionstart(session: pytest.Session) -> None:
    # SIGINT as well, where it was inherited ignored (a run in a script's background).
    _Interrupt.session = session
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, _interrupted)
    if os.geteuid() == 0:
        ledger.open_ledger()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Any:
    _Interrupt.in_teardown = True
    try:
        yield
    finally:
        _Interrupt.in_teardown = False


@pytest.hookimpl(trylast=True)  # after pytest's own teardown of the session's fixtures
def pytest_sessionfinish(session: pytest.Session) -> None:
    if os.geteuid() != 0:
        return
    left = ledger.close_ledger()
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("tests left these behind (removed now):", red=True)
            for line in left:
                reporter.write_line(f"  {line}")


def require(condition: bool, why: str) -> None:
    """Skip on a developer machine; fail in CI, where every tier must run."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"this tier must run in CI but cannot: {why}", pytrace=False)
    pytest.skip(why)


def lab_prerequisites() -> str | None:
    """None when the namespace lab can run here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "the namespace lab needs root (network namespaces, keepalived); run as root"
    for tool in ("ip", "keepalived", "ping", "sysctl", "setsid"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            return f"{tool} is not installed (apt-get install keepalived iproute2 iputils-ping)"
    return None


def wait_until(predicate: Callable[[], Any], timeout: float, what: str,
               step: float = 0.02) -> Any:
    """Poll ``predicate`` until truthy and return its value; fail the test naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
