"""The guest is the real thing: its own kernel, with IPVS and every scheduler."""

from __future__ import annotations

import os

import pytest

from haguard.lab.vm import VM

SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf",
              "mh", "twos")


def test_guest_runs_the_debian_kernel_not_the_hosts(vm: VM) -> None:
    release = vm.run(["uname", "-r"], check=True).stdout.strip()
    assert release == vm.kernel.version != os.uname().release


def shipped(vm: VM) -> set[str]:
    listing = vm.run(["ls", f"/lib/modules/{vm.kernel.version}/kernel/net/netfilter/ipvs"],
                     check=True).stdout.split()
    return {name[len("ip_vs_"):-3] for name in listing if name.startswith("ip_vs_")}


def test_the_guest_kernel_ships_every_scheduler_but_twos(vm: VM) -> None:
    # twos arrived in Linux 6.2; Debian 12's 6.1 has the other thirteen.
    assert set(SCHEDULERS) - shipped(vm) == {"twos"}


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_every_shipped_ipvs_scheduler_loads_in_the_guest(vm: VM, scheduler: str) -> None:
    address = f"203.0.113.{SCHEDULERS.index(scheduler) + 1}:80"
    if scheduler not in shipped(vm):
        refused = vm.run(["ipvsadm", "-A", "-t", address, "-s", scheduler])
        assert refused.returncode != 0
        assert "Scheduler or persistence engine not found" in refused.stderr
        return
    vm.run(["ipvsadm", "-A", "-t", address, "-s", scheduler], check=True)
    listing = vm.run(["ipvsadm", "-Ln", "-t", address], check=True).stdout
    assert f"TCP  {address} {scheduler}" in listing
    vm.run(["ipvsadm", "-D", "-t", address], check=True)
