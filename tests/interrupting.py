"""Interrupt a run of a tier as a time limit or an operator does, and look at what is left.

The tests that use this start pytest on part of a tier as a child process (its own
session, its own ledger), wait until it has made the most there is to tear down, signal
it, and then check every pid, namespace and file it had made.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from haguard.adapters import process
from haguard.adapters.files import read_jsonl
from tests import ledger
from tests.conftest import wait_until

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ChildRun:
    """pytest on ``targets`` in a process group of its own, output kept in ``log``."""

    def __init__(self, workdir: str, *targets: str, env: dict[str, str] | None = None) -> None:
        self.log = os.path.join(workdir, "run.log")
        # A ledger directory of its own: no other run's first step cleans up in its stead.
        self.ledger_dir = os.path.join(workdir, "ledger")
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pytest", "-p", "tests.tiers", "-p", "tests.beside",
                 "-p", "no:cacheprovider",
                 "-q", *targets], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
                env={**os.environ, "CI": "true", "HAGUARD_TEST_LEDGER_DIR": self.ledger_dir,
                     **(env or {})})
        self.ledger = os.path.join(self.ledger_dir, f"{self.proc.pid}.jsonl")

    def entries(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in read_jsonl(self.ledger) if e.get("kind") == kind]

    def output(self) -> str:
        with open(self.log, encoding="utf-8", errors="replace") as fh:
            return fh.read()[-4000:]

    def wait_for(self, predicate: Any, timeout: float, what: str) -> Any:
        """Wait for ``predicate`` while the child still runs (it must not finish first)."""
        def check() -> Any:
            assert self.proc.poll() is None, \
                f"the run ended (exit {self.proc.returncode}) before {what}:\n{self.output()}"
            return predicate()
        return wait_until(check, timeout, what, step=0.1)

    def interrupt(self, sig: int, timeout: float) -> int:
        """Signal the child alone (not its group: what it started must hear from it)."""
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the run did not end within {timeout} s of signal {sig}:\n"
                                 f"{self.output()}") from None

    def first_step_of_the_next_run(self) -> str:
        """`python -m tests.ledger` as scripts/test runs it before any test, on this
        child's ledgers; what it printed."""
        step = subprocess.run([sys.executable, "-m", "tests.ledger"], cwd=REPO,
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "HAGUARD_TEST_LEDGER_DIR": self.ledger_dir})
        assert step.returncode == 0, step.stderr
        return step.stdout

    def end(self) -> None:
        """Whatever happened: end the child and its group, and remove what it left."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 9)
            except ProcessLookupError:
                pass
            self.proc.wait()
        ledger.clean_dead(self.ledger_dir)


def alive_pids(pids: list[int]) -> list[int]:
    return [pid for pid in pids if process.alive(pid)]
