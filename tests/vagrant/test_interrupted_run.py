"""A multi-VM run interrupted while `vagrant up` boots the VMs leaves nothing behind: no
VM, network, libvirtd, virtlogd, dnsmasq, vagrant or namespace. Runs before the tier's
own topology comes up (it needs the machine's one topology to itself); the box it
builds is the one the tier then uses."""

from __future__ import annotations

import glob
import os
import signal
from pathlib import Path

import pytest

from haguard.adapters import process
from tests.conftest import require
from tests.interrupting import ChildRun, alive_pids
from tests.vagrant.conftest import STATE, prerequisites

TARGET = "tests/vagrant/test_topology.py::test_every_vm_is_up_and_provisioned_by_haguard"
NETNS = os.environ.get("HAGUARD_VAGRANT_NETNS", "hg-vagrant")


def _pids(pattern: str) -> dict[str, int]:
    found = {}
    for path in glob.glob(pattern):
        pid = process.pid_from_file(path)
        if pid and process.alive(pid):
            found[path] = pid
    return found


def _processes() -> list[tuple[int, int, int, str]]:
    """(pid, parent, session, state) of every process."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        found.append((int(entry), int(fields[1]), int(fields[3]), fields[0]))
    return found


def _session_of_vagrant_run(pytest_pid: int) -> int | None:
    """The session `vagrant/run up` leads: the child pytest's child running vagrant/run."""
    return next((session for pid, parent, session, _ in _processes()
                 if parent == pytest_pid
                 and any(a.endswith("vagrant/run") for a in process.cmdline(pid))), None)


def _members(session: int) -> list[int]:
    return [pid for pid, _, sid, state in _processes() if sid == session and state != "Z"]


def test_an_interrupted_vagrant_up_removes_every_vm_network_and_daemon(tmp_path: Path) -> None:
    why = prerequisites()
    require(why is None, why or "")
    if os.path.exists(os.path.join(STATE, "owner")):
        pytest.fail(f"a topology is up already ({STATE}/owner); this test needs it down")
    run = ChildRun(str(tmp_path), TARGET)
    try:
        # The most to tear down: libvirt's daemons, a network's dnsmasq, a VM's qemu.
        vms = run.wait_for(lambda: _pids("/run/libvirt/qemu/haguard-*.pid"), 900,
                           "the first VM of the topology to run")
        session = _session_of_vagrant_run(run.proc.pid)
        assert session is not None, "no vagrant/run under the child"
        daemons = _pids(os.path.join(STATE, "*.pid"))
        networks = _pids("/run/libvirt/network/haguard-*.pid")
        assert len(daemons) == 2, daemons  # libvirtd, virtlogd
        code = run.interrupt(signal.SIGTERM, 300)
        assert code == pytest.ExitCode.INTERRUPTED, run.output()
        pids = [*vms.values(), *daemons.values(), *networks.values()]
        assert alive_pids(pids) == [], (vms, daemons, networks)
        assert _members(session) == [], "vagrant/run's processes outlived it"
        assert not os.path.exists(f"/run/netns/{NETNS}")
        assert not os.path.exists(STATE)
        assert not os.path.exists(run.ledger)
    finally:
        run.end()
