"""pytest plugin: wall time and outcome counts per test tier (tests/<tier>/...), and
each tier's time budget.

A tier that runs past its budget fails there, with where its time went, instead of
hanging until CI's outer limit: the test running at that moment fails (SIGALRM raises in
it, so its finalizers still run), and every later test of that tier is reported failed
without running. Budgets are about twice what the tier takes on this project's machine
kind from a fresh state; HAGUARD_TIER_BUDGET_<TIER>=SECONDS overrides one.
"""

from __future__ import annotations

import os
import signal
import time
from collections import defaultdict
from collections.abc import Generator
from typing import Any

import pytest

# The whole suite runs the vm tier beside lab, reliability and unit (tests/beside.py):
# measured there, lab 509 s and vm 877 s from a fresh state (alone: 484 and 677). The
# vagrant tier builds and installs the .deb and runs the packaged lab since 146b1ea:
# 1,152 s from a fresh state (the box built), 797 s with the box cached, on the slower
# of the machines measured; the whole run now builds the box and the .deb beside the
# other tiers (on a faster machine: vagrant 580 s -> 437 s from a fresh state).
BUDGET_S = {"lab": 1000, "reliability": 360, "unit": 120, "vagrant": 2200, "vm": 1800}

_first: dict[str, float] = {}
_last: dict[str, float] = {}
_counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
_beside: set[str] = set()          # tiers that ran in a pytest of their own (tests/beside.py)


class TierOverBudget(BaseException):
    """The tier has used up its time budget (not an Exception: no `except Exception` in
    the code under test may swallow it)."""


def tier_of(nodeid: str) -> str:
    """The tier a test belongs to: tests/<tier>/...."""
    parts = nodeid.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "tests" else parts[0]


def budget(tier: str) -> float | None:
    override = os.environ.get(f"HAGUARD_TIER_BUDGET_{tier.upper()}")
    if override:
        return float(override)
    return BUDGET_S.get(tier)


class Budgets:
    """Which tier and phase is running, what each test cost, and the alarm."""

    def __init__(self) -> None:
        self.tier: str | None = None
        self.nodeid = ""
        self.phase = ""
        self.phase_started = 0.0
        self.spent: dict[str, dict[str, float]] = defaultdict(dict)  # tier -> nodeid -> s
        self.over: dict[str, str] = {}  # tier -> the message

    def start(self, nodeid: str) -> None:
        tier = tier_of(nodeid)
        if tier != self.tier:
            self.tier = tier
            limit = budget(tier)
            signal.setitimer(signal.ITIMER_REAL, limit or 0)

    def report(self, tier: str) -> str:
        limit = budget(tier)
        used = time.monotonic() - _first[tier]
        spent = dict(self.spent[tier])
        if self.nodeid and tier_of(self.nodeid) == tier:
            spent[self.nodeid] = spent.get(self.nodeid, 0.0) + time.monotonic() - self.phase_started
        slowest = sorted(spent.items(), key=lambda kv: -kv[1])[:8]
        lines = [f"tier {tier} ran past its budget of {limit:.0f} s ({used:.0f} s so far, "
                 f"{len(spent)} test(s) started); at that moment: {self.nodeid} "
                 f"({self.phase}, {time.monotonic() - self.phase_started:.0f} s in that phase)",
                 "where the tier's time went (setup + call + teardown, slowest first):"]
        lines += [f"  {s:7.1f} s  {nodeid}" for nodeid, s in slowest]
        return "\n".join(lines)

    def alarm(self, signum: int, frame: Any) -> None:
        tier = self.tier
        if tier is None or tier in self.over:
            return
        self.over[tier] = self.report(tier)
        # A finalizer cut short would leave things behind: let a teardown finish, and
        # fail the tier's next test instead.
        if self.phase in ("setup", "call"):
            raise TierOverBudget(self.over[tier])


_budgets = Budgets()


def pause() -> None:
    """Between tiers, for a wait that is no tier's: the alarm off until the next test."""
    signal.setitimer(signal.ITIMER_REAL, 0)
    _budgets.tier = None


def ran_beside(tier: str, seconds: float) -> None:
    """``tier`` ran in another pytest, its first test's start to its last test's end
    ``seconds`` apart: its line in the table says so."""
    _beside.add(tier)
    _first.setdefault(tier, time.monotonic())
    _last[tier] = _first[tier] + seconds


@pytest.hookimpl
def pytest_configure(config: pytest.Config) -> None:
    signal.signal(signal.SIGALRM, _budgets.alarm)


@pytest.hookimpl
def pytest_runtest_logstart(nodeid: str, location: Any) -> None:
    _first.setdefault(tier_of(nodeid), time.monotonic())
    _budgets.start(nodeid)


def _phase(item: pytest.Item, phase: str) -> Generator[None, None, None]:
    _budgets.nodeid, _budgets.phase, _budgets.phase_started = item.nodeid, phase, time.monotonic()
    try:
        yield
    finally:
        tier = tier_of(item.nodeid)
        spent = _budgets.spent[tier]
        spent[item.nodeid] = spent.get(item.nodeid, 0.0) + time.monotonic() - _budgets.phase_started
        _budgets.phase = ""


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """A test of a tier past its budget is reported failed without running at all (its
    fixtures neither set up nor, beyond what the session's end tears down, kept)."""
    over = _budgets.over.get(tier_of(item.nodeid))
    if over is None:
        return None
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    report = pytest.TestReport(nodeid=item.nodeid, location=item.location, keywords={},
                               outcome="failed", longrepr=f"not run: {over}", when="setup")
    item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    yield from _phase(item, "setup")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    yield from _phase(item, "call")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    yield from _phase(item, "teardown")


@pytest.hookimpl
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    tier = tier_of(report.nodeid)
    if tier not in _beside:
        _last[tier] = time.monotonic()
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _counts[tier][report.outcome] += 1


@pytest.hookimpl
def pytest_terminal_summary(terminalreporter: Any) -> None:
    signal.setitimer(signal.ITIMER_REAL, 0)
    if not _first:
        return
    terminalreporter.section("wall time per tier")
    for tier in sorted(_first, key=lambda t: _first[t]):
        counts = ", ".join(f"{n} {k}" for k, n in sorted(_counts[tier].items()))
        limit = budget(tier)
        of = f" of {limit:.0f} s" if limit else ""
        terminalreporter.write_line(
            f"{tier:<12} {_last.get(tier, _first[tier]) - _first[tier]:8.1f} s{of}   ({counts})"
            + ("   beside the others" if tier in _beside else ""))
    for message in _budgets.over.values():
        terminalreporter.write_line("")
        terminalreporter.write_line(message, red=True)
