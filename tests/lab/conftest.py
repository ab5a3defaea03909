"""Namespace-lab fixtures: real keepalived, real kernel networking, always cleaned up."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from haguard.app.hooks import install
from haguard.lab import netns
from haguard.lab.runner import LabRunner, load_lab, read_jsonl
from tests import ledger
from tests.conftest import lab_prerequisites, require

REPO = Path(__file__).resolve().parents[2]
LAB_YAML = REPO / "conf" / "lab.yaml"
# A hook's fork time comes from its start in clock ticks (10 ms): it may read that much
# earlier than the moment itself.
TICK_S = 0.01


def master_hook_forked(lab, node: str, since: float) -> float | None:
    """When keepalived forked ``node``'s first MASTER hook after ``since`` (from its log):
    keepalived's decision, without the hook's own start-up."""
    log = read_jsonl(lab.runner.record["directors"][node]["log_file"])
    return next((e["forked_at"] for e in log if e.get("event") == "notify_received"
                 and e.get("state") == "MASTER" and e.get("forked_at", 0) >= since - TICK_S),
                None)


@pytest.fixture(autouse=True)
def _needs_lab() -> None:
    why = lab_prerequisites()
    require(why is None, why or "")


def lab_name() -> str:
    """A fresh tag for a lab or namespace, recorded in the run's ledger before any use."""
    tag = "t" + secrets.token_hex(3)
    if os.geteuid() == 0:
        ledger.note("tag", name=tag)
    return tag


class Lab:
    """A running lab for one test; ``runner`` drives it."""

    def __init__(self, tmp_path: Path, text: str | None = None,
                 peer_text: str | None = None, agent: bool = False) -> None:
        self.name = lab_name()
        paths = []
        for i, body in enumerate((text or LAB_YAML.read_text(), peer_text)):
            if body is None:
                continue
            path = tmp_path / f"director{i}.yaml"
            path.write_text(body)
            paths.append(str(path))
        lab, _ = load_lab(self.name, paths, agent=agent)
        self.runner = LabRunner(lab, paths)
        self.lab = lab

    def ns(self, node: str) -> str:
        return self.runner.record["directors"][node]["namespace"]

    def config(self, node: str) -> str:
        return self.runner.record["directors"][node]["config"]

    def addresses(self, node: str, ifname: str = "eth0") -> list[str]:
        out = netns.run(["ip", "-n", self.ns(node), "-o", "addr", "show", "dev", ifname]).stdout
        return [line.split()[3] for line in out.splitlines()
                if "scope link" not in line]

    def haguard(self, node: str, *args: str, env: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess[str]:
        """Run `haguard ARGS` inside a director's namespace, as its hook would."""
        return subprocess.run(netns.ns_exec(self.ns(node), sys.executable, "-m", "haguard", *args),
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, **(env or {})})


@pytest.fixture
def make_lab(tmp_path: Path) -> Iterator[object]:
    made: list[Lab] = []

    def factory(text: str | None = None, peer_text: str | None = None, up: bool = True,
                agent: bool = False) -> Lab:
        lab = Lab(tmp_path, text, peer_text, agent)
        made.append(lab)
        if up:
            lab.runner.up()
        return lab

    yield factory
    for lab in made:
        lab.runner.down()
        leftover = [n for n in os.listdir("/run/netns") if n.startswith(f"hg-{lab.name}-")] \
            if os.path.isdir("/run/netns") else []
        assert not leftover, f"namespaces left behind: {leftover}"


VIPS = ("192.0.2.100/32", "2001:db8::100/64")

CONFIG = """\
node: {{name: lb1, state_dir: {state}, log_file: {log}}}
keepalived: {{hooks_dir: {hooks}, pid_file: {state}/keepalived.pid}}
sysctl: {{net.ipv4.ip_nonlocal_bind: 1}}
instances:
  - name: VI_1
    interface: eth0
    virtual_router_id: 51
    priority: 150
    vips: [192.0.2.100/32, {{address: 2001:db8::100/64, label: eth0:0}}]
    announce: {{count: 1, interval_ms: 0, repeat_after_s: 0}}
"""


class Node:
    """One namespace with eth0 (a veth whose peer stays in it too) and the hooks."""

    def __init__(self, tmp_path: Path) -> None:
        self.name = f"hg-{lab_name()}-node"
        self.root = f"/run/haguard-lab/{self.name}"
        self.hooks = f"{self.root}/hooks"
        self.state = f"{self.root}/state"
        self.log = f"{self.root}/haguard.log"
        self.config = tmp_path / "lb1.yaml"
        self.config.write_text(CONFIG.format(state=self.state, log=self.log, hooks=self.hooks))
        netns.create(self.name)
        netns.run(["ip", "-n", self.name, "link", "add", "eth0", "type", "veth", "peer",
                   "name", "peer0"])
        netns.link_up(self.name, "eth0")
        netns.link_up(self.name, "peer0")
        install(self.hooks)

    def hook(self, *args: str, name: str = "notify") -> list[str]:
        return netns.ns_exec(self.name, f"{self.hooks}/{name}", *args)

    def vips(self) -> list[str]:
        out = netns.run(["ip", "-n", self.name, "-o", "addr", "show", "dev", "eth0"]).stdout
        return sorted(w.split()[3] for w in out.splitlines() if w.split()[3] in VIPS)

    def record(self) -> dict:
        with open(f"{self.state}/VI_1.json", encoding="utf-8") as fh:
            return json.load(fh)

    def close(self) -> None:
        netns.kill_all_in(self.name)
        netns.delete(self.name)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path)
    try:
        yield n
    finally:
        n.close()
    assert not netns.exists(n.name)
