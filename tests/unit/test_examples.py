"""Every example in conf/ is a valid config: examples must never rot."""

from __future__ import annotations

from pathlib import Path

import pytest

from haguard.core.config import loads
from haguard.core.render import render

CONF = Path(__file__).resolve().parents[2] / "conf"
EXAMPLES = sorted(CONF.glob("*.yaml"))


def test_there_are_examples_for_directors_and_real_servers() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"lab.yaml", "lab-dr.yaml", "lab-tun.yaml", "lab-nat.yaml", "dr-pair-lb1.yaml",
            "realserver-dr.yaml", "ipv6-pair-lb1.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_loads_and_directors_render(path: Path) -> None:
    config = loads(path.read_text(), str(path), str(path))
    if config.instances:
        text = render(config)
        assert text.count("vrrp_instance ") == len(config.instances)
    else:
        assert config.realserver is not None
