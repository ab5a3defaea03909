"""The Prometheus textfile: one series per instance and state, counters, the last drill."""

from __future__ import annotations

import re

from haguard.core.metrics import render

RECORD = {"instance": "VI_1", "state": "MASTER", "complete": True, "transitions": 7,
          "last_transition_ms": 12.5, "announcements": 3}


def _series(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_the_current_state_is_one_and_every_other_state_zero() -> None:
    series = _series(render("lb1", [RECORD], None))
    assert series['haguard_instance_state{node="lb1",instance="VI_1",state="MASTER"}'] == 1
    assert series['haguard_instance_state{node="lb1",instance="VI_1",state="BACKUP"}'] == 0
    assert series['haguard_transitions_total{node="lb1",instance="VI_1"}'] == 7
    assert series['haguard_announcements_total{node="lb1",instance="VI_1"}'] == 3
    assert series['haguard_last_transition_duration_seconds{node="lb1",instance="VI_1"}'] == 0.0125
    assert not any(k.startswith("haguard_last_drill") for k in series)


def test_the_last_drill_outage_is_in_seconds() -> None:
    series = _series(render("lb1", [RECORD], {"outage_ms": 620.0, "at": 1700000000.0}))
    assert series['haguard_last_drill_outage_seconds{node="lb1"}'] == 0.62


def test_every_family_is_declared_once_with_help_and_type() -> None:
    text = render("lb1", [RECORD, {**RECORD, "instance": "VI_2"}], {"outage_ms": 1, "at": 2})
    names = re.findall(r"^# TYPE (\S+) (gauge|counter)$", text, re.M)
    assert len(names) == len({n for n, _ in names}) == 7
    assert text.count("# HELP ") == 7 and text.endswith("\n")


def test_label_values_are_escaped() -> None:
    text = render('lb"1', [{**RECORD, "instance": "a\\b"}], None)
    assert 'node="lb\\"1",instance="a\\\\b"' in text


def test_every_watched_real_server_has_its_up_weight_transitions_and_last_check() -> None:
    health = {"services": [{"service": "tcp 192.0.2.100:80", "quorum": True, "realservers": [
        {"realserver": "192.0.2.21:80", "state": "up", "in_kernel": True, "weight": 3,
         "transitions": 2, "checks": [{"at": 100.0, "duration_ms": 1.5},
                                      {"at": 101.0, "duration_ms": 2.5}]},
        {"realserver": "192.0.2.22:80", "state": "down", "in_kernel": False, "weight": None,
         "transitions": 1, "checks": [{"at": None, "duration_ms": None}]}]}]}
    text = render("lb1", [], None, health)
    rs1 = 'node="lb1",service="tcp 192.0.2.100:80",realserver="192.0.2.21:80"'
    rs2 = 'node="lb1",service="tcp 192.0.2.100:80",realserver="192.0.2.22:80"'
    for line in (f"haguard_realserver_up{{{rs1}}} 1", f"haguard_realserver_up{{{rs2}}} 0",
                 f"haguard_realserver_in_kernel{{{rs2}}} 0",
                 f"haguard_realserver_weight{{{rs1}}} 3",
                 f"haguard_realserver_transitions_total{{{rs1}}} 2",
                 f"haguard_realserver_check_duration_seconds{{{rs1}}} 0.002500",
                 f"haguard_realserver_last_check_timestamp_seconds{{{rs1}}} 101.000",
                 'haguard_service_quorum{node="lb1",service="tcp 192.0.2.100:80"} 1',
                 "# TYPE haguard_realserver_transitions_total counter"):
        assert line in text.splitlines(), line
    # never checked: no duration or time rather than a made-up one
    assert f"haguard_realserver_last_check_timestamp_seconds{{{rs2}}}" not in text
    assert "realserver" not in render("lb1", [], None, None)
