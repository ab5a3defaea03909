"""Namespace-lab fixtures: real keepalived, real kernel networking, always cleaned up."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from haguard.lab import netns
from haguard.lab.runner import LabRunner, load_lab, teardown
from tests.conftest import lab_prerequisites, require

REPO = Path(__file__).resolve().parents[2]
LAB_YAML = REPO / "conf" / "lab.yaml"


@pytest.fixture(autouse=True)
def _needs_lab() -> None:
    why = lab_prerequisites()
    require(why is None, why or "")


def lab_name() -> str:
    return "t" + secrets.token_hex(3)


class Lab:
    """A running lab for one test; ``runner`` drives it."""

    def __init__(self, tmp_path: Path, text: str | None = None,
                 peer_text: str | None = None) -> None:
        self.name = lab_name()
        paths = []
        for i, body in enumerate((text or LAB_YAML.read_text(), peer_text)):
            if body is None:
                continue
            path = tmp_path / f"director{i}.yaml"
            path.write_text(body)
            paths.append(str(path))
        lab, _ = load_lab(self.name, paths)
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

    def factory(text: str | None = None, peer_text: str | None = None, up: bool = True) -> Lab:
        lab = Lab(tmp_path, text, peer_text)
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
