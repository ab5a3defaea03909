"""Not a test module of its own (the name does not start with test_): the child run that
tests/unit/test_interrupt.py signals. Its first test loses a KeyboardInterrupt, as one
raised inside a __del__ or a GC callback is lost; the second must then never run."""

from __future__ import annotations

import os
import time
from pathlib import Path

MARK = os.environ.get("HAGUARD_INTERRUPT_MARK", "")


def test_loses_the_interrupt() -> None:
    deadline = time.monotonic() + 3
    started = False
    while True:
        # Everything from the marker on is inside the try: the test signals as soon as
        # the marker exists, and Python raises the interrupt after the next call returns
        # (touch's own, the clock's), which outside the try would not be lost.
        try:
            if not started:
                started = True
                Path(MARK + ".started").touch()
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        except KeyboardInterrupt:
            Path(MARK + ".swallowed").touch()


def test_must_not_run_after_the_interrupt() -> None:
    Path(MARK + ".second").touch()
