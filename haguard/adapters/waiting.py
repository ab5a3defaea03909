"""Polling for something another process or the kernel will make true."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(predicate: Callable[[], Any], timeout: float, step: float = 0.1) -> bool:
    """Poll ``predicate`` every ``step`` seconds for up to ``timeout``; whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())
