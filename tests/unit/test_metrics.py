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
