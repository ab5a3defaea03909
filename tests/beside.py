"""pytest plugin: the real-kernel tier runs in a pytest of its own, beside the host tiers.

The VM tier is one qemu guest under emulation; the lab, reliability and unit tiers wait
on keepalived's timers more than they compute. Side by side on two cores each takes
about what it takes alone (measured: lab +5 %, vm +10 %), so the whole run is shorter
by the VM tier's length. The multi-VM tier (five guests) still runs alone: it waits for
the VM tier before it starts. What it does before it boots anything (install vagrant and
libvirt, build the .deb, debootstrap the box: minutes of a fresh machine) runs beside
from the start too, at the lowest priority, and the tier waits for it.

Switched on by HAGUARD_TIER_BESIDE=vm (scripts/test sets it). The run's own pytest
collects every test, hands the VM tier's to a child pytest (its own session, so an
operator's Ctrl-C reaches it only through us), and replays the child's reports as
pytest-xdist does for its workers: the progress, the failures and the last line count
them like any other test. An interrupted run interrupts the child, which tears down its
guest as any interrupted run does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Generator
from typing import Any

import pytest

from haguard.adapters import process
from tests import tiers

BESIDE_ENV = "HAGUARD_TIER_BESIDE"
REPORTS_ENV = "HAGUARD_BESIDE_REPORTS"
# Tiers the child's tier waits for before they start (they need the machine to themselves).
ALONE = ("vagrant",)
# The tier whose preparation (vagrant/run prepare) runs beside the others from the start.
PREPARED = "vagrant"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STOP_GRACE_S = 180       # an interrupted child's teardown: powering its guest off


class Background:
    """A process running beside the tests in a session of its own, its output in a log."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None,
                 directory: str | None = None) -> None:
        self.dir = directory or tempfile.mkdtemp(prefix=f"haguard-{name}-beside-")
        self.log = os.path.join(self.dir, "out.log")
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        self.started = time.monotonic()
        self.ended: float | None = None
        # Its end is noted when it happens: the run asks only when it needs the result,
        # often long after (its time would read as the whole wait's).
        threading.Thread(target=self._note_end, name=f"{name}-waiter", daemon=True).start()

    def _note_end(self) -> None:
        self.proc.wait()
        self.ended = time.monotonic()

    def wait(self) -> int:
        code = self.proc.wait()
        if self.ended is None:
            self.ended = time.monotonic()
        return code

    def seconds(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    def interrupt(self) -> None:
        """SIGTERM, as CI's time limit sends it; its group killed if it outstays its grace."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class Child(Background):
    """The child pytest running one tier's tests, and its serialized reports."""

    def __init__(self, tier: str, nodeids: list[str]) -> None:
        self.tier = tier
        self.nodeids = nodeids
        directory = tempfile.mkdtemp(prefix=f"haguard-{tier}-beside-")
        self.reports = os.path.join(directory, "reports.jsonl")
        env = {k: v for k, v in os.environ.items() if k != BESIDE_ENV}
        env[REPORTS_ENV] = self.reports
        super().__init__(tier, [sys.executable, "-m", "pytest", "-p", "tests.tiers",
                                "-p", "tests.beside", "-p", "no:cacheprovider", *nodeids],
                         env, directory)


class Preparation(Background):
    """`vagrant/run prepare` (the host's packages, the .deb, the box): what the multi-VM
    tier would otherwise do first, alone. At the lowest CPU and I/O priority, so the
    tiers it runs beside keep their machine; the VM tier's emulation leaves it a core."""

    def __init__(self) -> None:
        super().__init__("vagrant-prepare", [
            "nice", "-n", "19", "ionice", "-c", "2", "-n", "7",
            os.path.join(REPO, "vagrant", "run"), "prepare"])

    def interrupt(self) -> None:
        """SIGTERM to the whole group: a shell waiting for debootstrap would die alone and
        leave it running. The box build's own trap unmounts and removes its work."""
        process.stop_group(self.proc, STOP_GRACE_S)


class BesideRun:
    """The parent's side: hand the tier's tests to a child, and replay its reports."""

    def __init__(self, tier: str) -> None:
        self.tier = tier
        self.child: Child | None = None
        self.replayed = False
        self.preparation: Preparation | None = None
        self.prepared = False

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:
        if config.option.collectonly:
            return
        if os.geteuid() == 0 and any(tiers.tier_of(item.nodeid) == PREPARED for item in items):
            self.preparation = Preparation()
        mine = [item for item in items if tiers.tier_of(item.nodeid) == self.tier]
        if not mine or len(mine) == len(items):
            return                      # nothing to run beside
        items[:] = [item for item in items if tiers.tier_of(item.nodeid) != self.tier]
        self.child = Child(self.tier, [item.nodeid for item in mine])

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        child = self.child
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if child is not None:
            # Counted from the start, so the progress reads out of every test collected.
            session.testscollected += len(child.nodeids)
            if reporter is not None:
                reporter.write_line(f"tests/{child.tier}: {len(child.nodeids)} tests running "
                                    f"beside the others (pid {child.proc.pid}, log {child.log})")
        if self.preparation is not None and reporter is not None:
            reporter.write_line(f"tests/{PREPARED}: vagrant/run prepare running beside the "
                                f"others (pid {self.preparation.proc.pid}, "
                                f"log {self.preparation.log})")
        result = yield               # an interruption raises here: no replay, no wait
        if child is not None and not self.replayed and not session.shouldstop:
            self.replay(session, child)
        return result

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        tier = tiers.tier_of(item.nodeid)
        child = self.child
        if child is not None and not self.replayed and tier in ALONE:
            self.replay(item.session, child)
        if self.preparation is not None and not self.prepared and tier == PREPARED:
            self.await_preparation(item.session, self.preparation)

    def await_preparation(self, session: pytest.Session, prep: Preparation) -> None:
        """Wait for `vagrant/run prepare` and say how it went. Should it have failed,
        `vagrant/run up` does the same steps again and fails with their message."""
        self.prepared = True
        tiers.pause()               # the wait belongs to no tier's budget
        code = prep.wait()
        with open(prep.log, encoding="utf-8", errors="replace") as fh:
            said = [line.rstrip() for line in fh if line.startswith("vagrant/run:")]
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("")
            reporter.write_line(f"tests/{PREPARED}: vagrant/run prepare ran beside the others: "
                                f"exit {code} after {prep.seconds():.0f} s (log {prep.log})")
            for line in said[-6:]:
                reporter.write_line(f"  {line}")

    def replay(self, session: pytest.Session, child: Child) -> None:
        """Wait for the child, then report its tests here as if they had run here."""
        self.replayed = True
        tiers.pause()               # the wait belongs to no tier's budget
        code = child.wait()
        config = session.config
        hook = config.hook
        reports: list[pytest.TestReport] = []
        if os.path.exists(child.reports):
            with open(child.reports, encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        report = hook.pytest_report_from_serializable(
                            config=config, data=json.loads(line))
                        if isinstance(report, pytest.TestReport):
                            reports.append(report)
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("")
            reporter.write_line(
                f"tests/{child.tier} ran beside the others: exit {code} after "
                f"{child.seconds():.0f} s (log {child.log})")
        seen: set[str] = set()
        for report in reports:
            if report.nodeid not in seen:
                seen.add(report.nodeid)
                hook.pytest_runtest_logstart(nodeid=report.nodeid, location=report.location)
            hook.pytest_runtest_logreport(report=report)
            if report.when == "teardown":
                hook.pytest_runtest_logfinish(nodeid=report.nodeid, location=report.location)
        if code not in (0, pytest.ExitCode.NO_TESTS_COLLECTED) and \
                not any(r.failed for r in reports):
            self.report_silent_failure(config, child, code)
        # A test reported without running (its tier past its budget) has no times.
        timed = [r for r in reports if r.start > 0]
        if timed:
            tiers.ran_beside(child.tier, max(r.stop for r in timed) -
                             min(r.start for r in timed))

    @staticmethod
    def report_silent_failure(config: pytest.Config, child: Child, code: int) -> None:
        """The child ended badly without a failed test to show for it: its log says why."""
        with open(child.log, encoding="utf-8", errors="replace") as fh:
            tail = fh.read()[-6000:]
        nodeid = f"tests/{child.tier}"
        location = (nodeid, None, nodeid)
        report = pytest.TestReport(nodeid=nodeid, location=location, keywords={},
                                   outcome="failed", when="call",
                                   longrepr=f"the {child.tier} tier's pytest exited {code}; "
                                            f"the end of its log ({child.log}):\n{tail}")
        config.hook.pytest_runtest_logstart(nodeid=nodeid, location=location)
        config.hook.pytest_runtest_logreport(report=report)
        config.hook.pytest_runtest_logfinish(nodeid=nodeid, location=location)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """An interrupted run (or one that stopped early) interrupts the child too."""
        for background in (self.child, self.preparation):
            if background is not None:
                background.interrupt()


class ReportWriter:
    """The child's side: every report, serialized for the parent to replay."""

    def __init__(self, config: pytest.Config, path: str) -> None:
        self.config = config
        self.path = path

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data: Any = self.config.hook.pytest_report_to_serializable(config=self.config,
                                                                  report=report)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(data) + "\n")


@pytest.hookimpl
def pytest_configure(config: pytest.Config) -> None:
    # Taken out of the environment: a test's own child pytest (tests/interrupting.py) is
    # neither a beside run's child nor a parent of one unless that test says so.
    reports = os.environ.pop(REPORTS_ENV, None)
    tier = os.environ.pop(BESIDE_ENV, None)
    if reports:
        config.pluginmanager.register(ReportWriter(config, reports), "beside-reports")
    elif tier:
        config.pluginmanager.register(BesideRun(tier), "beside-run")
