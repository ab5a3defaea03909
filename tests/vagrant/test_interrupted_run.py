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


def _box_work_dirs() -> set[str]:
    return set(glob.glob("/var/tmp/haguard-box.*"))


def test_an_interrupted_whole_run_stops_the_tiers_preparation_beside_it(tmp_path: Path) -> None:
    """The whole run prepares this tier beside the others from its start
    (tests/beside.py): SIGTERM to the run ends `vagrant/run prepare` and all it started
    (here mid-debootstrap, into a cache of the test's own), and its box build's work."""
    why = prerequisites()
    require(why is None, why or "")
    before = _box_work_dirs()
    run = ChildRun(str(tmp_path), "tests/vagrant/test_vagrantfile.py::test_vms_are_the_labs_hosts",
                   env={"HAGUARD_TIER_BESIDE": "vm",
                        "HAGUARD_VAGRANT_CACHE": str(tmp_path / "cache")})
    try:
        session = run.wait_for(lambda: next(
            (sid for pid, parent, sid, _ in _processes()
             if parent == run.proc.pid and process.cmdline(pid)[-1:] == ["prepare"]), None),
            60, "vagrant/run prepare beside the run")
        run.wait_for(lambda: any("debootstrap" in " ".join(process.cmdline(pid))
                                 for pid in _members(session)),
                     300, "the preparation's box build to debootstrap")
        work = _box_work_dirs() - before
        assert work, "the box build made no work directory"
        code = run.interrupt(signal.SIGTERM, 300)
        assert code == pytest.ExitCode.INTERRUPTED, run.output()
        assert _members(session) == [], "the preparation's processes outlived the run"
        assert not any(w in line for w in work for line in Path("/proc/mounts").read_text(
            encoding="utf-8").splitlines()), "the box build left a mount"
        assert not (_box_work_dirs() - before), "the box build left its work directory"
        assert not os.path.exists(run.ledger)
    finally:
        run.end()
