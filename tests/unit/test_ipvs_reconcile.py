"""`ipvs apply` and its records: what an incremental apply reads back, and when the
records stop vouching for the kernel (a failed apply, a removal, another kernel).

The kernel's IPVS table cannot exist here (the host kernel has no IPVS), so it is an
in-memory table behind the three calls ipvsops makes of the netlink adapter; the real
table is exercised by the VM tier (tests/vm/test_lvs_dr.py).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from pathlib import Path

import pytest

from haguard.adapters.ipvsrecords import read_applied, read_owned, record_key
from haguard.app import ipvsops
from haguard.core.config import loads
from haguard.core.ipvsconfig import RealServer, ServiceKey, VirtualService
from haguard.core.ipvsplan import (
    AddDest,
    AddService,
    DelService,
    IpvsAction,
    SetDest,
    SetService,
)
from haguard.errors import BadInput, OperationFailed
from tests.unit.memoryhost import TableIpvs


def _services(count: int, weight_of_first: int = 1) -> tuple[VirtualService, ...]:
    return tuple(
        VirtualService(ServiceKey(4, "tcp", "192.0.2.100", 8000 + i), "wrr", (), None, (
            RealServer(ipaddress.ip_address("192.0.2.21"), 80, "dr",
                       weight_of_first if i == 0 else 1),
            RealServer(ipaddress.ip_address("192.0.2.22"), 80, "dr", 2)))
        for i in range(count))


def _reconcile(ipvs: TableIpvs, services: tuple[VirtualService, ...], state: Path,
               incremental: bool = True) -> tuple[IpvsAction, ...]:
    return ipvsops.reconcile(ipvs, services, None, str(state),  # type: ignore[arg-type]
                             incremental)


def test_incremental_apply_reads_back_only_the_changed_service(tmp_path: Path) -> None:
    ipvs = TableIpvs()
    _reconcile(ipvs, _services(50), tmp_path, incremental=False)
    assert ipvs.dumps == 1 and len(ipvs.table) == 50
    plan = _reconcile(ipvs, _services(50, weight_of_first=5), tmp_path)
    assert [type(a) for a in plan] == [SetDest]
    assert ipvs.dumps == 1 and ipvs.reads == [ServiceKey(4, "tcp", "192.0.2.100", 8000)]
    assert _reconcile(ipvs, _services(50, weight_of_first=5), tmp_path) == ()
    assert ipvs.reads == [ServiceKey(4, "tcp", "192.0.2.100", 8000)]   # nothing more read


def test_incremental_apply_deletes_a_service_that_left_the_config(tmp_path: Path) -> None:
    ipvs = TableIpvs()
    _reconcile(ipvs, _services(3), tmp_path, incremental=False)
    plan = _reconcile(ipvs, _services(2), tmp_path)
    assert plan == (DelService(ServiceKey(4, "tcp", "192.0.2.100", 8002)),)
    assert sorted(ipvs.table) == [s.key for s in _services(2)]
    assert read_owned(str(tmp_path)) == {record_key(s.key) for s in _services(2)}
    assert set(read_applied(str(tmp_path)) or {}) == read_owned(str(tmp_path))


def test_one_instances_share_leaves_the_other_services_of_the_config_alone(
        tmp_path: Path) -> None:
    ipvs = TableIpvs()
    every = _services(4)
    _reconcile(ipvs, every, tmp_path, incremental=False)
    share = tuple(dataclasses.replace(s, scheduler="rr") for s in every[:2])
    plan = ipvsops.reconcile(ipvs, share, [s.key for s in every],  # type: ignore[arg-type]
                             str(tmp_path), True)
    assert [type(a) for a in plan] == [SetService, SetService]
    assert sorted(ipvs.table) == [s.key for s in every]
    assert read_owned(str(tmp_path)) == {record_key(s.key) for s in every}


def test_an_apply_that_fails_halfway_leaves_no_record_to_trust(tmp_path: Path) -> None:
    ipvs = TableIpvs()
    _reconcile(ipvs, _services(4), tmp_path, incremental=False)
    ipvs.fail_at = 1
    changed = tuple(dataclasses.replace(s, scheduler="rr") for s in _services(4))
    with pytest.raises(OperationFailed):
        _reconcile(ipvs, changed, tmp_path)
    assert read_applied(str(tmp_path)) is None
    # Back to the old config: half the kernel is `rr` now, so trusting the old
    # fingerprints would leave it there. The next incremental apply reads everything.
    ipvs.fail_at = None
    plan = _reconcile(ipvs, _services(4), tmp_path)
    assert ipvs.dumps == 2
    assert plan == (SetService(_services(4)[0], ("scheduler rr -> wrr",)),)
    assert all(s.scheduler == "wrr" for s in ipvs.table.values())


def test_a_service_created_by_an_interrupted_apply_is_still_owned(tmp_path: Path) -> None:
    ipvs = TableIpvs(fail_at=3)      # the second service is added, its servers are not
    with pytest.raises(OperationFailed):
        _reconcile(ipvs, _services(2), tmp_path, incremental=False)
    assert read_owned(str(tmp_path)) == {record_key(s.key) for s in _services(2)}


def test_removal_makes_the_next_incremental_apply_read_the_kernel(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = loads(f"""
node: {{name: lb1, state_dir: {tmp_path}}}
ipvs:
  services:
    - vip: 192.0.2.100
      port: 80
      scheduler: rr
      real_servers: [{{address: 192.0.2.21, port: 80}}]
""")
    ipvs = TableIpvs()
    assert ipvsops.apply(config, connect=lambda: ipvs) == [
        "+ service tcp 192.0.2.100:80 (rr)",
        "+ tcp 192.0.2.100:80 -> 192.0.2.21:80 (dr, weight 1)"]
    assert ipvsops.remove(config, connect=lambda: ipvs) == ["- service tcp 192.0.2.100:80"]
    assert read_applied(str(tmp_path)) is None
    assert len(ipvsops.apply(config, incremental=True, connect=lambda: ipvs)) == 2
    assert ipvs.dumps == 3


def test_a_record_from_another_kernel_is_not_trusted(tmp_path: Path) -> None:
    ipvs = TableIpvs()
    _reconcile(ipvs, _services(3), tmp_path, incremental=False)
    path = tmp_path / "ipvs-applied.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "kernel": "another boot"}))
    ipvs.table.clear()                                  # as after a reboot
    assert len(_reconcile(ipvs, _services(3), tmp_path)) == 9 and ipvs.dumps == 2


def _named(ipvs: TableIpvs, services: tuple[VirtualService, ...], state: Path,
           *keys: ServiceKey) -> tuple[IpvsAction, ...]:
    return ipvsops.reconcile_named(ipvs, services, keys, str(state))  # type: ignore[arg-type]


def test_apply_only_reads_and_changes_only_the_named_service(tmp_path: Path) -> None:
    ipvs = TableIpvs()
    _reconcile(ipvs, _services(50), tmp_path, incremental=False)
    before = read_applied(str(tmp_path))
    changed = tuple(dataclasses.replace(s, scheduler="rr") for s in _services(50, 5))
    first = changed[0].key
    plan = _named(ipvs, changed, tmp_path, first)
    assert plan == (SetService(changed[0], ("scheduler wrr -> rr",)),
                    SetDest(first, changed[0].real_servers[0], ("weight 1 -> 5",)))
    assert ipvs.reads == [first] and ipvs.dumps == 1
    assert all(s.scheduler == "wrr" for k, s in ipvs.table.items() if k != first)
    # The other services' records still vouch for them: an incremental apply of the
    # config the kernel now has for them reads nothing more.
    after = read_applied(str(tmp_path))
    assert after is not None and before is not None
    assert {k: d for k, d in after.items() if k != record_key(first)} == {
        k: d for k, d in before.items() if k != record_key(first)}
    assert _reconcile(ipvs, (changed[0],) + _services(50)[1:], tmp_path) == ()
    assert ipvs.reads == [first] and ipvs.dumps == 1


def test_apply_only_adds_a_new_service_and_owns_it(tmp_path: Path) -> None:
    ipvs = TableIpvs()
    _reconcile(ipvs, _services(2), tmp_path, incremental=False)
    new = _services(3)[2]
    assert [type(a) for a in _named(ipvs, _services(3), tmp_path, new.key)] == [
        AddService, AddDest, AddDest]
    assert record_key(new.key) in read_owned(str(tmp_path))
    assert ipvs.table[new.key].real_servers == new.real_servers


def test_apply_only_deletes_a_named_service_that_left_the_config(tmp_path: Path) -> None:
    ipvs = TableIpvs()
    _reconcile(ipvs, _services(3), tmp_path, incremental=False)
    gone = _services(3)[2].key
    assert _named(ipvs, _services(2), tmp_path, gone) == (DelService(gone),)
    assert record_key(gone) not in read_owned(str(tmp_path))
    assert set(read_applied(str(tmp_path)) or {}) == read_owned(str(tmp_path))


def test_apply_only_refuses_a_service_haguard_does_not_own_and_changes_nothing(
        tmp_path: Path) -> None:
    ipvs = TableIpvs()
    _reconcile(ipvs, _services(2), tmp_path, incremental=False)
    foreign = VirtualService(ServiceKey(4, "tcp", "192.0.2.100", 81), "rr", (), None, ())
    ipvs.table[foreign.key] = foreign                     # added by hand with ipvsadm
    records = sorted(p.read_text() for p in tmp_path.iterdir())
    with pytest.raises(BadInput, match=r"^tcp 192.0.2.100:81: not in the config's ipvs"):
        _named(ipvs, _services(2), tmp_path, _services(2)[0].key, foreign.key)
    assert foreign.key in ipvs.table and ipvs.reads == []
    assert sorted(p.read_text() for p in tmp_path.iterdir()) == records


def test_configured_timeouts_are_set_once_and_the_unnamed_ones_kept(tmp_path: Path) -> None:
    config = loads(f"""
node: {{name: lb1, state_dir: {tmp_path}}}
ipvs:
  timeouts: {{tcp_s: 7200, udp_s: 60}}
  services: []
""")
    ipvs = TableIpvs()
    assert ipvsops.apply(config, connect=lambda: ipvs) == [
        "~ timeouts (tcp tcpfin udp) 900 120 300 -> 7200 120 60"]
    assert ipvs.timeout_values == (7200, 120, 60)
    assert ipvsops.apply(config, connect=lambda: ipvs) == []


def test_a_named_apply_journals_its_services_and_leaves_the_record_file_alone(
        tmp_path: Path) -> None:
    ipvs = TableIpvs()
    _reconcile(ipvs, _services(50), tmp_path, incremental=False)
    record = tmp_path / "ipvs-applied.json"
    before = record.stat()
    changed = (dataclasses.replace(_services(50)[0], scheduler="rr"),)
    _named(ipvs, changed, tmp_path, changed[0].key)
    after = record.stat()
    # The checker's batches cost what they write, not what the table holds.
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        before.st_ino, before.st_mtime_ns, before.st_size)
    assert (tmp_path / "ipvs-applied.journal").exists()
    assert _reconcile(ipvs, changed + _services(50)[1:], tmp_path) == ()
    assert ipvs.reads == [changed[0].key] and ipvs.dumps == 1


def test_a_named_apply_that_fails_leaves_its_services_unvouched_for(tmp_path: Path) -> None:
    ipvs = TableIpvs()
    _reconcile(ipvs, _services(3), tmp_path, incremental=False)
    changed = dataclasses.replace(_services(3)[0], scheduler="rr")
    ipvs.fail_at = 0
    with pytest.raises(OperationFailed):
        _named(ipvs, (changed,), tmp_path, changed.key)
    record = read_applied(str(tmp_path))
    assert record is not None and record_key(changed.key) not in record
    assert set(record) == {record_key(s.key) for s in _services(3)[1:]}
    # so the next incremental apply reads it back (as the failed one did), the others not
    ipvs.fail_at = None
    assert len(_reconcile(ipvs, (changed,) + _services(3)[1:], tmp_path)) == 1
    assert ipvs.reads == [changed.key, changed.key]


def test_the_journal_is_folded_into_the_record_and_stays_bounded(tmp_path: Path) -> None:
    from haguard.adapters.ipvsrecords import JOURNAL_MIN, digest

    ipvs = TableIpvs()
    services = _services(3)
    _reconcile(ipvs, services, tmp_path, incremental=False)
    record, journal = tmp_path / "ipvs-applied.json", tmp_path / "ipvs-applied.journal"
    inodes, largest = {record.stat().st_ino}, 0
    first = services[0]
    for rounds in range(2000):
        first = dataclasses.replace(services[0], scheduler="rr" if rounds % 2 else "wlc")
        _named(ipvs, (first,), tmp_path, first.key)
        inodes.add(record.stat().st_ino)
        largest = max(largest, journal.stat().st_size if journal.exists() else 0)
    assert len(inodes) > 1, "the journal was never folded into the record"
    assert largest <= JOURNAL_MIN + 200
    assert read_applied(str(tmp_path)) == {
        record_key(s.key): digest(s) for s in (first,) + services[1:]}
