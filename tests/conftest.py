"""Shared test helpers: how a tier that cannot run here says so."""

from __future__ import annotations

import os
import shutil
import time
from typing import Any, Callable

import pytest


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
