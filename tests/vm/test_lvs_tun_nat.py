"""LVS-TUN and LVS-NAT in the real kernel: both real servers answer; failover holds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from haguard.lab.vm import VM
from tests.vm.conftest import GuestLab, guest_lab


@pytest.fixture(scope="module", params=["tun", "nat"])
def lab(request: pytest.FixtureRequest, vm: VM) -> Iterator[GuestLab]:
    yield from guest_lab(vm, f"v{request.param}", f"conf/lab-{request.param}.yaml")


def test_round_robin_reaches_both_real_servers_through_the_vip(lab: GuestLab) -> None:
    result = lab.fetch(6)
    assert result["failed"] == 0, result["errors"]
    answers = result["answers"]
    assert sorted(set(answers)) == ["rs1", "rs2"]
    assert all(a != b for a, b in zip(answers, answers[1:])), answers


def test_forwarding_method_is_the_configured_one(lab: GuestLab) -> None:
    table = lab.ipvsadm("lb1", "-Ln")
    expected = {"vtun": "Tunnel", "vnat": "Masq"}[lab.name]
    assert table.count(expected) == 2, table


@pytest.mark.parametrize("lab", ["nat"], indirect=True)
def test_nat_a_failed_real_server_link_moves_both_vips_and_requests_stay_answered(
        lab: GuestLab) -> None:
    """The sync group of conf/lab-nat.yaml: lb1's eth1 fails, its client side does not;
    lb2 takes the client VIP and the gateway together, so replies find their way."""
    ns = lab.director_ns("lb1")
    lab.vm.run(["ip", "-n", ns, "link", "set", "eth1", "down"], check=True)
    try:
        lab.wait_master("lb2")
        result = lab.fetch(6)
        assert result["failed"] == 0 and set(result["counts"]) == {"rs1", "rs2"}, result
    finally:
        lab.vm.run(["ip", "-n", ns, "link", "set", "eth1", "up"], check=True)
    lab.wait_master("lb1")      # it preempts with both instances again


def test_stopping_the_masters_keepalived_keeps_requests_answered(lab: GuestLab) -> None:
    lab.vm.run(["kill", "-TERM", str(lab.keepalived_pid("lb1"))], check=True)
    lab.wait_master("lb2")
    result = lab.fetch(6)
    assert result["failed"] == 0 and set(result["counts"]) == {"rs1", "rs2"}, result
