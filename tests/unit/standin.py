"""A live process that keepalived's pid file can name: what status and the levers check
for (a process whose command is keepalived), without running keepalived."""

from __future__ import annotations

import subprocess

from haguard.adapters import process
from tests.conftest import wait_until


def keepalived_stand_in() -> subprocess.Popen[bytes]:
    """`sleep 60` named keepalived, once it has exec'd: until then the child shows its
    parent's command line (a check made at that moment failed under load)."""
    proc = subprocess.Popen(["keepalived", "60"], executable="/bin/sleep")
    wait_until(lambda: process.cmdline(proc.pid)[:1] == ["keepalived"], 10,
               "the stand-in to exec", step=0.01)
    return proc
