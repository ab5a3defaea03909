"""haguard.adapters.failpoint: a point dies where it is named, and NAME@STATE only on the way there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

HIT = "from haguard.adapters import failpoint; failpoint.hit('before:state_recorded', 'BACKUP'); print('on')"


@pytest.mark.parametrize(("wanted", "dies"), [
    ("before:state_recorded", True),
    ("before:state_recorded@BACKUP", True),
    ("before:state_recorded@MASTER", False),  # a BACKUP re-assertion runs the same step
    ("before:vip_added", False),
])
def test_a_failpoint_kills_only_where_and_on_the_way_it_names(wanted: str, dies: bool) -> None:
    proc = subprocess.run([sys.executable, "-c", HIT], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "HAGUARD_FAILPOINT": wanted})
    assert proc.returncode == (-signal.SIGKILL if dies else 0), proc.stderr
    assert (proc.stdout == "") is dies
