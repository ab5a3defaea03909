"""The records behind `ipvs apply --incremental`: fingerprints and the owned/applied files."""

from __future__ import annotations

import dataclasses
import json
import os
from ipaddress import ip_address
from pathlib import Path

from haguard.adapters.ipvsrecords import (
    UNKNOWN,
    digest,
    forget_applied,
    journal_applied,
    read_applied,
    read_owned,
    record_key,
    service_key,
    write_applied,
    write_owned,
)
from haguard.core.ipvsconfig import Persistence, RealServer, ServiceKey, VirtualService

KEY = ServiceKey(4, "tcp", "192.0.2.100", 80)
SERVICE = VirtualService(KEY, "wrr", (), None, (
    RealServer(ip_address("192.0.2.21"), 80, "dr", 1),
    RealServer(ip_address("192.0.2.22"), 80, "dr", 2)))


def _with_rs(index: int, **changes: object) -> VirtualService:
    servers = list(SERVICE.real_servers)
    servers[index] = dataclasses.replace(servers[index], **changes)
    return dataclasses.replace(SERVICE, real_servers=tuple(servers))


def test_equal_services_have_equal_fingerprints_and_any_kernel_field_changes_it() -> None:
    twin = VirtualService(KEY, "wrr", (), None, tuple(
        RealServer(ip_address(str(r.address)), r.port, r.forwarding, r.weight)
        for r in SERVICE.real_servers))
    assert digest(twin) == digest(SERVICE)
    variants = [
        _with_rs(1, weight=3), _with_rs(0, forwarding="tun"), _with_rs(0, upper_threshold=9),
        _with_rs(0, lower_threshold=1), _with_rs(0, port=8080), _with_rs(0, tunnel_type="gue"),
        _with_rs(0, tunnel_port=6080), _with_rs(0, address=ip_address("192.0.2.23")),
        dataclasses.replace(SERVICE, scheduler="sh"),
        dataclasses.replace(SERVICE, flags=("sh-port",)),
        dataclasses.replace(SERVICE, persistence=Persistence(300, "255.255.255.255")),
        dataclasses.replace(SERVICE, real_servers=SERVICE.real_servers[:1]),
    ]
    prints = [digest(v) for v in variants]
    assert digest(SERVICE) not in prints
    assert len(set(prints)) == len(prints)


def test_ipv4_and_ipv6_real_servers_with_the_same_integer_differ() -> None:
    v6 = ip_address("::c000:215")          # ::192.0.2.21, the same 32-bit integer
    assert int(v6) == int(ip_address("192.0.2.21"))
    assert digest(_with_rs(0, address=v6)) != digest(SERVICE)


def test_record_keys_name_their_service_and_malformed_ones_name_none() -> None:
    for key in (KEY, ServiceKey(6, "udp", "2001:db8::100", 53), ServiceKey(4, "fwmark", "7", 0)):
        assert service_key(record_key(key)) == key
    for bad in ("", "4 tcp 192.0.2.1", "x tcp 192.0.2.1 80", "4 tcp 192.0.2.1 http",
                "4 tcp  192.0.2.1 80"):
        assert service_key(bad) is None


def test_owned_and_applied_records_round_trip(tmp_path: Path) -> None:
    keys = {record_key(KEY), "6 udp 2001:db8::100 53", "4 fwmark 7 0"}
    write_owned(str(tmp_path), keys)
    assert read_owned(str(tmp_path)) == keys
    record = {k: f"d{i}" for i, k in enumerate(sorted(keys))}
    write_applied(str(tmp_path), record)
    assert read_applied(str(tmp_path)) == record
    forget_applied(str(tmp_path))
    assert read_applied(str(tmp_path)) is None
    forget_applied(str(tmp_path))   # nothing to forget is fine


def test_owned_record_in_the_earlier_row_format_still_counts(tmp_path: Path) -> None:
    # An upgrade must not forget which services haguard owns.
    (tmp_path / "ipvs-owned.json").write_text(
        json.dumps([[4, "tcp", "192.0.2.100", 80], [4, "fwmark", "7", 0], [1, 2]]))
    assert read_owned(str(tmp_path)) == {record_key(KEY), "4 fwmark 7 0"}


def test_applied_record_of_another_boot_or_namespace_is_unknown(tmp_path: Path) -> None:
    write_applied(str(tmp_path), {record_key(KEY): digest(SERVICE)})
    path = tmp_path / "ipvs-applied.json"
    data = json.loads(path.read_text())
    boot, netns = data["kernel"].split(" ")
    assert netns == str(os.stat("/proc/self/ns/net").st_ino)
    for other in (f"x{boot} {netns}", f"{boot} {int(netns) + 1}"):
        path.write_text(json.dumps({**data, "kernel": other}))
        assert read_applied(str(tmp_path)) is None


def test_missing_or_garbled_records_read_as_unknown(tmp_path: Path) -> None:
    assert read_owned(str(tmp_path)) == set() and read_applied(str(tmp_path)) is None
    (tmp_path / "ipvs-owned.json").write_text("{not json")
    (tmp_path / "ipvs-applied.json").write_text("[[1, 2, 3]]")
    assert read_owned(str(tmp_path)) == set() and read_applied(str(tmp_path)) is None


OTHER = record_key(ServiceKey(4, "tcp", "192.0.2.100", 443))
OLD, NEW, KEPT = digest(SERVICE), digest(_with_rs(0, weight=5)), digest(_with_rs(1, weight=7))


def test_journal_lines_override_the_record_in_order(tmp_path: Path) -> None:
    state = str(tmp_path)
    write_applied(state, {record_key(KEY): OLD, OTHER: KEPT})
    journal_applied(state, [(record_key(KEY), UNKNOWN)])
    assert read_applied(state) == {OTHER: KEPT}
    journal_applied(state, [(record_key(KEY), NEW)])
    assert read_applied(state) == {record_key(KEY): NEW, OTHER: KEPT}


def test_a_journal_line_cut_short_by_a_crash_is_no_line_and_later_ones_still_count(
        tmp_path: Path) -> None:
    state = str(tmp_path)
    write_applied(state, {record_key(KEY): OLD, OTHER: KEPT})
    journal_applied(state, [(record_key(KEY), UNKNOWN)])
    with open(tmp_path / "ipvs-applied.journal", "a", encoding="utf-8") as fh:
        fh.write(f"{record_key(KEY)} ab")          # the digest line, cut short
    assert read_applied(state) == {OTHER: KEPT}
    journal_applied(state, [(OTHER, UNKNOWN)])
    assert read_applied(state) == {}


def test_without_a_record_nothing_is_journaled_and_forget_removes_both(
        tmp_path: Path) -> None:
    state = str(tmp_path)
    journal_applied(state, [(record_key(KEY), NEW)])
    assert not (tmp_path / "ipvs-applied.journal").exists() and read_applied(state) is None
    write_applied(state, {record_key(KEY): OLD})
    journal_applied(state, [(record_key(KEY), NEW)])
    forget_applied(state)
    assert os.listdir(tmp_path) == []
