"""A VM-tier run interrupted while its guest runs leaves no qemu and no files behind: on
SIGTERM the session powers the guest off; after SIGKILL the next run's first step ends
the guest by its recorded pid."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from haguard.adapters import process
from haguard.lab.vm import REGISTRY_DIR
from tests.conftest import require
from tests.interrupting import ChildRun
from tests.vm.conftest import vm_prerequisites

TARGET = "tests/vm/test_kernel.py"


@pytest.fixture(autouse=True)
def _needs_vm() -> None:
    why = vm_prerequisites()
    require(why is None, why or "")


def _running_guest(run: ChildRun, owner: int | None = None) -> dict[str, Any] | None:
    """The child's guest (or ``owner``'s), once its qemu runs and the guest has started
    its job."""
    try:
        names = os.listdir(REGISTRY_DIR)
    except FileNotFoundError:
        return None
    for name in names:
        try:
            with open(os.path.join(REGISTRY_DIR, name), encoding="utf-8") as fh:
                entry = json.load(fh)
        except (OSError, ValueError):
            continue
        if entry.get("owner") != (owner or run.proc.pid):
            continue
        pid = process.pid_from_file(os.path.join(entry["work"], "qemu.pid"))
        try:
            with open(os.path.join(entry["work"], "console.log"), encoding="utf-8",
                      errors="replace") as fh:
                booted = "haguard-vm: running" in fh.read()
        except OSError:
            booted = False
        if pid and booted:
            return {**entry, "qemu": pid, "entry": os.path.join(REGISTRY_DIR, name)}
    return None


def _whats_left(guest: dict[str, Any]) -> list[str]:
    left = [f"qemu pid {guest['qemu']}"] if process.alive(guest["qemu"]) else []
    return left + [p for p in (guest["work"], guest["entry"]) if os.path.exists(p)]


def test_an_interrupted_vm_run_powers_its_guest_off(tmp_path: Path) -> None:
    run = ChildRun(str(tmp_path), TARGET)
    try:
        guest = run.wait_for(lambda: _running_guest(run), 300, "the child's guest to boot")
        code = run.interrupt(signal.SIGTERM, 60)
        assert code == pytest.ExitCode.INTERRUPTED, run.output()
        assert _whats_left(guest) == [], run.output()
        assert not os.path.exists(run.ledger)
    finally:
        run.end()


def test_after_a_killed_vm_run_the_next_runs_first_step_ends_its_guest(tmp_path: Path) -> None:
    run = ChildRun(str(tmp_path), TARGET)
    try:
        guest = run.wait_for(lambda: _running_guest(run), 300, "the child's guest to boot")
        run.proc.kill()  # pytest only; qemu, its child, runs on
        run.proc.wait()
        assert process.alive(guest["qemu"]), "qemu died with pytest: the test proves nothing"
        printed = run.first_step_of_the_next_run()
        assert f"qemu pid {guest['qemu']}" in printed, printed
        assert _whats_left(guest) == [], printed
    finally:
        run.end()


def _pytest_child_of(pid: int) -> int | None:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                    parent = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == pid and "pytest" in process.cmdline(int(entry)):
                return int(entry)
    return None


def test_an_interrupted_run_with_the_vm_tier_beside_powers_the_besides_guest_off(
        tmp_path: Path) -> None:
    """scripts/test's whole run hands the VM tier to a child pytest (tests/beside.py):
    SIGTERM to the run reaches that child, whose session powers its guest off."""
    run = ChildRun(str(tmp_path), TARGET, "tests/unit/test_sweep.py",
                   env={"HAGUARD_TIER_BESIDE": "vm"})
    try:
        beside = run.wait_for(lambda: _pytest_child_of(run.proc.pid), 60, "the VM tier's own pytest")
        guest = run.wait_for(lambda: _running_guest(run, beside), 300,
                             "the beside run's guest to boot")
        code = run.interrupt(signal.SIGTERM, 240)
        assert code == pytest.ExitCode.INTERRUPTED, run.output()
        assert not process.alive(beside), run.output()
        assert _whats_left(guest) == [], run.output()
        assert not os.path.exists(run.ledger)
        assert not os.path.exists(os.path.join(run.ledger_dir, f"{beside}.jsonl"))
    finally:
        run.end()
