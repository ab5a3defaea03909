"""`haguard lab run --kernel vm`: the operator's one command for the LVS-DR lab on a
kernel with IPVS, run as an operator runs it (its own VM, booted and stopped by it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from tests.conftest import require
from tests.vm.conftest import REPO, vm_prerequisites


def test_lab_run_on_the_vm_kernel_fails_over_with_http_answered_by_both_real_servers() -> None:
    why = vm_prerequisites()
    require(why is None, why or "")
    name = f"t{uuid.uuid4().hex[:6]}"
    proc = subprocess.run(
        [sys.executable, "-m", "haguard", "lab", "run", "--kernel", "vm", "--name", name,
         "-c", os.path.join(REPO, "conf", "lab-dr.yaml"), "--json"],
        capture_output=True, text=True, timeout=1200, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout)
    assert (report["old_master"], report["new_master"]) == ("lb1", "lb2")
    assert report["learned_from_announcement"] is True
    assert report["neighbour_switched_ms"]["192.0.2.100"] is not None
    for when in ("http_before", "http_after"):
        http = report[when]
        assert http["failed"] == 0, (when, http["errors"])
        assert set(http["counts"]) == {"rs1", "rs2"}, (when, http["counts"])
    assert report["old_master_kept_vips"] == []
    # It cleaned up after itself: the VM's log says every namespace went.
    assert f"removed /run/haguard-lab/{name}" in proc.stderr + proc.stdout
