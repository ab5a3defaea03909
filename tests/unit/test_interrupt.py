"""A run told to stop stops, even when the KeyboardInterrupt the signal raised was lost
(Python drops one raised inside a __del__ or a GC callback): the session ends after the
test that was running, as interrupted, and runs no further test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _signal_when(argv: list[str], marker: str, sig: int, timeout: float,
                 env: dict[str, str] | None = None) -> tuple[int, str]:
    """Start ``argv``, send it ``sig`` once ``marker`` exists; its exit code and output."""
    child = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    try:
        deadline = time.monotonic() + timeout
        while not os.path.exists(marker) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert os.path.exists(marker), f"{marker} never appeared"
        child.send_signal(sig)
        out, _ = child.communicate(timeout=timeout)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return child.returncode, out.decode(errors="replace")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_lost_keyboard_interrupt_still_stops_the_session(sig: int, tmp_path: Path) -> None:
    mark = str(tmp_path / "mark")
    code, text = _signal_when(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
         "tests/unit/interrupt_target.py"], mark + ".started", sig, 60,
        env={**os.environ, "HAGUARD_INTERRUPT_MARK": mark,
             "HAGUARD_TEST_LEDGER_DIR": str(tmp_path / "ledger")})
    assert os.path.exists(mark + ".swallowed"), text       # the interrupt was lost
    assert not os.path.exists(mark + ".second"), text      # and still nothing more ran
    assert code == pytest.ExitCode.INTERRUPTED, text


CHILD = """
import sys, time
from pathlib import Path
from haguard.adapters.process import interrupt_on_termination
interrupt_on_termination()
mark = sys.argv[1]

class Slow:
    def __del__(self):
        Path(mark + ".in_del").touch()
        time.sleep(1.0)
        Path(mark + ".del_done").touch()

try:
    s = Slow()
    del s                       # its __del__ runs now, for a second
    time.sleep(10)
    print("ran to the end")
except KeyboardInterrupt:
    print("interrupted")
    sys.exit(130)
"""


def test_a_signal_that_lands_in_a_finalizer_still_interrupts_after_it(tmp_path: Path) -> None:
    mark = str(tmp_path / "mark")
    code, text = _signal_when([sys.executable, "-c", CHILD, mark], mark + ".in_del",
                              signal.SIGTERM, 30)
    # the finalizer was not cut short, and the interrupt came right after it
    assert os.path.exists(mark + ".del_done"), text
    assert code == 130 and "interrupted" in text and "Exception ignored" not in text
