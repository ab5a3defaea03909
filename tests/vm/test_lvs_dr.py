"""LVS-DR in the real kernel: scheduling, reconcile and failover with real traffic."""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Iterator

import pytest

from haguard.lab.vm import VM, Result
from tests.vm.conftest import GuestLab, guest_lab

RS1, RS2 = "192.0.2.21:80", "192.0.2.22:80"


@pytest.fixture(scope="module")
def lab(vm: VM) -> Iterator[GuestLab]:
    yield from guest_lab(vm, "vdr", "conf/lab-dr.yaml")


def with_service(lab: GuestLab, name: str, **changes: object) -> str:
    """lb1's own config with the first service changed; returns a path the guest reads."""
    doc = copy.deepcopy(lab.director_config("lb1"))
    doc["ipvs"]["services"][0].update(changes)
    return lab.write_config(doc, name)


def apply(lab: GuestLab, config: str) -> list[str]:
    out = lab.haguard("ipvs", "apply", "-c", config, "--json", ns=lab.director_ns("lb1")).stdout
    return json.loads(out)


def test_dr_round_robin_alternates_between_both_real_servers(lab: GuestLab) -> None:
    result = lab.fetch(6)
    assert result["failed"] == 0, result["errors"]
    answers = result["answers"]
    assert sorted(set(answers)) == ["rs1", "rs2"]
    assert all(a != b for a, b in zip(answers, answers[1:])), answers


def test_weight_change_touches_only_that_destination(lab: GuestLab) -> None:
    lab.ipvsadm("lb1", "-A", "-t", "192.0.2.200:81", "-s", "lc")   # someone else's service
    lab.ipvsadm("lb1", "-a", "-t", "192.0.2.200:81", "-r", "192.0.2.21:81", "-g")
    before = json.loads(lab.haguard("ipvs", "show", "--json", ns=lab.director_ns("lb1")).stdout)
    conns_before = next(s["connections"] for s in before["services"] if s["port"] == 80)
    assert conns_before > 0
    config = with_service(lab, "wrr.yaml", scheduler="wrr", real_servers=[
        {"address": "192.0.2.21", "port": 80, "forwarding": "dr", "weight": 1},
        {"address": "192.0.2.22", "port": 80, "forwarding": "dr", "weight": 3}])
    diff = json.loads(lab.haguard("ipvs", "diff", "-c", config, "--json",
                                  ns=lab.director_ns("lb1")).stdout)
    assert diff == ["~ service tcp 192.0.2.100:80: scheduler rr -> wrr",
                    "~ tcp 192.0.2.100:80 -> 192.0.2.22:80: weight 1 -> 3"]
    assert apply(lab, config) == diff
    after = json.loads(lab.haguard("ipvs", "show", "--json", ns=lab.director_ns("lb1")).stdout)
    service = next(s for s in after["services"] if s["port"] == 80)
    # Changed in place: the kernel kept the service and its counters.
    assert service["connections"] >= conns_before
    assert service["scheduler"] == "wrr"
    assert [(r["address"], r["weight"]) for r in service["real_servers"]] in (
        [("192.0.2.21", 1), ("192.0.2.22", 3)], [("192.0.2.22", 3), ("192.0.2.21", 1)])
    foreign = [s for s in after["services"] if s["port"] == 81]
    assert foreign and foreign[0]["owned"] is False and foreign[0]["scheduler"] == "lc"
    result = lab.fetch(8)
    assert result["counts"] == {"rs1": 2, "rs2": 6}, result


def test_source_hashing_sticks_each_client_to_one_server(lab: GuestLab) -> None:
    apply(lab, with_service(lab, "sh.yaml", scheduler="sh"))
    seen = {}
    for host in range(3, 10):
        source = f"192.0.2.{host}"
        result = lab.fetch(4, source=source)
        assert result["failed"] == 0
        assert len(result["counts"]) == 1, (source, result["counts"])
        seen[source] = next(iter(result["counts"]))
    assert set(seen.values()) == {"rs1", "rs2"}, seen


def test_persistence_keeps_one_client_on_one_server(lab: GuestLab) -> None:
    apply(lab, with_service(lab, "persist.yaml", scheduler="rr",
                            persistence={"timeout_s": 300}))
    result = lab.fetch(6, source="192.0.2.5")
    assert result["failed"] == 0 and len(result["counts"]) == 1, result
    other = lab.fetch(6, source="192.0.2.6")
    assert len(other["counts"]) == 1


def test_removing_and_adding_a_real_server_changes_only_that(lab: GuestLab) -> None:
    apply(lab, lab.director_config_path("lb1"))  # back to the lab's own rules
    config = with_service(lab, "one.yaml", scheduler="rr", real_servers=[
        {"address": "192.0.2.22", "port": 80, "forwarding": "dr", "weight": 1}])
    assert apply(lab, config) == ["- tcp 192.0.2.100:80 -> 192.0.2.21:80"]
    assert lab.fetch(4)["counts"] == {"rs2": 4}
    assert apply(lab, lab.director_config_path("lb1")) == [
        "+ tcp 192.0.2.100:80 -> 192.0.2.21:80 (dr, weight 1)"]
    assert sorted(lab.fetch(4)["counts"].items()) == [("rs1", 2), ("rs2", 2)]
    assert "192.0.2.200:81" in lab.ipvsadm("lb1", "-Ln")  # still not ours, still there


def test_incremental_apply_reads_back_only_what_changed(lab: GuestLab) -> None:
    apply(lab, lab.director_config_path("lb1"))  # a full apply records what it applied
    config = with_service(lab, "inc.yaml", real_servers=[
        {"address": "192.0.2.21", "port": 80, "forwarding": "dr", "weight": 1},
        {"address": "192.0.2.22", "port": 80, "forwarding": "dr", "weight": 4}])

    def incremental() -> list[str]:
        out = lab.haguard("ipvs", "apply", "-c", config, "--incremental", "--json",
                          ns=lab.director_ns("lb1")).stdout
        return json.loads(out)

    assert incremental() == ["~ tcp 192.0.2.100:80 -> 192.0.2.22:80: weight 1 -> 4"]
    assert "192.0.2.22:80                Route   4" in lab.ipvsadm("lb1", "-Ln")
    # A hand edit of a service whose config did not change waits for a full apply.
    lab.ipvsadm("lb1", "-e", "-t", "192.0.2.100:80", "-r", "192.0.2.21:80", "-g", "-w", "9")
    assert incremental() == []
    assert apply(lab, config) == ["~ tcp 192.0.2.100:80 -> 192.0.2.21:80: weight 9 -> 1"]
    apply(lab, lab.director_config_path("lb1"))


def test_apply_only_changes_just_the_named_service(lab: GuestLab) -> None:
    doc = copy.deepcopy(lab.director_config("lb1"))
    second = copy.deepcopy(doc["ipvs"]["services"][0])
    second["port"] = 8080
    second["real_servers"] = [dict(rs, port=8080) for rs in second["real_servers"]]
    doc["ipvs"]["services"].append(second)
    both = lab.write_config(doc, "two.yaml")
    apply(lab, both)
    doc["ipvs"]["services"][0]["real_servers"][1]["weight"] = 5
    doc["ipvs"]["services"][1]["scheduler"] = "wlc"
    edited = lab.write_config(doc, "two-edited.yaml")
    ns = lab.director_ns("lb1")

    def only(command: str, name: str, check: bool = True) -> Result:
        return lab.haguard("ipvs", command, "-c", edited, "--only", name, "--json", ns=ns,
                           check=check)

    change = ["~ tcp 192.0.2.100:80 -> 192.0.2.22:80: weight 1 -> 5"]
    assert json.loads(only("diff", "tcp 192.0.2.100:80").stdout) == change
    assert json.loads(only("apply", "tcp 192.0.2.100:80").stdout) == change
    table = lab.ipvsadm("lb1", "-Ln")
    assert "192.0.2.22:80                Route   5" in table
    assert "192.0.2.100:8080 rr" in table          # the other edit waits: not named
    # A service haguard does not own is refused (exit 2) and left as it is.
    lab.ipvsadm("lb1", "-A", "-t", "192.0.2.200:82", "-s", "lc")
    refused = only("apply", "tcp 192.0.2.200:82", check=False)
    assert refused.returncode == 2, refused
    assert "not a service haguard applied before" in refused.stderr
    assert "192.0.2.200:82 lc" in lab.ipvsadm("lb1", "-Ln")
    lab.ipvsadm("lb1", "-D", "-t", "192.0.2.200:82")
    apply(lab, lab.director_config_path("lb1"))    # back to the lab's rules: 8080 deleted
    assert "8080" not in lab.ipvsadm("lb1", "-Ln")


def test_backup_director_holds_the_same_rules_ready(lab: GuestLab) -> None:
    table = lab.ipvsadm("lb2", "-Ln")
    assert "192.0.2.100:80 rr" in table and RS1 in table and RS2 in table
    assert "backup sync daemon" in lab.ipvsadm("lb2", "-L", "--daemon")
    assert "master sync daemon" in lab.ipvsadm("lb1", "-L", "--daemon")


def test_long_lived_connections_survive_a_failover_with_connection_sync(lab: GuestLab) -> None:
    ready = os.path.join(lab.vm.work, "hold.ready")
    go = os.path.join(lab.vm.work, "hold.go")
    out = os.path.join(lab.vm.work, "hold.out")
    lab.vm.spawn(["ip", "netns", "exec", lab.ns("cl"), lab.python, "-m", "haguard.adapters.httpprobe",
                  "hold", "192.0.2.100", "--count", "20", "--ready-file", ready,
                  "--go-file", go, "--wait-s", "600", "--timeout", "60"], out)
    deadline = time.monotonic() + 300
    while not os.path.exists(ready) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert os.path.exists(ready), "the 20 connections were never opened"
    before = json.loads(open(ready, encoding="ascii").read())
    assert None not in before and set(before) == {"rs1", "rs2"}
    time.sleep(3)  # the sync daemon sends in batches
    lab.vm.run(["kill", "-TERM", str(lab.keepalived_pid("lb1"))], check=True)
    lab.wait_master("lb2")
    open(go, "w").close()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        text = open(out, encoding="utf-8").read() if os.path.exists(out) else ""
        if text.strip().startswith("{"):
            break
        time.sleep(1)
    result = json.loads(text)
    assert result["survived"] == 20, result
    assert lab.fetch(4)["failed"] == 0


def test_pulling_the_masters_link_fails_over_and_requests_keep_being_answered(
        lab: GuestLab) -> None:
    lab.haguard("lab", "restore", "--name", lab.name)
    lab.wait_master("lb1")
    lab.vm.run(["ip", "-n", lab.ns("sw"), "link", "set", "d0-0", "down"], check=True)
    try:
        lab.wait_master("lb2")
        result = lab.fetch(6)
        assert result["failed"] == 0 and set(result["counts"]) == {"rs1", "rs2"}, result
    finally:
        lab.vm.run(["ip", "-n", lab.ns("sw"), "link", "set", "d0-0", "up"], check=True)
