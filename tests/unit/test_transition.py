"""app.transition against an in-memory host: what one keepalived event does to the
machine, in which order, and what it records, in both modes' one code path
(``handle_event``). The lab tier runs the same code against the real kernel."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from haguard.adapters import process
from haguard.adapters.statefile import StateDir
from haguard.app.transition import handle_event
from haguard.core.config import Config, loads
from haguard.core.events import Event, OrderKey
from haguard.errors import ExitStatus, OperationFailed, UnknownInstance
from tests.unit.memoryhost import MemoryHost

VIPS = ["192.0.2.100/32", "2001:db8::100/64"]

DOC = """\
node: {{name: lb1, state_dir: {state}, log_file: {log}}}
sysctl: {{net.ipv4.ip_nonlocal_bind: 1}}
instances:
  - name: VI_1
    interface: eth0
    virtual_router_id: 51
    priority: 150
    vips: [192.0.2.100/32, 2001:db8::100/64]
    announce: {{count: 3, interval_ms: 1, repeat_after_s: 0}}
ipvs:
  services:
    - {{vip: 192.0.2.100, port: 80, scheduler: rr,
       real_servers: [{{address: 192.0.2.21, port: 80}}]}}
"""


@pytest.fixture(autouse=True)
def _no_syslog(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HAGUARD_SYSLOG_SOCKET", str(tmp_path / "no-syslog"))


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return loads(DOC.format(state=tmp_path / "state", log=tmp_path / "haguard.jsonl"),
                 filename="lb1.yaml")


def record(config: Config) -> dict[str, object]:
    found = StateDir(config.node.state_dir).read_state("VI_1")
    assert found is not None
    return found


def event(state: str, ticks: int, name: str = "VI_1", kind: str = "INSTANCE") -> tuple[Event,
                                                                                        OrderKey]:
    return Event(kind, name, state, "150"), OrderKey(ticks, 100 + ticks)


def names(host: MemoryHost) -> list[str]:
    return [str(c[0]) for c in host.calls]


def test_master_reconciles_ipvs_before_adding_the_vips_then_announces_and_records(
        config: Config) -> None:
    host = MemoryHost()
    assert handle_event(config, *event("MASTER", 10), host=host) == "applied"
    done = names(host)
    assert done.index("ipvs") < done.index("add_vip") < done.index("send")
    assert host.vips() == VIPS
    assert [c for c in host.calls if c[0] == "send"] == [("send", "eth0", 2),   # under the lock
                                                         ("send", "eth0", 4)]   # the rest
    assert host.sysctls["net.ipv4.ip_nonlocal_bind"] == "1"
    assert [str(k) for k in host.table.table] == ["tcp 192.0.2.100:80"]
    rec = record(config)
    assert rec["state"] == "MASTER" and rec["complete"] is True and rec["order"] == [10, 110]


def test_a_master_whose_rules_are_known_current_announces_first_and_verifies_them_after(
        config: Config) -> None:
    host = MemoryHost()
    handle_event(config, *event("BACKUP", 9), host=host)      # on_backup: keep reconciles
    host.calls.clear()
    assert handle_event(config, *event("MASTER", 10), host=host, ipvs_current=True) == \
        "applied"
    done = names(host)
    # the first frames go out before the table is even read: its size costs the
    # takeover nothing; the verification still runs, and finds nothing to change
    assert done.index("add_vip") < done.index("send") < done.index("ipvs")
    assert [str(k) for k in host.table.table] == ["tcp 192.0.2.100:80"]
    assert record(config)["complete"] is True


def test_backup_removes_the_vips_before_touching_the_rules_and_keeps_them(
        config: Config) -> None:
    host = MemoryHost()
    handle_event(config, *event("MASTER", 10), host=host)
    host.calls.clear()
    assert handle_event(config, *event("BACKUP", 11), host=host) == "applied"
    done = names(host)
    assert done.index("remove_address") < done.index("ipvs")
    assert host.vips() == [] and "send" not in done
    assert [str(k) for k in host.table.table] == ["tcp 192.0.2.100:80"]   # on_backup: keep
    assert record(config)["state"] == "BACKUP"


def test_a_second_master_adds_nothing_and_announces_again(config: Config) -> None:
    host = MemoryHost()
    handle_event(config, *event("MASTER", 10), host=host)
    host.calls.clear()
    handle_event(config, *event("MASTER", 11), host=host)
    assert "add_vip" not in names(host) and "send" in names(host)
    assert host.vips() == VIPS


def test_an_event_overtaken_while_it_waited_changes_nothing(config: Config) -> None:
    host = MemoryHost()
    state_dir = StateDir(config.node.state_dir)
    state_dir.ensure()
    state_dir.register("VI_1", process.now_key())   # a newer event is already in line
    assert handle_event(config, *event("MASTER", 10), host=host) == "superseded"
    assert host.calls == [] and state_dir.read_state("VI_1") is None


def test_a_newer_event_whose_process_died_unapplied_holds_nothing_back(config: Config) -> None:
    # An agent killed after reading BACKUP from the FIFO, before applying it: the hook's
    # twin of that event (forked a tick earlier than the agent read it) must still apply.
    host = MemoryHost()
    state_dir = StateDir(config.node.state_dir)
    state_dir.ensure()
    dead = subprocess.Popen(["true"])
    dead.wait()
    ticks = process.now_key().start_ticks
    state_dir.register("VI_1", OrderKey(ticks, dead.pid))
    assert state_dir.newest("VI_1") is None
    assert handle_event(config, *event("BACKUP", ticks - 1), host=host) == "applied"
    assert state_dir.read_state("VI_1")["state"] == "BACKUP"


def test_a_registered_key_of_a_pid_reused_since_holds_nothing_back(config: Config) -> None:
    state_dir = StateDir(config.node.state_dir)
    state_dir.ensure()
    # This process is alive, but it started after tick 1: the key names another one.
    state_dir.register("VI_1", OrderKey(1, os.getpid()))
    assert state_dir.newest("VI_1") is None
    live = process.now_key()
    state_dir.register("VI_1", live)
    assert state_dir.newest("VI_1") == live


def test_a_group_event_is_logged_and_changes_nothing(config: Config) -> None:
    host = MemoryHost()
    assert handle_event(config, *event("MASTER", 10, name="G1", kind="GROUP"),
                        host=host) == "ignored"
    assert host.calls == []
    logged = [json.loads(line)["event"] for line in
              Path(config.node.log_file or "").read_text().splitlines()]
    assert logged == ["group_event_ignored"]


def test_an_unknown_instance_is_bad_input_changes_nothing_and_is_logged(config: Config) -> None:
    host = MemoryHost()
    with pytest.raises(UnknownInstance) as caught:
        handle_event(config, *event("MASTER", 10, name="VI_9"), host=host)
    assert caught.value.exit_code == ExitStatus.BAD_INPUT
    assert "it has: VI_1" in str(caught.value)
    assert host.calls == []
    logged = [json.loads(line) for line in
              Path(config.node.log_file or "").read_text().splitlines()]
    assert [e["event"] for e in logged] == ["transition_failed"]


def test_master_without_its_interface_changes_nothing(config: Config) -> None:
    host = MemoryHost(links=("eth1",))
    with pytest.raises(OperationFailed, match="interface eth0 does not exist"):
        handle_event(config, *event("MASTER", 10), host=host)
    assert host.calls == []


def test_a_failed_step_says_what_was_done_and_not_and_records_it_incomplete(
        config: Config) -> None:
    host = MemoryHost()
    host.fail["add_vip"] = OperationFailed("RTM_NEWADDR: Operation not permitted")
    with pytest.raises(OperationFailed) as caught:
        handle_event(config, *event("MASTER", 10), host=host)
    message = str(caught.value)
    assert "'add 192.0.2.100/32 on eth0' failed" in message
    assert "Done: " in message and "reconcile IPVS rules" in message.split("Not done:")[0]
    assert "announce" in message.split("Not done:")[1]
    assert "send" not in names(host)
    rec = record(config)
    assert rec["state"] == "MASTER" and rec["complete"] is False and "RTM_NEWADDR" in str(
        rec["error"])


# ------------------------------------------------------------------ the operator's commands

NOTIFY = """\
    notify:
      timeout_s: 1
      master:
        - [/bin/sh, -c, 'echo "first {instance} {state} {priority}" >> {out}']
        - [/bin/sh, -c, 'test -s {out} && echo second >> {out}']
      backup:
        - [/bin/false]
        - [/bin/sh, -c, 'sleep 30; echo never >> {out}']
        - [/bin/sh, -c, 'echo after-the-failures >> {out}']
"""


def _with_notify(tmp_path: Path) -> tuple[Config, Path]:
    out = tmp_path / "notified.txt"
    doc = DOC.format(state=tmp_path / "state", log=tmp_path / "haguard.jsonl")
    doc = doc.replace("    announce:", NOTIFY.replace("{out}", str(out)) + "    announce:")
    return loads(doc, filename="lb1.yaml"), out


def _commands_done() -> None:
    import threading

    for thread in threading.enumerate():
        if thread.name.startswith("notify-"):
            thread.join(30)


def _logged(config: Config, what: str) -> list[dict[str, object]]:
    assert config.node.log_file is not None
    lines = Path(config.node.log_file).read_text().splitlines()
    return [e for e in map(json.loads, lines) if e.get("event") == what]


def test_the_operators_commands_run_in_order_after_the_transition_with_its_words(
        tmp_path: Path) -> None:
    config, out = _with_notify(tmp_path)
    handle_event(config, Event("INSTANCE", "VI_1", "MASTER", 140), OrderKey(10, 110),
                 host=MemoryHost())
    _commands_done()
    assert out.read_text().splitlines() == ["first VI_1 MASTER 140", "second"]
    done = _logged(config, "transition_done")[0]
    first = _logged(config, "notify_command")[0]
    assert float(str(first["ts"])) >= float(str(done["ts"]))


def test_a_failing_or_hung_command_is_logged_and_the_next_still_runs(tmp_path: Path) -> None:
    config, out = _with_notify(tmp_path)
    assert handle_event(config, *event("BACKUP", 10), host=MemoryHost()) == "applied"
    _commands_done()
    assert out.read_text().splitlines() == ["after-the-failures"]
    results = [(e["ok"], e["detail"]) for e in _logged(config, "notify_command")]
    assert results == [(False, "false exit 1"), (False, "sh timed out after 1 s"),
                       (True, "sh exit 0")]


def test_the_commands_run_on_a_change_of_state_not_on_a_reassertion(tmp_path: Path) -> None:
    config, out = _with_notify(tmp_path)
    host = MemoryHost()
    handle_event(config, *event("MASTER", 10), host=host)
    _commands_done()
    handle_event(config, *event("MASTER", 11), host=host)    # MASTER_RX_LOWER_PRI, a reload
    _commands_done()
    assert out.read_text().splitlines() == ["first VI_1 MASTER 150", "second"]


def eth1_config(tmp_path: Path) -> Config:
    doc = DOC.replace("vips: [192.0.2.100/32, 2001:db8::100/64]",
                      "vips: [192.0.2.100/32, 2001:db8::100/64,\n"
                      "           {{address: 198.51.100.10/24, interface: eth1}}]")
    return loads(doc.format(state=tmp_path / "state", log=tmp_path / "haguard.jsonl"),
                 filename="lb1.yaml")


def test_a_vip_on_another_device_is_added_announced_and_removed_there(tmp_path: Path) -> None:
    config = eth1_config(tmp_path)
    host = MemoryHost(links=("eth0", "eth1"))
    assert handle_event(config, *event("MASTER", 10), host=host) == "applied"
    assert (host.vips("eth0"), host.vips("eth1")) == (VIPS, ["198.51.100.10/24"])
    sends = [c for c in host.calls if c[0] == "send"]
    # The first round on each device under the lock, in order; the rests after it.
    assert sends[:2] == [("send", "eth0", 2), ("send", "eth1", 1)]
    assert sorted(sends[2:]) == [("send", "eth0", 4), ("send", "eth1", 2)]

    assert handle_event(config, *event("BACKUP", 11), host=host) == "applied"
    assert (host.vips("eth0"), host.vips("eth1")) == ([], [])


def test_master_without_a_vips_device_changes_nothing(tmp_path: Path) -> None:
    config = eth1_config(tmp_path)
    host = MemoryHost(links=("eth0",))
    with pytest.raises(OperationFailed, match=r"interface eth1 \(vips\[\]\.interface\) does "
                                              "not exist on this node; nothing was changed"):
        handle_event(config, *event("MASTER", 10), host=host)
    assert host.vips("eth0") == [] and "send" not in names(host)
