"""`haguard realserver` on a real network namespace: the runbook's lo:1 done right."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from haguard.lab import netns
from tests.lab.conftest import lab_name

CONFIG = "node: {{name: rs1, state_dir: {state}}}\nrealserver: {{mode: dr, vips: [{vips}]}}\n"


@pytest.fixture
def host(tmp_path: Path) -> Iterator[str]:
    name = f"hg-{lab_name()}-rs"
    netns.create(name)
    try:
        yield name
    finally:
        netns.kill_all_in(name)
        netns.delete(name)


def realserver(ns: str, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(netns.ns_exec(ns, sys.executable, "-m", "haguard", "realserver", "-c",
                                        str(config), *args),
                          capture_output=True, text=True, timeout=60)


def lo(ns: str) -> list[str]:
    out = netns.run(["ip", "-n", ns, "-o", "addr", "show", "dev", "lo"]).stdout
    return sorted(line.split()[3] for line in out.splitlines() if "192.0.2" in line or "2001:db8" in line)


def test_up_puts_host_vips_on_lo_hardens_arp_and_writes_the_boot_unit(host: str,
                                                                      tmp_path: Path) -> None:
    config = tmp_path / "rs1.yaml"
    config.write_text(CONFIG.format(state=tmp_path / "state", vips='192.0.2.100, "2001:db8::100"'))
    before = realserver(host, config, "status", "--json", "--unit-dir", str(tmp_path / "units"))
    assert before.returncode == 1
    assert "192.0.2.100 is not on lo" in json.loads(before.stdout)["problems"]
    up = realserver(host, config, "up", "--unit-dir", str(tmp_path / "units"))
    assert up.returncode == 0, up.stderr
    assert lo(host) == ["192.0.2.100/32", "2001:db8::100/128"]
    for key, value in (("net.ipv4.conf.all.arp_ignore", "1"),
                       ("net.ipv4.conf.all.arp_announce", "2")):
        got = netns.run(netns.ns_exec(host, "sysctl", "-n", key)).stdout.strip()
        assert got == value
    unit = (tmp_path / "units" / "haguard-realserver.service").read_text()
    assert f"-m haguard realserver -c {config} up --no-persist" in unit
    assert "WantedBy=multi-user.target" in unit
    status = realserver(host, config, "status", "--unit-dir", str(tmp_path / "units"))
    assert status.returncode == 0 and status.stdout.rstrip().endswith("healthy")
    again = realserver(host, config, "up", "--no-persist")
    assert again.returncode == 0 and lo(host) == ["192.0.2.100/32", "2001:db8::100/128"]
    down = realserver(host, config, "down")
    assert down.returncode == 0 and lo(host) == []


def test_status_flags_the_runbooks_slash_24_on_lo_and_up_fixes_it(host: str,
                                                                   tmp_path: Path) -> None:
    config = tmp_path / "rs1.yaml"
    config.write_text(CONFIG.format(state=tmp_path / "state", vips="192.0.2.100"))
    netns.run(["ip", "-n", host, "addr", "add", "192.0.2.100/24", "dev", "lo", "label", "lo:1"])
    status = realserver(host, config, "status", "--json", "--unit-dir", str(tmp_path))
    assert status.returncode == 1
    assert any(p.startswith("192.0.2.100/24 on lo: a real server must hold the VIP as a host "
                            "address (/32)") for p in json.loads(status.stdout)["problems"])
    assert realserver(host, config, "up", "--no-persist").returncode == 0
    assert lo(host) == ["192.0.2.100/32"]


def test_a_vip_with_a_subnet_prefix_is_refused_before_anything_changes(host: str,
                                                                        tmp_path: Path) -> None:
    config = tmp_path / "rs1.yaml"
    config.write_text(CONFIG.format(state=tmp_path / "state", vips="192.0.2.100/24"))
    proc = realserver(host, config, "up", "--no-persist")
    assert proc.returncode == 2
    assert "'192.0.2.100/24': a real server holds the VIP as a host address (/32)" in proc.stderr
    assert "lo:1 netmask 255.255.255.0 mistake" in proc.stderr
    assert lo(host) == []
