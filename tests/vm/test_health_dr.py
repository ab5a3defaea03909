"""Real-server health checks in the real kernel: an LVS-DR pair whose agents check rs1
and rs2 over HTTP, with rs3 as the sorry server. What the kernel's table holds, and
where the client's requests land, as the real servers go down and come back."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from haguard.lab.vm import VM
from tests.vm.conftest import GuestLab, guest_lab

RS1, RS2, SORRY = "192.0.2.21:80", "192.0.2.22:80", "192.0.2.23:80"
# From the config: a probe at most an interval away, its timeout, one retry half a
# second later and its timeout.
DETECT_S = 2 + 1 + 0.5 + 1
# A command in the guest costs a second or more under emulation: polling the table adds
# that much to what is measured.
POLL_SLACK_S = 6


@pytest.fixture(scope="module")
def lab(vm: VM) -> Iterator[GuestLab]:
    yield from guest_lab(vm, "vhc", "conf/lab-dr-health.yaml")


def _table(lab: GuestLab, node: str) -> str:
    return lab.ipvsadm(node, "-Ln")


def _wait_table(lab: GuestLab, node: str, predicate, what: str, timeout: float = 120) -> float:
    """Poll ``node``'s table until ``predicate`` holds; seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate(_table(lab, node)):
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"{node}: {what} within {timeout} s; the table:\n{_table(lab, node)}")


def _stop_http(lab: GuestLab, node: str) -> None:
    pid = lab.record()["pids"][f"{node}:80"]
    lab.vm.run(["kill", "-TERM", str(pid)], check=True)


def _start_http(lab: GuestLab, node: str) -> None:
    ns = lab.record()["real_servers"][node]["namespace"]
    lab.vm.spawn(["ip", "netns", "exec", ns, lab.python, "-m", "haguard.adapters.httpprobe",
                  "serve", "--name", node, "--port", "80"],
                 os.path.join(lab.vm.work, f"{node}-again.out"))


def test_a_dead_real_server_leaves_both_tables_and_the_client_sees_only_the_other(
        lab: GuestLab) -> None:
    lab.wait_master("lb1")
    _wait_table(lab, "lb1", lambda t: RS1 in t and RS2 in t and SORRY not in t,
                "both real servers in the table")
    assert sorted(lab.fetch(4)["counts"]) == ["rs1", "rs2"]
    _stop_http(lab, "rs1")
    took = _wait_table(lab, "lb1", lambda t: RS1 not in t, "rs1 out of the table")
    print(f"rs1 out of lb1's table {took:.1f} s after its HTTP server stopped "
          f"(checks: {DETECT_S:g} s at most)")
    assert took <= DETECT_S + POLL_SLACK_S
    result = lab.fetch(6)
    assert result["failed"] == 0 and result["counts"] == {"rs2": 6}, result
    # The BACKUP checks too (on_backup: keep): its table is already right.
    _wait_table(lab, "lb2", lambda t: RS1 not in t and RS2 in t, "rs1 out of lb2's table",
                timeout=DETECT_S + POLL_SLACK_S)


def test_a_failover_while_rs1_is_down_sends_nothing_to_rs1(lab: GuestLab) -> None:
    assert RS1 not in _table(lab, "lb2")
    lab.vm.run(["kill", "-TERM", str(lab.keepalived_pid("lb1"))], check=True)
    lab.wait_master("lb2")
    assert RS1 not in _table(lab, "lb2")
    result = lab.fetch(6)
    assert result["failed"] == 0 and result["counts"] == {"rs2": 6}, result
    lab.haguard("lab", "restore", "--name", lab.name)
    lab.wait_master("lb1")


def test_every_real_server_down_swaps_in_the_sorry_server_and_back(lab: GuestLab) -> None:
    _stop_http(lab, "rs2")
    _wait_table(lab, "lb1", lambda t: SORRY in t and RS2 not in t, "the sorry server in")
    result = lab.fetch(4)
    assert result["failed"] == 0 and result["counts"] == {"rs3": 4}, result
    _start_http(lab, "rs1")
    _start_http(lab, "rs2")
    _wait_table(lab, "lb1", lambda t: RS1 in t and RS2 in t and SORRY not in t,
                "both back, the sorry server out")
    assert sorted(lab.fetch(4)["counts"]) == ["rs1", "rs2"]
