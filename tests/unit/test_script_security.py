"""keepalived's script security rule (check_script_secure), as haguard checks the hooks,
the tracked scripts and the agent's commands before keepalived or the agent runs them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from haguard.adapters.keepalived import insecure_path_components


@pytest.mark.parametrize(("mode", "safe"), [
    (0o755, True),
    (0o1777, True),     # sticky, as /tmp: nobody may replace root's files in it
    (0o777, False),     # world-writable without the sticky bit
    (0o775, True),      # group-writable, but the group is root's
    (0o757, False),
])
def test_a_directory_is_safe_as_keepalived_judges_it(tmp_path: Path, mode: int,
                                                    safe: bool) -> None:
    if os.geteuid() != 0:
        pytest.skip("the rule asks for root-owned paths; run as root")
    os.chmod(tmp_path, 0o755)
    directory = tmp_path / "d"
    directory.mkdir()
    os.chmod(directory, mode)
    script = directory / "check"
    script.write_text("#!/bin/sh\n")
    os.chmod(script, 0o755)
    problems = [p for p in insecure_path_components(str(script))
                if p.startswith(str(tmp_path))]
    assert (problems == []) == safe, problems


def test_a_world_writable_script_is_unsafe_whatever_its_directory(tmp_path: Path) -> None:
    script = tmp_path / "check"
    script.write_text("#!/bin/sh\n")
    os.chmod(script, 0o777)
    assert f"{script}: writable by group or others (mode 777)" in \
        insecure_path_components(str(script))
