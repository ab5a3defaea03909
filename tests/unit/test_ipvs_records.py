"""The records behind `ipvs apply --incremental`: fingerprints and the owned/applied files."""

from __future__ import annotations

import dataclasses
from ipaddress import ip_address
from pathlib import Path

from haguard.adapters.ipvs import (digest, key_tuple, read_applied, read_owned, write_applied,
                                   write_owned)
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


def test_owned_and_applied_records_round_trip(tmp_path: Path) -> None:
    keys = {key_tuple(KEY), (6, "udp", "2001:db8::100", 53), (4, "fwmark", "7", 0)}
    write_owned(str(tmp_path), keys)
    assert read_owned(str(tmp_path)) == keys
    record = {k: f"d{i}" for i, k in enumerate(sorted(keys))}
    write_applied(str(tmp_path), record)
    assert read_applied(str(tmp_path)) == record


def test_missing_or_garbled_records_read_as_unknown(tmp_path: Path) -> None:
    assert read_owned(str(tmp_path)) == set() and read_applied(str(tmp_path)) is None
    (tmp_path / "ipvs-owned.json").write_text("{not json")
    (tmp_path / "ipvs-applied.json").write_text("[[1, 2, 3]]")
    assert read_owned(str(tmp_path)) == set() and read_applied(str(tmp_path)) is None
