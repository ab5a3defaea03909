"""Real-server levers (`haguard ipvs disable | drain | enable`) where this node does not
hold the service (``on_backup: remove`` and not MASTER): recorded, audited, part of the
effective table, with the kernel left alone. The VM tier proves the kernel's side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from haguard.adapters import leverfiles
from haguard.app import ipvsops, rslevers
from haguard.core.config import Config, loads
from haguard.core.health import DISABLED, DRAINING, lever_kinds, with_levers
from haguard.core.leverrules import RsLever
from haguard.errors import BadInput

DOC = """\
node: {{name: lb1, state_dir: {tmp}/state, lever_dir: {tmp}/levers}}
keepalived: {{pid_file: {tmp}/k.pid, vrrp_pid_file: {tmp}/v.pid}}
instances:
  - {{name: VI_1, interface: eth0, virtual_router_id: 51, priority: 150,
     vips: [192.0.2.100/32]}}
ipvs:
  on_backup: remove
  services:
    - vip: 192.0.2.100
      port: 80
      real_servers:
        - {{address: 192.0.2.21, weight: 2}}
        - {{address: 192.0.2.22, weight: 3}}
"""
SERVICE = "tcp 192.0.2.100:80"


@pytest.fixture(autouse=True)
def _no_syslog(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HAGUARD_SYSLOG_SOCKET", str(tmp_path / "no-syslog"))


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return loads(DOC.format(tmp=tmp_path), filename="lb1.yaml")


def table(config: Config) -> list[tuple[str, int]]:
    effective = ipvsops.effective(config)
    assert effective.ipvs is not None
    return [(str(rs), rs.weight) for rs in effective.ipvs.services[0].real_servers]


def test_disable_and_drain_are_recorded_audited_and_shape_the_effective_table(
        config: Config) -> None:
    assert table(config) == [("192.0.2.21:80", 2), ("192.0.2.22:80", 3)]
    lines = rslevers.pull(config, SERVICE, "192.0.2.21:80", kind=DISABLED, reason="disk",
                          ttl_s=None)
    assert lines[-1] == f"{SERVICE}: not held on this node now; the lever applies when it is"
    rslevers.pull(config, SERVICE, "192.0.2.22:80", kind=DRAINING, reason="deploy",
                  ttl_s=None)
    assert table(config) == [("192.0.2.22:80", 0)]
    audit = [json.loads(line) for line in
             (Path(config.node.lever_dir) / "audit.log").read_text().splitlines()]
    assert [(a["action"], a["realserver"], a["reason"]) for a in audit] == [
        ("rs_disabled", "192.0.2.21:80", "disk"), ("rs_draining", "192.0.2.22:80", "deploy")]
    rslevers.enable(config, SERVICE, "192.0.2.21:80", reason="fixed")
    assert table(config) == [("192.0.2.21:80", 2), ("192.0.2.22:80", 0)]


def test_a_second_lever_on_one_real_server_replaces_the_first(config: Config) -> None:
    rslevers.pull(config, SERVICE, "192.0.2.21:80", kind=DRAINING, reason="a", ttl_s=None)
    rslevers.pull(config, SERVICE, "192.0.2.21:80", kind=DISABLED, reason="b", ttl_s=None)
    assert [(lv.kind, lv.reason) for lv in leverfiles.read_rs_levers(
        config.node.lever_dir)] == [(DISABLED, "b")]


def test_an_expired_lever_is_lifted_and_one_for_a_server_gone_from_the_config_forgotten(
        config: Config) -> None:
    leverfiles.write_rs_levers(config.node.lever_dir, [
        RsLever(SERVICE, "192.0.2.21:80", DISABLED, 1.0, "ops", "old", expires_at=2.0),
        RsLever(SERVICE, "192.0.2.99:80", DISABLED, 1.0, "ops", "gone", expires_at=2.0),
        RsLever(SERVICE, "192.0.2.22:80", DRAINING, 1.0, "ops", "keep")])
    lines = rslevers.expire_due(config)
    assert lines[0].startswith("192.0.2.21:80 of tcp 192.0.2.100:80: disabled lifted")
    assert lines[-1] == f"192.0.2.99:80 of {SERVICE}: expired (no longer in the config)"
    assert [lv.realserver for lv in leverfiles.read_rs_levers(config.node.lever_dir)] == [
        "192.0.2.22:80"]


@pytest.mark.parametrize(("service", "realserver", "wanted"), [
    ("tcp 192.0.2.100:8080", "192.0.2.21:80", "tcp 192.0.2.100:8080: not a service of"),
    ("192.0.2.100:80", "192.0.2.21:80", "'192.0.2.100:80' is not a service name"),
    (SERVICE, "192.0.2.23:80", "'192.0.2.23:80' is not a real server of tcp 192.0.2.100:80 "
                               "(it has: 192.0.2.21:80, 192.0.2.22:80;"),
])
def test_a_lever_on_something_the_config_lacks_is_refused_and_nothing_recorded(
        config: Config, service: str, realserver: str, wanted: str) -> None:
    with pytest.raises(BadInput, match=None) as info:
        rslevers.pull(config, service, realserver, kind=DISABLED, reason="x", ttl_s=None)
    assert wanted in str(info.value)
    assert leverfiles.read_rs_levers(config.node.lever_dir) == []


def test_a_lever_needs_a_reason(config: Config) -> None:
    with pytest.raises(BadInput, match="--reason"):
        rslevers.pull(config, SERVICE, "192.0.2.21:80", kind=DISABLED, reason=" ",
                      ttl_s=None)


def test_levers_match_real_servers_by_their_printed_names(config: Config) -> None:
    assert config.ipvs is not None
    service = config.ipvs.services[0]
    levers = [RsLever(SERVICE, "192.0.2.22:80", DRAINING, 0, "ops", "r"),
              RsLever("tcp 192.0.2.100:443", "192.0.2.21:80", DISABLED, 0, "ops", "r")]
    assert lever_kinds(service, levers) == {("192.0.2.22", 80): DRAINING}
    assert [(str(rs), rs.weight) for rs in with_levers(service, levers).real_servers] == [
        ("192.0.2.21:80", 2), ("192.0.2.22:80", 0)]


AGENT_DOC = DOC.replace("  on_backup: remove\n", "  on_backup: keep\n").replace(
    "keepalived: {{", "agent: {{}}\nkeepalived: {{")


def published(config: Config, lever: str | None, written: bool | None) -> None:
    from haguard.adapters.statefile import StateDir

    StateDir(config.node.state_dir).write_health({"at": 0, "services": [{
        "service": SERVICE, "written": written, "realservers": [
            {"realserver": "192.0.2.21:80", "lever": lever},
            {"realserver": "192.0.2.22:80", "lever": None}]}]})


def test_with_an_agent_running_the_lever_is_left_to_it_and_waited_for(
        tmp_path: Path) -> None:
    import threading

    from haguard.adapters.locks import PidLock
    from haguard.adapters.statefile import StateDir

    config = loads(AGENT_DOC.format(tmp=tmp_path), filename="lb1.yaml")
    StateDir(config.node.state_dir).ensure()
    agent = PidLock(config.agent_lock)
    assert agent.acquire() is None          # the agent's lock, held
    published(config, None, True)
    # The agent publishes the lever, written, a moment after the file changes. Nothing
    # here may touch the kernel (there is none in the unit tier): it is the agent's.
    timer = threading.Timer(0.3, published, (config, DISABLED, True))
    timer.start()
    try:
        lines = rslevers.pull(config, SERVICE, "192.0.2.21:80", kind=DISABLED,
                              reason="disk", ttl_s=None)
    finally:
        timer.join()
        agent.release()
    assert lines[-1] == f"{SERVICE}: applied by the agent, in the kernel"
    assert [lv.kind for lv in leverfiles.read_rs_levers(config.node.lever_dir)] == [DISABLED]


def test_an_agent_that_does_not_apply_the_lever_in_time_is_an_error_with_the_lever_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from haguard.adapters.locks import PidLock
    from haguard.adapters.statefile import StateDir
    from haguard.errors import OperationFailed

    monkeypatch.setattr(rslevers, "AGENT_WAIT_S", 0.3)
    config = loads(AGENT_DOC.format(tmp=tmp_path), filename="lb1.yaml")
    StateDir(config.node.state_dir).ensure()
    agent = PidLock(config.agent_lock)
    assert agent.acquire() is None
    published(config, DISABLED, False)       # it took the lever, its kernel write failed
    try:
        with pytest.raises(OperationFailed, match="has not applied it within 0.3 s"):
            rslevers.pull(config, SERVICE, "192.0.2.21:80", kind=DISABLED, reason="disk",
                          ttl_s=None)
    finally:
        agent.release()
    assert [lv.kind for lv in leverfiles.read_rs_levers(config.node.lever_dir)] == [DISABLED]


def test_the_agent_lifting_an_expired_lever_itself_does_not_wait_for_itself(
        tmp_path: Path) -> None:
    from haguard.adapters.locks import PidLock
    from haguard.adapters.statefile import StateDir

    config = loads(AGENT_DOC.format(tmp=tmp_path), filename="lb1.yaml")
    StateDir(config.node.state_dir).ensure()
    leverfiles.write_rs_levers(config.node.lever_dir, [
        RsLever(SERVICE, "192.0.2.21:80", DISABLED, 1.0, "op", "disk", expires_at=2.0)])
    agent = PidLock(config.agent_lock)
    assert agent.acquire() is None           # this process is the agent
    try:
        lines = rslevers.expire_due(config, by_agent=True)
    finally:
        agent.release()
    assert lines == ["192.0.2.21:80 of tcp 192.0.2.100:80: disabled lifted"]
    assert leverfiles.read_rs_levers(config.node.lever_dir) == []


def test_with_an_agent_running_a_lever_already_in_place_is_not_waited_for(
        tmp_path: Path) -> None:
    # The agent writes nothing for an unchanged lever: waiting would time out.
    from haguard.adapters.locks import PidLock
    from haguard.adapters.statefile import StateDir

    config = loads(AGENT_DOC.format(tmp=tmp_path), filename="lb1.yaml")
    StateDir(config.node.state_dir).ensure()
    leverfiles.write_rs_levers(config.node.lever_dir, [
        RsLever(SERVICE, "192.0.2.21:80", DISABLED, 1.0, "op", "disk")])
    published(config, DISABLED, False)       # a takeover wrote the table, not the checker
    agent = PidLock(config.agent_lock)
    assert agent.acquire() is None
    try:
        lines = rslevers.pull(config, SERVICE, "192.0.2.21:80", kind=DISABLED,
                              reason="still the disk", ttl_s=None)
    finally:
        agent.release()
    assert lines[-1] == f"{SERVICE}: 192.0.2.21:80 was already so; nothing for the agent " \
                        "to apply"
