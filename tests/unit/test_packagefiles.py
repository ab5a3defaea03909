"""What the Debian package generates from the code (haguard.cli.packagefiles): every file
debian/ installs, units that run the package's command on its config, and the same unit
body as `haguard agent --unit` writes for a venv."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from haguard.adapters import systemd
from haguard.cli import packagefiles
from haguard.core.config import loads

DEBIAN = Path(__file__).resolve().parents[2] / "debian"


def test_the_build_writes_every_file_debian_installs(tmp_path: Path) -> None:
    assert packagefiles.main([str(tmp_path)]) == 0
    written = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    assert written == set(packagefiles.files())
    rules = (DEBIAN / "rules").read_text(encoding="utf-8")
    listed = (DEBIAN / "haguard.manpages").read_text(encoding="utf-8") + \
        (DEBIAN / "haguard.bash-completion").read_text(encoding="utf-8") + rules
    for name in written:
        assert name.rsplit("/", 1)[-1] in listed, f"debian/ does not install {name}"


def test_packaged_units_run_the_packaged_command_on_the_packaged_config() -> None:
    units = systemd.packaged_units()
    assert "ExecStart=/usr/bin/haguard agent -c /etc/haguard/haguard.yaml\n" in \
        units["haguard-agent.service"]
    assert "ExecStart=/usr/bin/haguard realserver -c /etc/haguard/haguard.yaml up " \
           "--no-persist\n" in units["haguard-realserver.service"]
    assert "KillMode=process" in units["keepalived.service.d/haguard.conf"]


def test_a_venv_agent_unit_differs_from_the_packaged_one_only_in_its_head_and_command() -> None:
    config = loads((DEBIAN / "haguard.yaml").read_text(encoding="utf-8"),
                   filename="/etc/haguard/haguard.yaml")
    venv = systemd.agent_unit(config, python="/opt/haguard/bin/python")
    packaged = systemd.packaged_units()["haguard-agent.service"]
    body = lambda text: text[text.index("[Unit]"):]  # noqa: E731
    assert body(venv).replace("/opt/haguard/bin/python -m haguard", "/usr/bin/haguard") == \
        body(packaged)


@pytest.mark.parametrize("name", ["haguard-agent.service", "haguard-realserver.service"])
def test_systemd_reads_the_packaged_units_without_a_complaint(name: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze (Debian's systemd) checks unit files"
    unit = tmp_path / name
    unit.write_text(systemd.packaged_units()[name], encoding="utf-8")
    result = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True,
                            text=True, check=False)
    # Its command is not installed here; every other line would be about the unit itself.
    complaints = [line for line in result.stderr.splitlines()
                  if "/usr/bin/haguard" not in line and "Command" not in line]
    assert complaints == [], result.stderr
