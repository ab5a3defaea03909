"""`haguard lab run` on an IPVS config, inside the real kernel, as an operator runs it."""

from __future__ import annotations

import json
import os

from haguard.lab.vm import VM
from tests.vm.conftest import REPO


def test_lab_run_fails_over_an_lvs_dr_pair_and_http_keeps_working(vm: VM) -> None:
    result = vm.run([vm.python, "-m", "haguard", "lab", "run", "--name", "vrun", "--json",
                     "-c", os.path.join(REPO, "conf", "lab-dr.yaml")], timeout=1800)
    assert result.returncode == 0, result.stdout + result.stderr
    timeline = json.loads(result.stdout)
    assert timeline["learned_from_announcement"] is True
    assert timeline["old_master"] == "lb1" and timeline["new_master"] == "lb2"
    assert timeline["http_before"]["failed"] == 0 and timeline["http_after"]["failed"] == 0
    assert set(timeline["http_after"]["counts"]) == {"rs1", "rs2"}
    assert not vm.run(["ls", "/run/haguard-lab/vrun"]).returncode == 0  # cleaned up
