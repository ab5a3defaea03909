"""Generated bad configs: every one is refused with exit 2 and a message naming the file,
the line and the path, without a traceback and before anything is applied."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from haguard import cli

GOOD: dict[str, Any] = {
    "node": {"name": "lb1", "state_dir": "/run/haguard-fuzz/state"},
    "keepalived": {"hooks_dir": "/usr/local/libexec/haguard"},
    "sysctl": {"net.ipv4.ip_nonlocal_bind": 1},
    "instances": [{
        "name": "VI_1", "interface": "eth0", "virtual_router_id": 51, "priority": 150,
        "advert_int": 1, "vips": ["192.0.2.100/32", {"address": "2001:db8::100/64"}],
        "announce": {"count": 5, "interval_ms": 200, "repeat_after_s": 5, "refresh_s": 0},
    }],
    "ipvs": {"on_backup": "keep", "services": [{
        "vip": "192.0.2.100", "port": 80, "protocol": "tcp", "scheduler": "wrr",
        "real_servers": [{"address": "192.0.2.21", "port": 80, "forwarding": "dr",
                          "weight": 1}]}]},
    "agent": {},
}

# (path into GOOD, values that are wrong there)
TARGETS: list[tuple[tuple[Any, ...], list[Any]]] = [
    (("node", "name"), ["", "lb 1", 7, None, ["lb1"]]),
    (("node", "state_dir"), ["relative/dir", 3, ""]),
    (("keepalived", "hooks_dir"), ["hooks", False]),
    (("sysctl", "net.ipv4.ip_nonlocal_bind"), [None, [], {"a": 1}, True]),
    (("instances", 0, "name"), ["", None, 12, "has space"]),
    (("instances", 0, "interface"), ["", "x" * 40, None, 3]),
    (("instances", 0, "virtual_router_id"), [0, 256, -1, "51", 5.5, True, None]),
    (("instances", 0, "priority"), [0, 256, "high", 1.5, None]),
    (("instances", 0, "advert_int"), [0, -1, "1s", 300, None]),
    (("instances", 0, "vips", 0), ["10.0.0.300/24", "192.0.2.100/33", "fe80::/", 42, None, ""]),
    (("instances", 0, "vips", 1, "address"), ["2001:db8::zz/64", 1, None]),
    (("instances", 0, "announce", "count"), [-1, "five", 10_000, None]),
    (("instances", 0, "announce", "interval_ms"), [-5, "fast", None]),
    (("ipvs", "on_backup"), ["drop", 1, None]),
    (("ipvs", "services", 0, "port"), [0, 65536, "http", None]),
    (("ipvs", "services", 0, "protocol"), ["icmp", 6, None]),
    (("ipvs", "services", 0, "scheduler"), ["random", "", 3]),
    (("ipvs", "services", 0, "real_servers", 0, "address"), ["192.0.2.256", None, 5]),
    (("ipvs", "services", 0, "real_servers", 0, "forwarding"), ["masq", "", None]),
    (("ipvs", "services", 0, "real_servers", 0, "weight"), [-1, 70000, "1", None]),
    (("ipvs", "services", 0, "real_servers", 0, "port"), [8080, "x"]),  # DR: same port
    (("agent",), ["yes", 3, ["fifo"]]),
]
DROPPABLE = [("node", "name"), ("instances", 0, "interface"),
             ("instances", 0, "virtual_router_id"), ("instances", 0, "name"),
             ("ipvs", "services", 0, "real_servers", 0, "address")]
INSERTABLE = [(), ("node",), ("instances", 0), ("instances", 0, "announce"), ("ipvs",),
              ("ipvs", "services", 0), ("agent",)]

mutation = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(range(len(TARGETS))), st.integers(0, 99)),
    st.tuples(st.just("drop"), st.sampled_from(range(len(DROPPABLE))), st.just(0)),
    st.tuples(st.just("insert"), st.sampled_from(range(len(INSERTABLE))),
              st.integers(0, 10**6)),
)


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def _mutate(doc: dict[str, Any], how: tuple[str, int, int]) -> str:
    kind, index, pick = how
    if kind == "set":
        path, bad = TARGETS[index]
        value = bad[pick % len(bad)]
        parent = _at(doc, path[:-1])
        parent[path[-1]] = value
        return ".".join(map(str, path))
    if kind == "drop":
        path = DROPPABLE[index]
        del _at(doc, path[:-1])[path[-1]]
        return ".".join(map(str, path[:-1]))
    path = INSERTABLE[index]
    _at(doc, path)[f"unknwn_{pick}"] = 1
    return ".".join(map(str, path))


EXAMPLES = 250
seen: list[str] = []


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(mutation, min_size=1, max_size=3))
def test_a_generated_bad_config_is_refused_whole_with_a_path(tmp_path_factory: Any,
                                                             capsys: pytest.CaptureFixture[str],
                                                             mutations: list[Any]) -> None:
    doc = copy.deepcopy(GOOD)
    for how in mutations:
        try:
            _mutate(doc, how)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed what this one targets
    directory = tmp_path_factory.mktemp("fuzz")
    path = Path(directory) / "lb1.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    state_dir = Path("/run/haguard-fuzz/state")
    code = cli.main(["notify", "-c", str(path), "INSTANCE", "VI_1", "MASTER", "150"])
    out = capsys.readouterr()
    assert code == 2, (code, out.err, doc)
    assert "Traceback" not in out.err
    lines = [line for line in out.err.splitlines() if line.startswith("error: ")]
    assert lines, out.err
    # file:line: path: message -- the path is dotted (or the document itself).
    assert all(re.match(rf"error: {re.escape(str(path))}:\d+: ", line) for line in lines), lines
    assert not state_dir.exists(), "something was applied"
    seen.append(path.name)


def test_the_fuzz_ran_at_least_two_hundred_files() -> None:
    assert len(seen) >= 200, f"only {len(seen)} generated files were checked"
    print(f"\n{len(seen)} generated bad configs refused with exit 2")
