"""demote and promote against an in-memory host: what they write for keepalived (the
track files), what they record and audit, and when they refuse or undo. The lab tier
pulls the same levers on the real keepalived."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from haguard.adapters import leverfiles
from haguard.adapters.statefile import StateDir
from haguard.app import levers
from haguard.core.config import Config, loads
from haguard.core.leverrules import Refused
from haguard.core.render import lever_files
from haguard.core.vrrp import Advert
from haguard.errors import OperationFailed
from tests.unit.memoryhost import MemoryHost
from tests.unit.standin import keepalived_stand_in

DOC = """\
node: {{name: lb1, state_dir: {tmp}/state, lever_dir: {tmp}/levers}}
keepalived: {{pid_file: {tmp}/keepalived.pid}}
instances:
  - {{name: VI_1, interface: eth0, virtual_router_id: 51, priority: 100,
     nopreempt: {nopreempt}, state: BACKUP, vips: [192.0.2.100/32]}}
"""


@pytest.fixture(autouse=True)
def _no_syslog(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HAGUARD_SYSLOG_SOCKET", str(tmp_path / "no-syslog"))


def load(tmp_path: Path, nopreempt: bool = False) -> Config:
    return loads(DOC.format(tmp=tmp_path, nopreempt=str(nopreempt).lower()),
                 filename="lb1.yaml")


@pytest.fixture
def keepalived(tmp_path: Path) -> Iterator[None]:
    """A live process named keepalived in the pid file: what the levers check for."""
    stand_in = keepalived_stand_in()
    (tmp_path / "keepalived.pid").write_text(f"{stand_in.pid}\n")
    try:
        yield
    finally:
        stand_in.kill()
        stand_in.wait()


def master_here(config: Config) -> None:
    StateDir(config.node.state_dir).ensure()
    StateDir(config.node.state_dir).write_state("VI_1", {"state": "MASTER", "complete": True})


def advert(priority: int, source: str = "192.0.2.2") -> Advert:
    return Advert(interface="eth0", source=source, source_mac="02:00:00:00:00:99", vrid=51,
                  priority=priority, version=2, advert_int_s=1.0, addresses=(),
                  outgoing=False, at=0.0)


def tracks(config: Config) -> tuple[int, int]:
    inst = config.instances[0]
    demote, priority = lever_files(config, inst)
    return leverfiles.read_track(demote), leverfiles.read_track(priority)


def audited(config: Config) -> list[str]:
    path = Path(config.node.lever_dir) / "audit.log"
    return [json.loads(line)["action"] for line in path.read_text().splitlines()]


def test_demote_with_a_peer_taking_over_keeps_the_lever_and_audits_it(
        tmp_path: Path, keepalived: None) -> None:
    config = load(tmp_path)
    master_here(config)
    host = MemoryHost()
    host.adverts.append(advert(100))
    lines = levers.demote(config, None, reason="kernel update", ttl_s=None, wait=False,
                          timeout=1, force=False, host=host)
    assert lines == ["VI_1: demoted; 192.0.2.2 took over (priority 100)"]
    assert tracks(config) == (1, 0)
    assert [(lv.instance, lv.kind) for lv in levers.read_levers(config)] == [("VI_1", "demote")]
    assert audited(config) == ["demote"]


def test_demote_that_no_peer_answers_is_undone_and_fails(tmp_path: Path,
                                                         keepalived: None) -> None:
    config = load(tmp_path)
    master_here(config)
    with pytest.raises(OperationFailed, match="no peer took over VRID 51"):
        levers.demote(config, None, reason="kernel update", ttl_s=None, wait=False,
                      timeout=1, force=False, host=MemoryHost())
    assert tracks(config) == (0, 0) and levers.read_levers(config) == []
    assert audited(config) == ["demote", "demote_undone"]


def test_a_forced_demote_stays_although_no_peer_answers(tmp_path: Path,
                                                        keepalived: None) -> None:
    config = load(tmp_path)
    master_here(config)
    lines = levers.demote(config, None, reason="drain", ttl_s=None, wait=False, timeout=1,
                          force=True, host=MemoryHost())
    assert lines[-1].startswith("warning: VI_1: no peer took over (forced)")
    assert tracks(config) == (1, 0)


def test_demote_without_keepalived_refuses_and_writes_nothing(tmp_path: Path) -> None:
    config = load(tmp_path)
    with pytest.raises(OperationFailed, match="keepalived is not running"):
        levers.demote(config, None, reason="x", ttl_s=None, wait=False, timeout=1,
                      force=False, host=MemoryHost())
    assert not Path(config.node.lever_dir).exists()


def test_demote_wait_returns_once_the_vips_answer_from_elsewhere(tmp_path: Path,
                                                                 keepalived: None) -> None:
    config = load(tmp_path)
    master_here(config)
    host = MemoryHost()
    host.adverts.append(advert(100))
    host.arp_answers["192.0.2.100"] = ["02:00:00:00:00:99"]
    lines = levers.demote(config, None, reason="x", ttl_s=None, wait=True, timeout=1,
                          force=False, host=host)
    assert lines[-1] == "VI_1: the VIPs answer from the new MASTER"


def test_promote_raises_the_priority_just_above_the_master(tmp_path: Path,
                                                           keepalived: None) -> None:
    config = load(tmp_path)
    host = MemoryHost()
    host.adverts.append(advert(150))
    lines = levers.promote(config, None, reason="rebalance", wait=False, timeout=1,
                           force=False, host=host)
    assert lines == ["VI_1: priority raised by 51 to 151 (the MASTER 192.0.2.2 advertises 150)"]
    assert tracks(config) == (0, 51)
    assert audited(config) == ["promote"]


def test_promote_with_nopreempt_refuses_and_changes_no_track_file(tmp_path: Path,
                                                                  keepalived: None) -> None:
    config = load(tmp_path, nopreempt=True)
    host = MemoryHost()
    host.adverts.append(advert(150))
    with pytest.raises(Refused, match="nopreempt"):
        levers.promote(config, None, reason="rebalance", wait=False, timeout=1, force=False,
                       host=host)
    assert tracks(config) == (0, 0)
    assert audited(config) == ["promote_refused"]
