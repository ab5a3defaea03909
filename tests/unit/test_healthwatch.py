"""The agent's real-server watch (haguard.app.healthwatch) writing the kernel: changes
that finish together are written together, and a change undone before the write is not
written at all; a check this host could not make changes no real server's state."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from haguard.adapters.log import get_logger
from haguard.app.healthwatch import HealthWatch
from haguard.core.config import Config, loads
from haguard.core.health import DISABLED
from haguard.core.ipvsconfig import VirtualService
from haguard.core.leverrules import RsLever
from tests.unit.descriptors import none_free

DOC = """\
node: {name: lb1}
agent: {}
instances: [{name: VI_1, interface: eth0, virtual_router_id: 51, priority: 150,
             vips: [192.0.2.100/32]}]
ipvs:
  services:
""" + "".join(f"""\
    - vip: 192.0.2.100
      port: {port}
      health: {{check: tcp}}
      real_servers: [{{address: 192.0.2.21}}, {{address: 192.0.2.22}}]
""" for port in (80, 81, 82))


def watch(tmp_path: Path) -> tuple[HealthWatch, list[list[str]]]:
    config: Config = loads(DOC, filename="lb1.yaml")
    writes: list[list[str]] = []

    def apply(services: list[VirtualService]) -> None:
        writes.append(sorted(f"{s.key}: {' '.join(str(r) for r in s.real_servers)}"
                             for s in services))
    log = get_logger(str(tmp_path / "log.jsonl"), quiet=True)
    return HealthWatch(config, log, apply=apply, held=lambda s: True,
                       publish=lambda snapshot: lambda: None), writes


def disabled(*ports: int) -> list[RsLever]:
    return [RsLever(f"tcp 192.0.2.100:{p}", f"192.0.2.21:{p}", DISABLED, 0.0, "op", "x")
            for p in ports]


def test_changes_made_in_one_turn_of_the_loop_are_written_in_one_batch(
        tmp_path: Path) -> None:
    hw, writes = watch(tmp_path)

    async def main() -> None:
        hw.set_levers(disabled(80, 82))
        assert writes == []                       # not yet: the loop has not turned
        await asyncio.sleep(0)
    asyncio.run(main())
    assert writes == [["tcp 192.0.2.100:80: 192.0.2.22:80",
                       "tcp 192.0.2.100:82: 192.0.2.22:82"]]


def test_a_change_undone_before_the_write_is_not_written(tmp_path: Path) -> None:
    hw, writes = watch(tmp_path)

    async def main() -> None:
        hw.set_levers(disabled(80))
        await asyncio.sleep(0)
        hw.set_levers([])                         # enable ...
        hw.set_levers(disabled(80))               # ... and disable again, same turn
        await asyncio.sleep(0)
    asyncio.run(main())
    assert writes == [["tcp 192.0.2.100:80: 192.0.2.22:80"]]


def test_outside_a_loop_a_change_is_written_at_once_and_stop_writes_what_is_pending(
        tmp_path: Path) -> None:
    hw, writes = watch(tmp_path)
    hw.set_levers(disabled(81))
    assert writes == [["tcp 192.0.2.100:81: 192.0.2.22:81"]]

    async def main() -> None:
        hw.set_levers([])
        hw.stop()                                 # before the loop turns
    asyncio.run(main())
    assert writes[-1] == ["tcp 192.0.2.100:81: 192.0.2.21:81 192.0.2.22:81"]


def test_a_failed_write_is_logged_for_each_service_and_marks_them_unwritten(
        tmp_path: Path) -> None:
    hw, _ = watch(tmp_path)

    def broken(services: list[VirtualService]) -> None:
        raise OSError("netlink: EPERM")
    hw._apply = broken                            # the kernel refuses
    hw.set_levers(disabled(80, 81))
    assert hw.last_failure > 0
    assert all(hw.services[k].applied is None for k in hw.services)
    log = (tmp_path / "log.jsonl").read_text()
    assert log.count('"health_apply_failed"') == 2 and "EPERM" in log


def test_a_check_this_host_cannot_make_leaves_the_real_server_as_it_was(
        tmp_path: Path) -> None:
    # Out of file descriptors for a while: the real server that answers stays up, status
    # says why it was not checked, and the checks take up where they were afterwards.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    config = loads(f"""\
node: {{name: lb1}}
agent: {{}}
instances: [{{name: VI_1, interface: eth0, virtual_router_id: 51, priority: 150,
             vips: [192.0.2.100/32]}}]
ipvs:
  services:
    - vip: 192.0.2.100
      port: {port}
      health: {{check: tcp, interval_s: 0.1, timeout_s: 0.1, retries: 1,
                retry_interval_s: 0.1}}
      real_servers: [{{address: 127.0.0.1}}]
""", filename="lb1.yaml")
    log = get_logger(str(tmp_path / "log.jsonl"), quiet=True)
    hw = HealthWatch(config, log, apply=lambda services: None, held=lambda s: True,
                     publish=lambda snapshot: lambda: None)
    key = config.ipvs.services[0].key

    def server() -> tuple[bool, str]:
        rs = hw.snapshot()["services"][0]["realservers"][0]
        return rs["state"] == "up", rs["checks"][0]["detail"]

    async def main() -> list[tuple[bool, str]]:
        seen = []
        hw.start()
        await asyncio.sleep(1.5)            # past the bootstrap delay: checked and up
        seen.append(server())
        with none_free():
            await asyncio.sleep(0.5)        # five intervals without a descriptor
            seen.append(server())
        await asyncio.sleep(0.5)
        seen.append(server())
        hw.stop()
        return seen
    try:
        seen = asyncio.run(main())
    finally:
        listener.close()
    assert seen == [(True, f"connected to 127.0.0.1:{port}"),
                    (True, "not checked: Too many open files on this director"),
                    (True, f"connected to 127.0.0.1:{port}")]
    assert all(v.up for v in hw.view(key))


def publishing(tmp_path: Path, write: Callable[[dict[str, Any]], None]) -> HealthWatch:
    """A watch of DOC whose status writer (the worker thread's part) is ``write``."""
    return HealthWatch(loads(DOC, filename="lb1.yaml"),
                       get_logger(str(tmp_path / "log.jsonl"), quiet=True),
                       apply=lambda services: None, held=lambda s: True,
                       publish=lambda snapshot: lambda: write(snapshot))


def compute(seconds: float) -> None:
    """``seconds`` of this thread's CPU (a large snapshot's encoding)."""
    cpu = time.thread_time()
    while time.thread_time() - cpu < seconds:
        pass


def keep_changing(hw: HealthWatch, seconds: float) -> None:
    """Publish every 10 ms for ``seconds``, with a change to publish at every turn."""
    async def main() -> None:
        task = asyncio.get_running_loop().create_task(hw.publish_every(0.01))
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            hw._dirty = True
            await asyncio.sleep(0.005)
        task.cancel()
    asyncio.run(main())


def test_a_slow_snapshot_is_published_less_often_so_the_checks_keep_the_loop(
        tmp_path: Path) -> None:
    # Thousands of real servers: a snapshot that takes 40 ms, and something to publish on
    # every turn. Asked for every 10 ms, it is written about every 400 ms instead.
    published: list[tuple[float, float]] = []

    def write(snapshot: dict[str, Any]) -> None:
        began = time.monotonic()
        compute(0.04)
        published.append((began, time.monotonic()))
    keep_changing(publishing(tmp_path, write), 1.5)
    # Each publish waits nine times the CPU the one before took (at least).
    waits = [b[0] - a[1] for a, b in zip(published, published[1:])]
    assert all(wait >= 9 * 0.04 * 0.95 for wait in waits), waits
    assert 1 <= len(published) <= 5, waits


def test_an_operator_s_lever_is_published_at_once_however_long_the_pause(
        tmp_path: Path) -> None:
    # A snapshot that costs 40 ms pauses publishing 360 ms; a lever set in that pause is
    # published without waiting it out (`haguard ipvs drain` waits for the status file).
    published: list[tuple[float, list[str | None]]] = []

    def write(snapshot: dict[str, Any]) -> None:
        compute(0.04)
        levers = [r["lever"] for s in snapshot["services"] for r in s["realservers"]]
        published.append((time.monotonic(), levers))
    hw = publishing(tmp_path, write)

    async def main() -> float:
        task = asyncio.get_running_loop().create_task(hw.publish_every(0.01))
        while not published:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)
        set_at = time.monotonic()
        hw.set_levers(disabled(80))
        while len(published) < 2:
            await asyncio.sleep(0.005)
        task.cancel()
        return set_at
    set_at = asyncio.run(main())
    at, levers = published[1]
    assert DISABLED in levers, levers
    assert at - set_at < 0.2, at - set_at       # not after the 360 ms pause


def test_a_snapshot_writer_that_waits_rather_than_computes_does_not_slow_publishing(
        tmp_path: Path) -> None:
    # Its wall time is no cost to the checks: the next change is published a second
    # (``seconds``) later, not nine times the wait later.
    published: list[float] = []

    def write(snapshot: dict[str, Any]) -> None:
        time.sleep(0.3)                 # the disk, or the interpreter held elsewhere
        published.append(time.monotonic())
    keep_changing(publishing(tmp_path, write), 2.0)
    # one every 0.3 s or so; nine times the wait would allow two
    assert len(published) >= 4, published


def _large(services: int) -> Config:
    """``services`` services of ten checked real servers each (198.18.0.0/15)."""
    rows = []
    for m in range(services):
        servers = ", ".join(f"{{address: 198.18.{(m * 10 + i) // 250}.{(m * 10 + i) % 250 + 1}}}"
                            for i in range(10))
        rows.append(f"    - {{fwmark: {m + 1}, health: {{check: tcp, port: 80}}, "
                    f"real_servers: [{servers}]}}\n")
    return loads(DOC.split("  services:\n")[0] + "  services:\n" + "".join(rows),
                 filename="lb1.yaml")


def test_a_large_snapshot_is_built_in_slices_with_the_loops_other_work_between(
        tmp_path: Path) -> None:
    # Ten thousand real servers: the snapshot takes a fifth of a second natively, and a
    # VRRP event arriving meanwhile must not wait for all of it.
    hw = HealthWatch(_large(1000), get_logger(str(tmp_path / "log.jsonl"), quiet=True),
                     apply=lambda services: None, held=lambda s: True,
                     publish=lambda snapshot: lambda: None)

    async def main() -> tuple[dict, int]:
        turns = 0
        building = True

        async def other_work() -> None:
            nonlocal turns
            while building:
                turns += 1
                await asyncio.sleep(0)
        other = asyncio.get_running_loop().create_task(other_work())
        await asyncio.sleep(0)
        turns = 0
        built = await hw.snapshot_sliced()
        building = False
        await other
        assert built is not None
        return built[0], turns
    sliced, turns = asyncio.run(main())
    whole = hw.snapshot()
    assert turns >= 2
    assert sliced["services"] == whole["services"] and len(whole["services"]) == 1000


def test_a_snapshot_under_way_when_the_config_is_reloaded_is_dropped(tmp_path: Path) -> None:
    config = _large(1000)
    hw = HealthWatch(config, get_logger(str(tmp_path / "log.jsonl"), quiet=True),
                     apply=lambda services: None, held=lambda s: True,
                     publish=lambda snapshot: lambda: None)

    async def main() -> tuple[dict, float] | None:
        building = asyncio.get_running_loop().create_task(hw.snapshot_sliced())
        await asyncio.sleep(0)         # the build's first slice
        await asyncio.sleep(0)
        assert not building.done()
        hw.reload(config)
        try:
            return await building
        finally:
            hw.stop()
    assert asyncio.run(main()) is None


def test_the_health_file_written_a_service_at_a_time_reads_as_the_snapshot(
        tmp_path: Path) -> None:
    import json

    from haguard.adapters.statefile import StateDir

    hw = HealthWatch(_large(3), get_logger(str(tmp_path / "log.jsonl"), quiet=True),
                     apply=lambda services: None, held=lambda s: True,
                     publish=lambda snapshot: lambda: None)
    snapshot = {**hw.snapshot(), "config": {"path": "lb1.yaml", "digest": "d"}}
    state = StateDir(str(tmp_path / "state"))
    state.ensure()
    state.write_health(snapshot)
    assert state.read_health() == json.loads(json.dumps(snapshot))
    state.write_health({"at": 1.0, "services": []})
    assert state.read_health() == {"at": 1.0, "services": []}


def test_the_table_a_transition_reads_is_the_one_computed_afresh_after_any_results(
        tmp_path: Path) -> None:
    # Each service's table is kept from the last change (a transition asks for all of
    # them); whatever results, levers and reloads came, it is what computing it anew says.
    import random

    from haguard.adapters.probes import ProbeResult
    from haguard.app.healthwatch import _Slot

    config = loads(DOC.replace("health: {check: tcp}",
                               "health: {check: tcp, retries: 1, rise: 2}"), filename="lb1.yaml")
    hw = HealthWatch(config, get_logger(str(tmp_path / "log.jsonl"), quiet=True),
                     apply=lambda services: None, held=lambda s: True,
                     publish=lambda snapshot: lambda: None)
    assert config.ipvs is not None
    slots = [_Slot(s.key, rs, 0, rs.health.checks[0]) for s in config.ipvs.services
             for rs in s.real_servers if rs.health is not None]
    chance = random.Random(7)

    def fresh() -> tuple[VirtualService, ...]:
        assert config.ipvs is not None
        return tuple(hw.table(s.key) for s in config.ipvs.services)
    for step in range(400):
        if step % 97 == 0:
            hw.set_levers(disabled(*chance.sample((80, 81, 82), chance.randint(0, 2))))
        if step == 200:
            hw._load(config)            # a reload (its tasks are not started here)
        hw._outcome(chance.choice(slots), ProbeResult(chance.random() < 0.6, "x", 0.001))
        assert hw.effective_services(config.ipvs.services) == fresh(), step
