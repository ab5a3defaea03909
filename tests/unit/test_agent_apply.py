"""`ipvs apply` while an agent runs (haguard.app.agentapply): the agent is the table's one
writer, so the command signals it (SIGHUP) and waits for its word, and writes nothing
itself. The agent here is this test process: it holds the agent lock and answers SIGHUP
the way the agent publishes (health.json's ``config``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from haguard.adapters import files
from haguard.adapters.files import load_config
from haguard.adapters.locks import PidLock
from haguard.adapters.statefile import StateDir
from haguard.app import agentapply
from haguard.core.config import Config
from haguard.errors import BadInput, OperationFailed

REPO = Path(__file__).resolve().parents[2]
DOC = """\
node: {{name: lb1, state_dir: {tmp}/state, lever_dir: {tmp}/levers}}
keepalived: {{pid_file: {tmp}/k.pid, vrrp_pid_file: {tmp}/v.pid}}
agent: {{fifo: {tmp}/state/notify.fifo}}
instances:
  - {{name: VI_1, interface: eth0, virtual_router_id: 51, priority: 150,
     vips: [192.0.2.100/32]}}
ipvs:
  services:
    - vip: 192.0.2.100
      port: 80
      real_servers: [{{address: 192.0.2.21}}]
"""


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "lb1.yaml"
    path.write_text(DOC.format(tmp=tmp_path))
    return load_config(str(path))


@pytest.fixture
def agent(config: Config) -> Iterator[Callable[[Callable[[], dict[str, Any] | None]], None]]:
    """Hold the agent lock as an agent does; ``answer(publish)`` sets what a SIGHUP
    publishes (None: nothing, as a stuck agent)."""
    lock = PidLock(config.agent_lock)
    StateDir(config.node.state_dir).ensure()
    assert lock.acquire() is None
    answers: list[Callable[[], dict[str, Any] | None]] = []
    seen: list[int] = []

    def on_hup(signum: int, frame: Any) -> None:
        seen.append(signum)
        loaded = answers[-1]() if answers else None
        if loaded is not None:
            StateDir(config.node.state_dir).write_health({"services": [], "config": loaded})
    previous = signal.signal(signal.SIGHUP, on_hup)
    try:
        yield answers.append
    finally:
        signal.signal(signal.SIGHUP, previous)
        lock.release()


def test_the_running_agent_is_found_by_its_lock(config: Config, agent: Any) -> None:
    assert agentapply.agent_pid(config) == os.getpid()


def test_apply_waits_for_the_agent_to_have_applied_this_very_file(
        config: Config, agent: Any) -> None:
    agent(lambda: {"path": config.path, "digest": files.digest(config.path),
                   "reload": {"ok": True, "error": None, "changes": ["+ tcp 192.0.2.100:80"],
                              "at": 1.0}})
    assert agentapply.apply(config, os.getpid(), wait_s=5) == ["+ tcp 192.0.2.100:80"]


def test_a_reload_the_agent_refused_is_a_failure_with_its_reason(
        config: Config, agent: Any) -> None:
    agent(lambda: {"path": config.path, "digest": files.digest(config.path),
                   "reload": {"ok": False, "error": "instances[0].priority: 300 is out of "
                              "range (1-254) (kept the running config)", "changes": [],
                              "at": 1.0}})
    with pytest.raises(OperationFailed, match="out of range"):
        agentapply.apply(config, os.getpid(), wait_s=5)


def test_an_agent_that_does_not_answer_is_a_failure_after_the_wait(
        config: Config, agent: Any) -> None:
    agent(lambda: None)
    with pytest.raises(OperationFailed, match="has not said it applied it within 0.3 s"):
        agentapply.apply(config, os.getpid(), wait_s=0.3)


def test_an_answer_about_an_older_version_of_the_file_is_not_taken(
        config: Config, agent: Any) -> None:
    agent(lambda: {"path": config.path, "digest": "0" * 64,
                   "reload": {"ok": True, "error": None, "changes": [], "at": 1.0}})
    with pytest.raises(OperationFailed, match="has not said"):
        agentapply.apply(config, os.getpid(), wait_s=0.3)


def test_an_agent_running_another_file_is_named_and_not_signalled(
        config: Config, agent: Any, tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(Path(config.path).read_text())
    StateDir(config.node.state_dir).write_health(
        {"services": [], "config": {"path": str(other), "digest": "x", "reload": None}})
    hups: list[int] = []
    agent(lambda: hups.append(1) or None)    # type: ignore[func-returns-value]
    with pytest.raises(BadInput, match=f"reads {other}"):
        agentapply.apply(config, os.getpid(), wait_s=0.3)
    assert hups == []


def test_apply_only_with_a_running_agent_is_refused_with_what_to_do(
        config: Config, tmp_path: Path) -> None:
    # The agent: another process holding the lock.
    StateDir(config.node.state_dir).ensure()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from haguard.adapters.locks import PidLock;"
         "assert PidLock(sys.argv[1]).acquire() is None; print('held', flush=True); "
         "time.sleep(30)", config.agent_lock], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        proc = subprocess.run([sys.executable, "-m", "haguard", "ipvs", "apply", "-c",
                               config.path, "--only", "tcp 192.0.2.100:80"],
                              capture_output=True, text=True, timeout=60, cwd=REPO)
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 2, proc.stderr
    assert f"a haguard agent (pid {holder.pid}) runs on this node" in proc.stderr
