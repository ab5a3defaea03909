"""Manual promotion with keepalived's own levers, on the real keepalived pair."""

from __future__ import annotations

import json
import os
import time

from tests.conftest import wait_until
from tests.lab.conftest import LAB_YAML, TICK_S, master_hook_forked

NOPREEMPT = LAB_YAML.read_text().replace("    nopreempt: false\n", "    nopreempt: true\n")
assert NOPREEMPT != LAB_YAML.read_text()


def _holder(lab) -> str | None:
    return lab.runner.master()


def _lever_dir(lab, node: str) -> str:
    return os.path.join(os.path.dirname(lab.config(node)), "levers")


def _audit(lab, node: str) -> list[dict]:
    with open(os.path.join(_lever_dir(lab, node), "audit.log"), encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def test_demote_hands_over_within_two_adverts_and_undo_brings_it_back(make_lab) -> None:
    lab = make_lab()
    assert lab.runner.wait_for_master() == "lb1"
    proc = lab.haguard("lb1", "demote", "-c", lab.config("lb1"), "--reason", "kernel update",
                       "--wait", env={"SUDO_USER": "alice"})
    assert proc.returncode == 0, proc.stderr
    assert "took over" in proc.stdout and "answer from the new MASTER" in proc.stdout
    written = os.stat(os.path.join(_lever_dir(lab, "lb1"), "track", "VI_1.demote")).st_mtime
    wait_until(lambda: _holder(lab) == "lb2", 10, "lb2 MASTER")
    state_dir = lab.runner.record["directors"]["lb2"]["state_dir"]
    with open(os.path.join(state_dir, "VI_1.json"), encoding="utf-8") as fh:
        record = json.load(fh)
    # lb2's keepalived took over within 2 x advert_int of the lever's pull: it forked lb2's
    # MASTER hook by then (the hook's Python start-up, seconds on a loaded machine, is not
    # keepalived's reaction), and the hook announced the VIPs after that.
    forked = master_hook_forked(lab, "lb2", since=written)
    assert forked is not None
    assert -TICK_S <= forked - written <= 2.0, forked - written
    assert record["first_announcement_at"] >= forked - TICK_S
    proc = lab.haguard("lb1", "undo", "-c", lab.config("lb1"), "--reason", "done")
    assert proc.returncode == 0, proc.stderr
    wait_until(lambda: _holder(lab) == "lb1", 10, "lb1 to preempt back")
    actions = [(e["action"], e["by"], e.get("reason")) for e in _audit(lab, "lb1")]
    assert actions == [("demote", "alice", "kernel update"), ("undo", os.environ.get(
        "SUDO_USER") or os.environ.get("USER") or "root", "done")]


def test_promote_takes_over_where_preemption_is_on_and_clear_gives_back(make_lab) -> None:
    lab = make_lab()
    assert lab.runner.wait_for_master() == "lb1"
    proc = lab.haguard("lb2", "promote", "-c", lab.config("lb2"), "--reason", "drill",
                       "--wait")
    assert proc.returncode == 0, proc.stderr
    assert "priority raised by 51 to 151" in proc.stdout
    # --wait returns once lb2 is MASTER holding its VIPs; lb1 lets go when lb2's first
    # higher-priority advert reaches it, a moment later (its BACKUP hook still running).
    wait_until(lambda: _holder(lab) == "lb2", 10, "lb2 the only MASTER (lb1 released)")
    proc = lab.haguard("lb2", "promote", "--clear", "-c", lab.config("lb2"))
    assert proc.returncode == 0, proc.stderr
    wait_until(lambda: _holder(lab) == "lb1", 10, "lb1 to preempt back")
    assert [e["action"] for e in _audit(lab, "lb2")] == ["promote", "undo"]


def test_a_demotion_with_a_ttl_expires_by_itself(make_lab) -> None:
    lab = make_lab()
    assert lab.runner.wait_for_master() == "lb1"
    proc = lab.haguard("lb1", "demote", "-c", lab.config("lb1"), "--reason", "window",
                       "--ttl", "3s")
    assert proc.returncode == 0, proc.stderr
    assert _holder(lab) == "lb2" or wait_until(lambda: _holder(lab) == "lb2", 5, "lb2 MASTER")
    wait_until(lambda: _holder(lab) == "lb1", 15, "lb1 back after the TTL")
    assert [e["action"] for e in _audit(lab, "lb1")] == ["demote", "expired"]


def test_promote_under_nopreempt_is_refused_changes_nothing_and_says_what_to_do(
        make_lab) -> None:
    lab = make_lab(NOPREEMPT)
    master = lab.runner.wait_for_master()
    backup = "lb2" if master == "lb1" else "lb1"
    track = os.path.join(_lever_dir(lab, backup), "track")
    before = {name: open(os.path.join(track, name)).read() for name in os.listdir(track)}
    proc = lab.haguard(backup, "promote", "-c", lab.config(backup), "--reason", "try")
    assert proc.returncode == 1
    assert "nopreempt" in proc.stderr and "haguard demote" in proc.stderr
    assert {name: open(os.path.join(track, name)).read() for name in os.listdir(track)} == before
    time.sleep(2)
    assert _holder(lab) == master
    assert [e["action"] for e in _audit(lab, backup)] == ["promote_refused"]


def test_a_demotion_nobody_answers_is_undone(make_lab) -> None:
    lab = make_lab()
    assert lab.runner.wait_for_master() == "lb1"
    lab.runner.stop_keepalived("lb2")
    proc = lab.haguard("lb1", "demote", "-c", lab.config("lb1"), "--reason", "oops")
    assert proc.returncode == 1
    assert "no peer took over" in proc.stderr and "undone" in proc.stderr
    wait_until(lambda: _holder(lab) == "lb1", 10, "lb1 MASTER again")
    assert [e["action"] for e in _audit(lab, "lb1")] == ["demote", "demote_undone"]
