"""Real-server health checks in the real kernel: an LVS-DR pair whose agents check rs1
and rs2 over HTTP, with rs3 as the sorry server. What the kernel's table holds, and
where the client's requests land, as the real servers go down and come back."""

from __future__ import annotations

import json
import os
import re
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
    for made in guest_lab(vm, "vhc", "conf/lab-dr-health.yaml"):
        # IPVS keeps a closed connection as FIN_WAIT for `tcpfin`, 2 minutes by default,
        # and a drain waits for those too: 3 s here, in the directors' namespaces only.
        for node in ("lb1", "lb2"):
            made.vm.run(["ip", "netns", "exec", made.director_ns(node), "ipvsadm", "--set",
                         "0", "3", "0"], check=True)
        yield made


def _table(lab: GuestLab, node: str) -> str:
    return lab.ipvsadm(node, "-Ln")


def _wait_table(lab: GuestLab, node: str, predicate, what: str, timeout: float = 120,
                also: str | None = None) -> float:
    """Poll ``node``'s table until ``predicate`` holds; seconds it took. ``also``: a file
    whose text the failure message carries."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate(_table(lab, node)):
            return time.monotonic() - started
        time.sleep(0.2)
    more = f"\n{also}:\n{open(also, encoding='utf-8').read()}" \
        if also and os.path.exists(also) else ""
    raise AssertionError(f"{node}: {what} within {timeout} s; the table:\n{_table(lab, node)}"
                         f"{more}")


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


def _set_weight(lab: GuestLab, node: str, address: str, weight: int) -> str:
    """Edit ``address``'s weight in ``node``'s config file in the guest; the file's path."""
    doc = lab.director_config(node)
    for rs in doc["ipvs"]["services"][0]["real_servers"]:
        if rs["address"] == address:
            rs["weight"] = weight
    path = lab.director_config_path(node)
    lab.vm.run(["cp", lab.write_config(doc, f"{node}-edited.yaml"), path], check=True)
    return path


def test_ipvs_apply_while_the_agent_runs_changes_what_the_file_changed_and_not_health(
        lab: GuestLab) -> None:
    # rs1 is down (the test before): an operator edits rs2's weight and applies. The
    # agent applies it; rs1 stays out of the table.
    assert RS1 not in _table(lab, "lb1")
    ns = lab.director_ns("lb1")
    try:
        path = _set_weight(lab, "lb1", "192.0.2.22", 3)
        out = json.loads(lab.haguard("ipvs", "apply", "-c", path, "--json", ns=ns).stdout)
        assert any("192.0.2.22:80" in line for line in out), out
        assert (_rs_line(_table(lab, "lb1"), RS2) or (None,))[0] == 3
        assert RS1 not in _table(lab, "lb1")
    finally:
        path = _set_weight(lab, "lb1", "192.0.2.22", 1)
        lab.haguard("ipvs", "apply", "-c", path, ns=ns)
    assert (_rs_line(_table(lab, "lb1"), RS2) or (None,))[0] == 1


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


def _wait_file(path: str, done: str, timeout: float, what: str) -> str:
    """The text of a file the guest writes in the shared work directory, once ``done``
    is in it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
        if done in text:
            return text
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout} s")


def _rs_line(table: str, server: str) -> tuple[int, int, int] | None:
    """Weight, active and inactive connections of ``server`` in `ipvsadm -Ln` output."""
    found = re.search(rf"-> {re.escape(server)}\s+\w+\s+(\d+)\s+(\d+)\s+(\d+)", table)
    return tuple(int(g) for g in found.groups()) if found else None  # type: ignore[return-value]


def test_drain_lets_open_connections_finish_then_takes_the_real_server_out(
        lab: GuestLab) -> None:
    lab.wait_master("lb1")
    _wait_table(lab, "lb1", lambda t: RS1 in t and RS2 in t and SORRY not in t,
                "both real servers in the table")
    ns, work = lab.director_ns("lb1"), lab.vm.work
    ready, go = os.path.join(work, "drain-ready"), os.path.join(work, "drain-go")
    held = os.path.join(work, "drain-hold.out")
    lab.vm.spawn(["ip", "netns", "exec", lab.ns("cl"), lab.python, "-m",
                  "haguard.adapters.httpprobe", "hold", "192.0.2.100", "--count", "4",
                  "--go-file", go, "--ready-file", ready, "--wait-s", "600"], held)
    before = json.loads(_wait_file(ready, "]", 120, "the client's four connections answered"))
    assert before.count("rs1") >= 1 and None not in before, before
    out = os.path.join(work, "drain.out")
    lab.vm.spawn(["ip", "netns", "exec", ns, lab.python, "-m", "haguard", "ipvs", "drain",
                  "-c", lab.director_config_path("lb1"), "tcp 192.0.2.100:80", RS1,
                  "--reason", "vm test: drain", "--wait", "--timeout", "600", "--remove"], out)
    # Weight 0, its connections still there: new requests all go to rs2.
    _wait_table(lab, "lb1", lambda t: (_rs_line(t, RS1) or (1, 0, 0))[:2]
                == (0, before.count("rs1")), "rs1 at weight 0 with its open connections", also=out)
    in_kernel = time.monotonic()
    result = lab.fetch(4)
    assert result["failed"] == 0 and result["counts"] == {"rs2": 4}, result
    # The drain counts once the agent has published the lever (the status file follows the
    # kernel by up to a publishing pause): the held connections end only after its first
    # count, which must see them.
    _wait_file(out, " inactive connections", 60, "the drain's first count")
    counting = time.monotonic() - in_kernel
    assert "no connections left" not in open(out, encoding="utf-8").read()
    # The held connections ask again: each is answered by the server that answered it first.
    open(go, "w").close()
    after = json.loads(_wait_file(held, "}", 120, "the held connections' second answers"))
    assert after["after"] == before and after["survived"] == 4, after
    took = _wait_table(lab, "lb1", lambda t: RS1 not in t, "rs1 out once its connections ended",
                       also=out)
    text = _wait_file(out, "disabled", 60, "the drain's last words")
    counts = [tuple(map(int, m)) for m in re.findall(
        rf"{re.escape(RS1)}: (\d+) active, (\d+) inactive connections", text)]
    print(f"drain: rs1 out {took:.1f} s after the client closed its connections; "
          f"countdown {counts}; first count {counting:.1f} s after the kernel had weight 0")
    assert counts[0][0] == before.count("rs1") and counts[-1] == (0, 0), text
    assert text.index("draining, at weight 0") < text.index(" active, "), text
    assert "no connections left" in text and "disabled" in text, text
    assert RS1 not in _table(lab, "lb1") and RS2 in _table(lab, "lb1")
    lab.haguard("ipvs", "enable", "-c", lab.director_config_path("lb1"), "tcp 192.0.2.100:80",
                RS1, "--reason", "vm test: drained", ns=ns)
    assert (_rs_line(_table(lab, "lb1"), RS1) or (None,))[0] == 1   # back at its weight


def test_disable_takes_a_healthy_real_server_out_until_enable(lab: GuestLab) -> None:
    ns, config = lab.director_ns("lb1"), lab.director_config_path("lb1")
    lab.haguard("ipvs", "disable", "-c", config, "tcp 192.0.2.100:80", RS2, "--reason",
                "vm test: disable", ns=ns)
    assert RS2 not in _table(lab, "lb1")       # out when the command returns
    result = lab.fetch(4)
    assert result["failed"] == 0 and result["counts"] == {"rs1": 4}, result
    # Its checks still pass; the agent keeps it out all the same.
    time.sleep(DETECT_S)
    assert RS2 not in _table(lab, "lb1")
    lab.haguard("ipvs", "enable", "-c", config, "tcp 192.0.2.100:80", RS2, "--reason",
                "vm test: disabled", ns=ns)
    # Its checks pass, so it is back when the command returns: `enable` waits until the
    # running agent has written it (once found late beside a second emulated VM, when the
    # command returned before the agent had looked at the lever).
    if RS2 not in _table(lab, "lb1"):
        log = lab.record()["directors"]["lb1"]["log_file"]
        tail = lab.vm.run(["tail", "-n", "40", log]).stdout
        raise AssertionError(f"rs2 not back when enable returned\nlb1's log:\n{tail}")
    assert sorted(lab.fetch(4)["counts"]) == ["rs1", "rs2"]
