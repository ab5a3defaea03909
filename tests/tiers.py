"""pytest plugin: wall time and outcome counts per test tier (tests/<tier>/...)."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import pytest

_first: dict[str, float] = {}
_last: dict[str, float] = {}
_counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))


def _tier(nodeid: str) -> str:
    parts = nodeid.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "tests" else parts[0]


@pytest.hookimpl
def pytest_runtest_logstart(nodeid: str, location: Any) -> None:
    _first.setdefault(_tier(nodeid), time.monotonic())


@pytest.hookimpl
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    tier = _tier(report.nodeid)
    _last[tier] = time.monotonic()
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _counts[tier][report.outcome] += 1


@pytest.hookimpl
def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _first:
        return
    terminalreporter.section("wall time per tier")
    for tier in sorted(_first, key=_first.get):
        counts = ", ".join(f"{n} {k}" for k, n in sorted(_counts[tier].items()))
        terminalreporter.write_line(
            f"{tier:<12} {_last.get(tier, _first[tier]) - _first[tier]:8.1f} s   ({counts})")
