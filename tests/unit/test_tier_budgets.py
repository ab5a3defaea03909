"""tests/tiers.py: a tier past its time budget fails there and says where the time went."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SLOW_TIER = '''
import time
import pytest

@pytest.fixture
def witness():
    yield
    open("teardown-ran", "w").close()

def test_quick():
    time.sleep(0.5)

def test_hangs(witness):
    try:
        time.sleep(60)
    except Exception:  # what code under test may do; the budget must get through it
        pass

def test_after():
    open("after-ran", "w").close()
'''


def test_a_tier_past_its_budget_fails_the_running_test_and_skips_none_silently(
        tmp_path: Path) -> None:
    tier = tmp_path / "tests" / "slow"
    tier.mkdir(parents=True)
    (tier / "test_slow.py").write_text(SLOW_TIER)
    (tmp_path / "tests" / "other").mkdir()
    (tmp_path / "tests" / "other" / "test_other.py").write_text("def test_fine():\n    pass\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "HAGUARD_TIER_BUDGET_SLOW": "2"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.tiers", "-p",
                           "no:cacheprovider", "-q", "tests"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=50)
    out = proc.stdout
    assert proc.returncode == 1, out
    assert "tier slow ran past its budget of 2 s" in out
    assert "at that moment: tests/slow/test_slow.py::test_hangs (call" in out
    assert "tests/slow/test_slow.py::test_quick" in out.split("where the tier's time went")[1]
    assert "FAILED tests/slow/test_slow.py::test_hangs" in out
    assert "ERROR tests/slow/test_slow.py::test_after - not run: tier slow" in out
    assert (tmp_path / "teardown-ran").exists()  # the failed test's finalizer ran
    assert not (tmp_path / "after-ran").exists()
    assert "1 failed, 2 passed, 1 error" in out.splitlines()[-1]  # other's test still ran
