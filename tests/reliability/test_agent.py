"""The agent under stress, crashes and hard deaths, with real keepalived and kernels.

Each test ends by comparing the kernel (VIPs present), the recorded state and what
keepalived last reported; the counts asked for are printed with -s.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest

from haguard.lab import netns
from tests.conftest import wait_until
from tests.reliability.conftest import VIP4, AgentLab

SEED = int(os.environ.get("HAGUARD_RELIABILITY_SEED", "20261129"))


def _write_fifo(path: str, lines: list[str]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, "".join(f"{line}\n" for line in lines).encode())
    finally:
        os.close(fd)


def _settled(lab: AgentLab, node: str, state: str) -> bool:
    record = lab.record(node)
    holds = bool(lab.vips_on(node))
    return record.get("state") == state and record.get("complete") and \
        holds == (state == "MASTER")


# ----------------------------------------------------------------------------- FIFO storm
def test_a_thousand_random_fifo_events_end_in_the_last_one(agent_lab) -> None:
    lab = agent_lab()
    # Only the injected events count: keepalived is stopped on both directors first
    # (each agent applies STOP when its keepalived ends).
    for node in ("lb1", "lb2"):
        lab.runner.stop_keepalived(node)
    wait_until(lambda: not lab.vips_on("lb1") and not lab.vips_on("lb2"), 10, "both without VIPs")
    rng = random.Random(SEED)
    states = ("MASTER", "BACKUP", "FAULT", "STOP", "MASTER_RX_LOWER_PRI", "MASTER_PRIORITY")
    sent = 0
    last = "STOP"
    while sent < 1000:
        burst = []
        for _ in range(rng.randint(1, 40)):
            state = rng.choice(states)
            if rng.random() < 0.1:
                burst.append(burst[-1] if burst else 'INSTANCE "VI_1" BACKUP 100')  # duplicate
            else:
                burst.append(f'INSTANCE "VI_1" {state} {rng.randint(1, 254)}')
        if rng.random() < 0.05:
            burst.append('INSTANCE "VI_9" MASTER 100')  # not ours: logged, skipped
        _write_fifo(lab.fifo("lb1"), burst)
        sent += len(burst)
        for line in burst:
            word = line.split()[2]
            if "VI_1" in line and word in ("MASTER", "BACKUP", "FAULT", "STOP"):
                last = word
            elif "VI_1" in line and word == "MASTER_RX_LOWER_PRI":
                last = "MASTER"
        time.sleep(rng.choice((0, 0, 0.001, 0.01, 0.05)))
    wait_until(lambda: _settled(lab, "lb1", last), 30, f"lb1 settled in {last}")
    time.sleep(0.5)  # nothing late changes it
    assert _settled(lab, "lb1", last)
    assert not lab.vips_on("lb2")
    assert len(lab.announcers("lb1")) <= 1
    applied = [e for e in lab.agent_log("lb1") if e.get("event") == "transition_done"]
    print(f"\n{sent} FIFO events injected; {len(applied)} transitions applied; final {last}")


# ------------------------------------------------------------------------- real keepalived
def test_real_keepalived_flaps_end_with_one_master_matching_keepalived(agent_lab) -> None:
    lab = agent_lab()
    rng = random.Random(SEED + 1)
    ops = 0
    for _ in range(30):
        node = rng.choice(("lb1", "lb2"))
        action = rng.choice(("link", "link", "reload", "priority", "priority"))
        if action == "link":
            port = lab.runner.lab.directors[0 if node == "lb1" else 1].legs[0].port
            netns.run(["ip", "-n", lab.lab.switch_namespace, "link", "set", port, "down"])
            time.sleep(rng.choice((0.05, 0.3, 1.5)))
            netns.run(["ip", "-n", lab.lab.switch_namespace, "link", "set", port, "up"])
        elif action == "priority":
            # keepalived's own lever: its priority track file (weight 1), read on change.
            track = os.path.join(os.path.dirname(lab.config(node)), "levers", "track",
                                 "VI_1.priority")
            with open(track, "w", encoding="ascii") as fh:
                fh.write(f"{rng.choice((0, 0, 30, 60, 100))}\n")
        else:
            os.kill(lab.runner.record["pids"][node], signal.SIGHUP)
        ops += 1
        time.sleep(rng.choice((0.05, 0.5, 2.0)))
    for node in ("lb1", "lb2"):  # the levers off: keepalived elects as configured
        with open(os.path.join(os.path.dirname(lab.config(node)), "levers", "track",
                               "VI_1.priority"), "w", encoding="ascii") as fh:
            fh.write("0\n")
    # That is lb1 (priority 150, preempting). Whoever is MASTER first may be lb2 about to
    # be preempted, which is no end state to compare with keepalived's last word.
    master, other = "lb1", "lb2"
    wait_until(lambda: _settled(lab, master, "MASTER") and _settled(lab, other, "BACKUP"), 30,
               f"{master} MASTER with every VIP and {other} BACKUP without, after the flaps")
    events = 0
    for node in ("lb1", "lb2"):
        entered = [line for line in open(os.path.join(os.path.dirname(lab.config(node)),
                                                      "keepalived.log"), encoding="utf-8")
                   if "Entering" in line and "STATE" in line]
        reported = entered[-1].split("Entering ")[1].split()[0]
        assert lab.record(node)["state"] == reported, (node, reported, lab.record(node))
        events += len(entered)
    assert bool(lab.vips_on(master)) and not lab.vips_on(other)
    print(f"\n{ops} link flaps, priority changes and reloads; keepalived reported {events} "
          f"states; {master} MASTER, {other} {lab.record(other)['state']}; both agree with "
          "keepalived")


def _entered(lab: AgentLab, node: str) -> list[str]:
    """The states keepalived logged for ``node``, in order."""
    with open(os.path.join(os.path.dirname(lab.config(node)), "keepalived.log"),
              encoding="utf-8") as fh:
        return [line.split("Entering ")[1].split()[0] for line in fh
                if "Entering" in line and "STATE" in line]


def test_a_thousand_events_from_the_real_keepalived_end_in_its_last_report(agent_lab) -> None:
    lab = agent_lab()
    rng = random.Random(SEED + 2)
    # keepalived's own levers change its state at once: its demote track file (weight 0)
    # puts an instance in FAULT and back, its priority file moves the election.
    tracks = {node: os.path.join(os.path.dirname(lab.config(node)), "levers", "track")
              for node in ("lb1", "lb2")}
    start = {node: len(_entered(lab, node)) for node in tracks}
    deadline = time.monotonic() + 240
    writes = 0
    while time.monotonic() < deadline:
        produced = sum(len(_entered(lab, n)) - start[n] for n in tracks)
        if produced >= 1000:
            break
        node = rng.choice(("lb1", "lb2"))
        kind = rng.choice(("demote", "demote", "demote", "priority"))
        value = rng.choice((0, 1)) if kind == "demote" else rng.choice((0, 30, 60, 100))
        with open(os.path.join(tracks[node], f"VI_1.{kind}"), "w", encoding="ascii") as fh:
            fh.write(f"{value}\n")
        writes += 1
        time.sleep(rng.choice((0, 0.002, 0.01, 0.03)))
    produced = sum(len(_entered(lab, n)) - start[n] for n in tracks)
    assert produced >= 1000, f"keepalived reported only {produced} states in 240 s"
    for track in tracks.values():  # the levers off: keepalived elects as configured
        for kind in ("demote", "priority"):
            with open(os.path.join(track, f"VI_1.{kind}"), "w", encoding="ascii") as fh:
                fh.write("0\n")
    # As configured is lb1 (priority 150, preempting): whoever is MASTER first may be lb2,
    # still to be preempted, so only that end state is a settled one to compare.
    master, other = "lb1", "lb2"
    wait_until(lambda: _settled(lab, master, "MASTER") and _settled(lab, other, "BACKUP"), 30,
               f"{master} MASTER with every VIP and {other} BACKUP without, as configured")
    for node in tracks:
        assert lab.record(node)["state"] == _entered(lab, node)[-1], node
    applied = sum(1 for n in tracks for e in lab.agent_log(n)
                  if e.get("event") == "transition_done")
    print(f"\n{writes} lever writes; the real keepalived reported {produced} states; the "
          f"agents applied {applied} transitions; {master} MASTER, {other} BACKUP")


# ------------------------------------------------------------------- kill -9 of the agent
MASTER_POINTS = ("agent:read", "before:vip_added", "before:announced",
                 "before:announcer_started", "before:state_recorded", "agent:applied")
BACKUP_POINTS = ("agent:read", "before:vip_removed", "before:state_recorded", "agent:applied")


def _restart_agent_with(lab: AgentLab, node: str, point: str, towards: str) -> subprocess.Popen:
    """The agent again, to die at ``point`` of the transition to ``towards``: not at the
    same step of its start-up re-assertion of the state it finds."""
    lab.runner.stop_agent(node)
    failpoint = f"{point}@{towards}" if point.startswith("before:") else point
    lab.runner.start_agent(node, env={"HAGUARD_FAILPOINT": failpoint})
    return lab.runner._children[lab.agent_pid(node)]


def _died_at(lab: AgentLab, proc: subprocess.Popen, point: str) -> None:
    wait_until(lambda: proc.poll() is not None, 30, f"the agent to die at {point}")
    assert proc.returncode == -signal.SIGKILL, f"agent ended with {proc.returncode}"


def _converged(lab: AgentLab, node: str, state: str) -> None:
    try:
        wait_until(lambda: _settled(lab, node, state), 20, f"{node} converged to {state}")
    except AssertionError as exc:
        # The lab is gone before anyone can look: what the node recorded, held and logged.
        events = [f"{e.get('ts')} {e.get('component', '')} {e.get('event')} "
                  f"{e.get('state', '')} {e.get('order', '')} {e.get('reason', '')}"
                  for e in lab.agent_log(node)[-30:]]
        raise AssertionError(f"{exc}; record {lab.record(node)}, VIPs {lab.vips_on(node)}; "
                             "last events:\n" + "\n".join(events)) from None
    vips = lab.vips_on(node)
    assert len(vips) == len(set(vips))
    # A re-announcer of an overtaken MASTER exits at its next wake-up without sending.
    wait_until(lambda: len(lab.announcers(node)) <= (1 if state == "MASTER" else 0), 10,
         f"at most {1 if state == 'MASTER' else 0} re-announcer on {node}")


@pytest.mark.parametrize("point", MASTER_POINTS)
def test_an_agent_killed_during_a_master_transition_converges_on_restart(agent_lab,
                                                                         point: str) -> None:
    lab = agent_lab()
    assert lab.runner.master() == "lb1"
    proc = _restart_agent_with(lab, "lb2", point, "MASTER")
    lab.runner.stop_keepalived("lb1")
    _died_at(lab, proc, point)
    lab.runner.start_agent("lb2")
    _converged(lab, "lb2", "MASTER")
    assert not lab.vips_on("lb1")
    lb2_mac = lab.runner.record["directors"]["lb2"]["mac"]["eth0"]
    ping = netns.ns_exec(lab.lab.client.namespace, "ping", "-c1", "-W1", VIP4)
    assert subprocess.run(ping, capture_output=True).returncode == 0
    assert lab.client_mac_for(VIP4) == lb2_mac


@pytest.mark.parametrize("point", BACKUP_POINTS)
def test_an_agent_killed_during_a_backup_transition_converges_on_restart(agent_lab,
                                                                         point: str) -> None:
    lab = agent_lab()
    lab.runner.stop_keepalived("lb1")
    wait_until(lambda: _settled(lab, "lb2", "MASTER"), 20, "lb2 MASTER")
    proc = _restart_agent_with(lab, "lb2", point, "BACKUP")
    lab.runner.start_keepalived("lb1")  # lb1 has the higher priority: it preempts
    _died_at(lab, proc, point)
    lab.runner.start_agent("lb2")
    _converged(lab, "lb2", "BACKUP")
    wait_until(lambda: _settled(lab, "lb1", "MASTER"), 20, "lb1 MASTER again")


# ------------------------------------------------------------- keepalived dies without STOP
def test_keepalived_sigkilled_on_the_master_leaves_no_vip_behind(agent_lab) -> None:
    lab = agent_lab()
    assert lab.runner.master() == "lb1"
    lb1_mac = lab.runner.record["directors"]["lb1"]["mac"]["eth0"]
    lb2_mac = lab.runner.record["directors"]["lb2"]["mac"]["eth0"]
    subprocess.run(netns.ns_exec(lab.lab.client.namespace, "ping", "-c1", "-W1", VIP4),
                   capture_output=True)
    assert lab.client_mac_for(VIP4) == lb1_mac
    parent, child = lab.keepalived_pids("lb1")
    assert child is not None
    killed = time.monotonic()
    for pid in (child, parent):   # both at once: no STOP path runs anywhere
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not lab.vips_on("lb1"), 1.0, "lb1's VIPs gone within 1 s", step=0.005)
    gone_ms = (time.monotonic() - killed) * 1000
    wait_until(lambda: _settled(lab, "lb2", "MASTER"), 20, "lb2 MASTER")
    wait_until(lambda: lab.client_mac_for(VIP4) == lb2_mac, 10, "the client following lb2")
    events = [e["event"] for e in lab.agent_log("lb1")]
    assert "keepalived_ended" in events
    print(f"\nlb1's VIPs gone {gone_ms:.0f} ms after SIGKILL; client now at lb2 ({lb2_mac})")
