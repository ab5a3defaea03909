"""Reliability fixtures: the namespace lab with `haguard agent` on both directors."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from haguard.lab import netns
from tests.conftest import lab_prerequisites, require
from tests.lab.conftest import Lab

VIP4 = "192.0.2.100"


class AgentLab(Lab):
    """A lab whose directors run `haguard agent`; helpers for its ground truth."""

    def vips_on(self, node: str) -> list[str]:
        return [a for a in self.addresses(node) if a.split("/")[0] in self.lab.vips]

    def record(self, node: str, instance: str = "VI_1") -> dict[str, Any]:
        state_dir = self.runner.record["directors"][node]["state_dir"]
        try:
            with open(f"{state_dir}/{instance}.json", encoding="utf-8") as fh:
                return json.load(fh)
        except FileNotFoundError:
            return {}

    def fifo(self, node: str) -> str:
        return os.path.join(os.path.dirname(self.config(node)), "notify.fifo")

    def agent_pid(self, node: str) -> int | None:
        return self.runner.record["pids"].get(f"{node}:agent")

    def keepalived_pids(self, node: str) -> tuple[int, int | None]:
        """keepalived's parent and VRRP child."""
        workdir = os.path.dirname(self.config(node))
        parent = self.runner.record["pids"][node]
        try:
            with open(f"{workdir}/keepalived-vrrp.pid", encoding="ascii") as fh:
                child: int | None = int(fh.read().strip())
        except (OSError, ValueError):
            child = None
        return parent, child

    def agent_log(self, node: str) -> list[dict[str, Any]]:
        path = self.runner.record["directors"][node]["log_file"]
        out = []
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def announcers(self, node: str) -> list[int]:
        """Re-announcer processes running in ``node``'s namespace."""
        found = []
        for pid in netns.pids_in(self.ns(node)):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    if b"announce-loop" in fh.read():
                        found.append(pid)
            except OSError:
                continue
        return found

    def client_mac_for(self, vip: str) -> str | None:
        out = netns.run(["ip", "-n", self.lab.client.namespace, "neigh", "show", vip]).stdout
        words = out.split()
        return words[words.index("lladdr") + 1] if "lladdr" in words else None


@pytest.fixture
def agent_lab(tmp_path: Path) -> Iterator[Callable[..., AgentLab]]:
    why = lab_prerequisites()
    require(why is None, why or "")
    made: list[AgentLab] = []

    def factory(text: str | None = None, up: bool = True) -> AgentLab:
        lab = AgentLab(tmp_path, text, None, agent=True)
        made.append(lab)
        if up:
            lab.runner.up()
            lab.runner.wait_for_master()
        return lab

    yield factory
    for lab in made:
        lab.runner.down()
        leftover = [n for n in os.listdir("/run/netns") if n.startswith(f"hg-{lab.name}-")] \
            if os.path.isdir("/run/netns") else []
        assert not leftover, f"namespaces left behind: {leftover}"
