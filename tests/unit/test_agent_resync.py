"""The agent's start-up resync and journal catch-up against an in-memory host: what it
applies of what it missed, what it re-asserts, and what it forgets. The reliability
tier kills and restarts real agents beside the real keepalived."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from haguard.adapters import files
from haguard.adapters.files import load_config
from haguard.adapters.host import Host
from haguard.adapters.log import get_logger
from haguard.adapters.process import now_key
from haguard.adapters.statefile import StateDir
from haguard.adapters.watch import Fifo
from haguard.app.agent import Agent
from haguard.app.transition import handle_event
from haguard.core.config import Config, loads
from haguard.core.events import Event, OrderKey
from haguard.core.health import DRAINING
from haguard.core.leverrules import RsLever
from tests.unit.memoryhost import MemoryHost

VIPS = ["192.0.2.100/32"]

DOC = """\
node: {{name: lb1, state_dir: {state}}}
keepalived: {{pid_file: {state}/keepalived.pid, vrrp_pid_file: {state}/vrrp.pid}}
agent: {{}}
instances:
  - {{name: VI_1, interface: eth0, virtual_router_id: 51, priority: 150,
     vips: [192.0.2.100/32], announce: {{count: 1, interval_ms: 1, repeat_after_s: 0}}}}
"""


@pytest.fixture(autouse=True)
def _no_syslog(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HAGUARD_SYSLOG_SOCKET", str(tmp_path / "no-syslog"))


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return loads(DOC.format(state=tmp_path / "state"), filename="lb1.yaml")


def agent_on(config: Config, host: MemoryHost) -> Agent:
    agent = Agent(config, get_logger(None, quiet=True))
    agent.host = host  # type: ignore[assignment]  # the seam: Host's calls, in memory
    return agent


def journal(config: Config, key: OrderKey, words: str) -> Path:
    path = Path(config.node.state_dir) / "journal" / f"{key.start_ticks}.{key.pid}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(words + "\n")
    return path


def applied(config: Config, host: MemoryHost, state: str, key: OrderKey) -> None:
    handle_event(config, Event("INSTANCE", "VI_1", state), key, host=host)  # type: ignore[arg-type]


def state_of(config: Config) -> dict[str, object]:
    return StateDir(config.node.state_dir).read_state("VI_1") or {}


def keepalived_running(config: Config) -> None:
    """keepalived's VRRP pid file names a live process (this one)."""
    os.makedirs(config.node.state_dir, exist_ok=True)
    with open(config.keepalived.vrrp_pid_file, "w", encoding="ascii") as fh:
        fh.write(f"{os.getpid()}\n")


def test_a_journaled_event_newer_than_the_record_is_applied_at_start_and_forgotten(
        config: Config) -> None:
    host = MemoryHost()
    applied(config, host, "BACKUP", OrderKey(10, 110))
    keepalived_running(config)
    entry = journal(config, OrderKey(20, 120), "INSTANCE VI_1 MASTER 150")
    agent = agent_on(config, host)
    assert config.agent is not None
    agent._resynchronise(Fifo(config.agent.fifo))
    assert host.vips() == VIPS and state_of(config)["state"] == "MASTER"
    assert not entry.exists()


def test_a_journaled_event_older_than_the_record_is_not_applied(config: Config) -> None:
    host = MemoryHost()
    keepalived_running(config)
    journal(config, OrderKey(5, 105), "INSTANCE VI_1 MASTER 150")   # the FIFO's twin
    applied(config, host, "BACKUP", OrderKey(10, 110))
    host.calls.clear()
    agent = agent_on(config, host)
    assert config.agent is not None
    agent._resynchronise(Fifo(config.agent.fifo))
    assert host.vips() == [] and state_of(config)["state"] == "BACKUP"
    assert "add_vip" not in [c[0] for c in host.calls]
    assert os.listdir(Path(config.node.state_dir) / "journal") == []


def test_a_recorded_master_without_keepalived_is_stopped_at_start(config: Config) -> None:
    host = MemoryHost()
    applied(config, host, "MASTER", OrderKey(10, 110))
    assert host.vips() == VIPS
    agent = agent_on(config, host)
    assert config.agent is not None
    agent._resynchronise(Fifo(config.agent.fifo))   # no keepalived pid file: not running
    assert host.vips() == [] and state_of(config)["state"] == "STOP"


def test_a_recorded_state_is_reasserted_at_start_without_changing_what_is_right(
        config: Config) -> None:
    host = MemoryHost()
    applied(config, host, "MASTER", OrderKey(10, 110))
    keepalived_running(config)
    host.calls.clear()
    agent = agent_on(config, host)
    assert config.agent is not None
    agent._resynchronise(Fifo(config.agent.fifo))
    assert host.vips() == VIPS and "add_vip" not in [c[0] for c in host.calls]
    assert state_of(config)["order"] == [10, 110]   # re-asserted under its own key


def test_catch_up_applies_only_journal_entries_newer_than_what_was_applied(
        config: Config) -> None:
    host = MemoryHost()
    applied(config, host, "BACKUP", OrderKey(10, 110))
    keepalived_running(config)
    later = now_key()
    twin = journal(config, OrderKey(10, 111), "INSTANCE VI_1 MASTER 150")   # same tick
    newer = journal(config, OrderKey(later.start_ticks, 222), "INSTANCE VI_1 MASTER 150")
    agent = agent_on(config, host)
    agent._catch_up_journal()
    assert host.vips() == VIPS and state_of(config)["order"] == [later.start_ticks, 222]
    assert not twin.exists() and not newer.exists()


def test_the_real_host_and_the_memory_host_offer_the_same_calls() -> None:
    wanted = {name for name in vars(Host) if not name.startswith("_")} - {"close"}
    offered = {name for name in vars(MemoryHost) if not name.startswith("_")}
    assert wanted <= offered, sorted(wanted - offered)


RELOAD_DOC = """\
node: {{name: lb1, state_dir: {state}}}
keepalived: {{pid_file: {state}/keepalived.pid, vrrp_pid_file: {state}/vrrp.pid}}
agent: {{}}
instances:
  - {{name: VI_1, interface: eth0, virtual_router_id: 51, priority: 150,
     vips: [192.0.2.100/32]}}
ipvs:
  on_backup: keep
  services:
    - vip: 192.0.2.100
      port: 80
      real_servers: [{servers}]
"""


def test_a_reload_applies_the_new_table_and_publishes_which_file_it_applied(
        tmp_path: Path) -> None:
    # What `ipvs apply` waits for while an agent runs: the agent re-reads the file,
    # writes what changed where it holds the services, and says so with the file's digest.
    path = tmp_path / "lb1.yaml"
    state = tmp_path / "state"

    def write(servers: str) -> str:
        path.write_text(RELOAD_DOC.format(state=state, servers=servers))
        return files.digest(str(path))
    write("{address: 192.0.2.21}")
    host = MemoryHost()
    agent = agent_on(load_config(str(path)), host)
    agent.state_dir.ensure()

    async def main() -> None:
        agent.health = agent._watch_health()
        assert agent.health is not None
        # A drained real server: the service is the agent's to publish (no checks run here).
        agent.health.set_levers([RsLever("tcp 192.0.2.100:80", "192.0.2.21:80", DRAINING,
                                         0.0, "ops", "test")])
        digest = write("{address: 192.0.2.21}, {address: 192.0.2.22}")
        agent._reload()
        published = StateDir(str(state)).read_health() or {}
        assert published["config"]["digest"] == digest
        assert published["config"]["reload"]["ok"] is True
        assert published["config"]["reload"]["changes"][-1].startswith(
            "+ tcp 192.0.2.100:80 -> 192.0.2.22:80")
        assert sorted(str(rs) for s in host.table.table.values()
                      for rs in s.real_servers) == ["192.0.2.21:80", "192.0.2.22:80"]
        # What it published says the kernel has the new table already (the drain too).
        assert [s["written"] for s in published["services"]] == [True]
        assert {str(rs): rs.weight for s in host.table.table.values()
                for rs in s.real_servers} == {"192.0.2.21:80": 0, "192.0.2.22:80": 1}
        # A file it cannot take: the running config and the kernel stay as they were.
        digest = write("{address: 192.0.2.300}")
        agent._reload()
        published = StateDir(str(state)).read_health() or {}
        assert published["config"]["digest"] == digest
        assert published["config"]["reload"]["ok"] is False
        assert "192.0.2.300" in published["config"]["reload"]["error"]
        assert len(next(iter(host.table.table.values())).real_servers) == 2
        if agent.health is not None:
            agent.health.stop()
    asyncio.run(main())


def test_an_older_health_snapshot_written_late_does_not_replace_a_newer_one(
        config: Config) -> None:
    # The periodic snapshot is written by a worker thread; a reload writes its own at
    # once. Should the thread finish last, the reload's (newer) snapshot stays.
    agent = Agent(config, get_logger(None, quiet=True))
    StateDir(config.node.state_dir).ensure()
    older = agent._publish_health({"at": 1.0, "services": []})
    newer = agent._publish_health({"at": 2.0, "services": []})
    newer()
    older()
    assert (StateDir(config.node.state_dir).read_health() or {}).get("at") == 2.0
