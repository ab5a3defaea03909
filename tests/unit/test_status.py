"""app.status against an in-memory host: the recorded state held up against the VIPs
really present, and keepalived's pid file; every disagreement is a problem and makes
the report unhealthy (``haguard status`` then exits 1)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from haguard.adapters.statefile import StateDir
from haguard.app.status import collect, format_text
from haguard.core.config import Config, loads
from tests.unit.memoryhost import MemoryHost
from tests.unit.standin import keepalived_stand_in

DOC = """\
node: {{name: lb1, state_dir: {state}}}
keepalived: {{pid_file: {state}/keepalived.pid}}
instances:
  - {{name: VI_1, interface: eth0, virtual_router_id: 51, priority: 150,
     vips: [192.0.2.100/32, 2001:db8::100/64]}}
"""


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Config]:
    config = loads(DOC.format(state=tmp_path / "state"), filename="lb1.yaml")
    StateDir(config.node.state_dir).ensure()
    # status knows keepalived by its pid file and a live process named keepalived there
    stand_in = keepalived_stand_in()
    with open(config.keepalived.pid_file, "w", encoding="ascii") as fh:
        fh.write(f"{stand_in.pid}\n")
    try:
        yield config
    finally:
        stand_in.kill()
        stand_in.wait()


def recorded(config: Config, state: str, complete: bool = True, **extra: object) -> None:
    StateDir(config.node.state_dir).write_state(
        "VI_1", {"state": state, "since": 1000.0, "complete": complete, **extra})


def holding(*vips: str) -> MemoryHost:
    host = MemoryHost()
    for vip in vips:
        address, _, prefix = vip.partition("/")
        host.addrs["eth0"].append((ipaddress.ip_address(address), int(prefix)))
    return host


def test_a_master_holding_every_vip_is_healthy(config: Config) -> None:
    recorded(config, "MASTER")
    report = collect(config, host=holding("192.0.2.100/32", "2001:db8::100/64"))
    assert report["healthy"] is True and report["problems"] == []
    assert report["instances"][0]["vips_present"] == ["192.0.2.100/32", "2001:db8::100/64"]


@pytest.mark.parametrize(("state", "vips", "complete", "problem"), [
    ("MASTER", ["192.0.2.100/32"], True, "MASTER but missing 2001:db8::100/64"),
    ("BACKUP", ["192.0.2.100/32"], True, "BACKUP but holding 192.0.2.100/32"),
    (None, ["192.0.2.100/32"], True, "no recorded state but holding 192.0.2.100/32"),
    ("BACKUP", [], False, "last transition incomplete: EPERM"),
])
def test_state_and_reality_disagreeing_is_a_problem(config: Config, state: str | None,
                                                    vips: list[str], complete: bool,
                                                    problem: str) -> None:
    if state is not None:
        recorded(config, state, complete, error="EPERM")
    report = collect(config, host=holding(*vips))
    assert report["problems"] == [problem] and report["healthy"] is False


def test_a_missing_interface_and_a_stopped_keepalived_are_problems(config: Config) -> None:
    os.unlink(config.keepalived.pid_file)
    recorded(config, "BACKUP")
    report = collect(config, host=MemoryHost(links=("eth1",)))
    assert report["problems"] == [
        "interface eth0 does not exist",
        f"keepalived is not running (pid file {config.keepalived.pid_file})"]
    assert report["keepalived"]["running"] is False


def test_a_vip_on_another_device_is_looked_for_there(tmp_path: Path, config: Config) -> None:
    eth1 = loads(DOC.replace("vips: [192.0.2.100/32, 2001:db8::100/64]",
                             "vips: [192.0.2.100/32, {{address: 198.51.100.10/24, "
                             "interface: eth1}}]").format(state=tmp_path / "state"),
                 filename="lb1.yaml")
    recorded(eth1, "MASTER")
    host = MemoryHost(links=("eth0", "eth1"))
    host.addrs["eth0"] += [(ipaddress.ip_address("192.0.2.100"), 32),
                           (ipaddress.ip_address("198.51.100.10"), 24)]   # the wrong device
    report = collect(eth1, host=host)
    inst = report["instances"][0]
    assert inst["vip_devices"] == {"198.51.100.10/24": "eth1"}
    assert inst["problems"] == ["MASTER but missing 198.51.100.10/24"]
    host.addrs["eth1"].append((ipaddress.ip_address("198.51.100.10"), 24))
    assert collect(eth1, host=host)["instances"][0]["problems"] == []
    assert "198.51.100.10/24 on eth1" in format_text(collect(eth1, host=host))
    report = collect(eth1, host=MemoryHost(links=("eth0",)))
    assert "interface eth1 does not exist" in report["instances"][0]["problems"]
