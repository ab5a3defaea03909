"""The agent raises its open-files limit to one per check and more (an agent checking
10,000 real servers under the default 1,024 failed every check, then died: EMFILE)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import resource, sys
from haguard.adapters.process import raise_open_files
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (256, 600))   # a low limit, as a service has
print(raise_open_files(int(sys.argv[1])), resource.getrlimit(resource.RLIMIT_NOFILE))
"""


def run(wanted: int) -> str:
    return subprocess.run([sys.executable, "-c", SCRIPT, str(wanted)], capture_output=True,
                          text=True, check=True, cwd=REPO).stdout.strip()


def test_the_soft_limit_is_raised_to_what_is_wanted() -> None:
    assert run(500) == "(500, 600) (500, 600)"


def test_the_hard_limit_caps_it_and_a_higher_soft_limit_stays() -> None:
    assert run(5000) == "(600, 600) (600, 600)"
    assert run(100) == "(256, 600) (256, 600)"
