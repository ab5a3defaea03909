"""A lab-tier run interrupted mid-test leaves nothing behind: on SIGTERM or SIGINT the
session tears down what it made; after SIGKILL the next run's first step does."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from haguard.lab import netns
from haguard.lab.runner import read_record
from tests.interrupting import ChildRun, alive_pids

TARGET = "tests/lab/test_transitions.py"


def _lab_with_both_keepalived(run: ChildRun) -> dict[str, Any] | None:
    """The child's first lab, once both directors' keepalived run in it."""
    for entry in run.entries("tag"):
        record = read_record(entry["name"])
        if record and {"lb1", "lb2"} <= set(record.get("pids", {})):
            return record
    return None


def _whats_left(record: dict[str, Any]) -> list[str]:
    left = [f"namespace {ns}" for ns in record["namespaces"] if netns.exists(ns)]
    left += [f"pid {pid}" for pid in alive_pids(list(record["pids"].values()))]
    if os.path.exists(record["workdir"]):
        left.append(record["workdir"])
    return left


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_interrupted_lab_run_tears_down_its_lab_and_its_ledger(sig: int,
                                                                 tmp_path: Path) -> None:
    run = ChildRun(str(tmp_path), TARGET)
    try:
        record = run.wait_for(lambda: _lab_with_both_keepalived(run), 120,
                              "a lab with both keepalived running")
        code = run.interrupt(sig, 90)
        assert code == pytest.ExitCode.INTERRUPTED, run.output()
        assert _whats_left(record) == [], run.output()
        assert not os.path.exists(run.ledger), "the interrupted session kept its ledger"
    finally:
        run.end()


def test_after_a_killed_run_the_next_runs_first_step_removes_what_it_left(
        tmp_path: Path) -> None:
    run = ChildRun(str(tmp_path), TARGET)
    try:
        record = run.wait_for(lambda: _lab_with_both_keepalived(run), 120,
                              "a lab with both keepalived running")
        run.proc.kill()  # pytest only: keepalived runs on in its own session
        run.proc.wait()
        left = _whats_left(record)
        assert left, "nothing was left to clean: the test proves nothing"
        printed = run.first_step_of_the_next_run()
        assert f"pid {run.proc.pid} " in printed, printed
        assert _whats_left(record) == [], printed
        assert not os.path.exists(run.ledger)
    finally:
        run.end()
