"""Multi-VM tier: the Vagrant topology (vagrant/), booted for real and failed over.

The session fixture runs `vagrant/run up` (libvirt in a network namespace of its own,
the box built or reused, five VMs booted and provisioned by haguard) and always
`vagrant/run down` at the end, even when a test or the boot fails. Tests talk to the
VMs over SSH through `vagrant/run ssh`. Figures (box build, vagrant up, failover) are
printed in a section of their own at the end of the run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest

from haguard.adapters import process
from tests import ledger
from tests.conftest import require

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = os.path.join(REPO, "vagrant", "run")
STATE = "/run/haguard-vagrant"
LOG = "/var/log/haguard-vagrant-up.log"

FIGURES: list[str] = []


def figure(line: str) -> None:
    """A measured figure, printed in the run's summary."""
    FIGURES.append(line)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("multi-VM figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


def load_topology_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("haguard_vagrant_topology",
                                                  os.path.join(REPO, "vagrant", "topology.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def prerequisites() -> str | None:
    if os.geteuid() != 0:
        return ("the multi-VM tier needs root (a network namespace, libvirtd, debootstrap); "
                "run as root")
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun is missing (libvirt's networks need it)"
    for tool in ("apt-get", "ip", "dpkg-query"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


@dataclass
class Result:
    rc: int
    out: str
    err: str


class Cluster:
    """The running topology: commands on its VMs over SSH, and what they observe."""

    def __init__(self, topology: Any) -> None:
        self.topology = topology
        self.layout = topology.build()

    def ssh(self, node: str, command: list[str] | str, timeout: float = 120,
            check: bool = True, sudo: bool = True) -> Result:
        text = command if isinstance(command, str) else shlex.join(command)
        if sudo:
            text = f"sudo sh -c {shlex.quote(text)}"
        proc = subprocess.run([RUN, "ssh", node, text], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(f"{node}: {text} exited {proc.returncode}\n"
                                 f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}")
        return result

    def haguard(self, node: str, *args: str, check: bool = True,
                timeout: float = 120) -> Result:
        return self.ssh(node, ["/usr/bin/haguard", *args], check=check,
                        timeout=timeout)

    def view(self, node: str) -> tuple[str | None, bool]:
        """A director's recorded state and whether it holds the VIP, in one cheap call
        (no Python start on the VM): what the tests poll."""
        config = self.layout.host(node).config
        assert config is not None
        inst = config["instances"][0]
        state_dir = (config.get("node") or {}).get("state_dir") or "/run/haguard"
        vip = str(inst["vips"][0]).split("/")[0] if not isinstance(inst["vips"][0], dict) \
            else str(inst["vips"][0]["address"]).split("/")[0]
        out = self.ssh(node, f"cat {shlex.quote(state_dir)}/{shlex.quote(inst['name'])}.json "
                             f"2>/dev/null || echo '{{}}'; echo ---; "
                             f"ip -j addr show dev {shlex.quote(inst['interface'])}").out
        record, _, addrs = out.partition("---")
        held = any(a.get("local") == vip for link in json.loads(addrs)
                   for a in link.get("addr_info", []))
        return json.loads(record).get("state"), held

    def status(self, node: str) -> tuple[int, dict[str, Any]]:
        """`haguard status --json` on a director: exit code and its report."""
        res = self.haguard(node, "status", "-c", self.topology.NODE_CONFIG, "--json",
                           check=False)
        return res.rc, json.loads(res.out)

    def mac(self, node: str, ifname: str = "eth1") -> str:
        return self.ssh(node, ["cat", f"/sys/class/net/{ifname}/address"],
                        sudo=False).out.strip()

    def addresses(self, node: str, ifname: str) -> list[str]:
        out = self.ssh(node, ["ip", "-j", "addr", "show", "dev", ifname], sudo=False).out
        return [f"{a['local']}/{a['prefixlen']}" for link in json.loads(out)
                for a in link.get("addr_info", [])]

    def holds(self, node: str, vip: str) -> bool:
        host = self.layout.host(node)
        return any(a.split("/")[0] == vip
                   for a in self.addresses(node, host.interfaces[0].ifname))

    def boot_id(self, node: str, timeout: float = 30) -> str:
        return self.ssh(node, ["cat", "/proc/sys/kernel/random/boot_id"], sudo=False,
                        timeout=timeout).out.strip()

    def neighbour(self, vip: str) -> str | None:
        """The client's neighbour entry for the VIP: its MAC, or None."""
        out = self.ssh("client", ["ip", "-j", "neigh", "show", vip], sudo=False).out
        entries = json.loads(out or "[]")
        return entries[0].get("lladdr") if entries else None

    def ipvs_connections(self, node: str) -> int:
        """Connections the director's IPVS has scheduled so far, over all services."""
        out = self.ssh(node, ["ipvsadm", "-L", "-n", "--stats"]).out
        total = 0
        for line in out.splitlines():
            fields = line.split()
            if fields and fields[0] in ("TCP", "UDP", "SCTP", "FWM"):
                total += _count(fields[2])
        return total

    def fetch(self, vip: str, port: int, count: int, timeout: float = 3.0) -> dict[str, Any]:
        """`count` requests from the client, each on a new connection (the lab's client)."""
        res = self.ssh("client", ["env", "PYTHONPATH=/vagrant", "python3", "-m",
                                  "haguard.adapters.httpprobe", "fetch", vip, "--port", str(port),
                                  "--count", str(count), "--timeout", str(timeout)],
                       sudo=False, timeout=60 + count * timeout)
        return json.loads(res.out)


def _count(text: str) -> int:
    """ipvsadm's --stats counters: 123, 4567K, 12M."""
    scale = {"K": 1000, "M": 1000 ** 2, "G": 1000 ** 3}
    if text and text[-1] in scale:
        return int(text[:-1]) * scale[text[-1]]
    return int(text)


def wait_for(what: str, probe: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
    """Poll until probe() is truthy; its value, or a failure naming what never happened
    and what was seen last."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
            last = f"last seen: {value!r}"
        except (AssertionError, subprocess.TimeoutExpired, ValueError) as exc:
            last = f"last error: {str(exc)[-500:]}"
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} ({last})", pytrace=False)


def _times() -> dict[str, str]:
    try:
        with open(os.path.join(STATE, "times"), encoding="ascii") as fh:
            return dict(line.strip().split("=", 1) for line in fh if "=" in line)
    except OSError:
        return {}


def run_up(timeout: float = 1800) -> int:
    """`vagrant/run up`, in a process group of its own: an interrupt (or a time limit)
    ends all of it (vagrant, ssh, the box build) and waits for that, so the `down` that
    follows does not race a `vagrant up` still creating VMs."""
    with open(LOG, "w", encoding="utf-8") as log:
        proc = subprocess.Popen([RUN, "up"], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        return proc.wait(timeout)
    except BaseException:
        process.stop_group(proc)
        raise


@pytest.fixture(scope="session")
def topology() -> ModuleType:
    return load_topology_module()


@pytest.fixture(scope="session")
def cluster(topology: ModuleType) -> Iterator[Cluster]:
    why = prerequisites()
    require(why is None, why or "")
    start = time.monotonic()
    ledger.note("vagrant")
    try:
        returncode = run_up()
        if returncode != 0:
            with open(LOG, encoding="utf-8") as fh:
                tail = fh.read()[-4000:]
            pytest.fail(f"vagrant/run up failed (exit {returncode}); log {LOG}:\n{tail}",
                        pytrace=False)
        times = _times()
        if "box_build_s" in times:
            figure(f"box build (debootstrap to .box): {times['box_build_s']} s")
        else:
            figure("box build: reused the cached box")
        figure(f"vagrant up of {len(topology.build().hosts)} VMs (boot + provisioning): "
               f"{times.get('vagrant_up_s', '?')} s; vagrant/run up in total: "
               f"{time.monotonic() - start:.1f} s")
        yield Cluster(topology)
    finally:
        down_start = time.monotonic()
        subprocess.run([RUN, "down"], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=600)
        figure(f"vagrant/run down: {time.monotonic() - down_start:.1f} s")
