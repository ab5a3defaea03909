"""TCP checks in bulk (haguard.adapters.tcpsweep) against real sockets on the loopback:
what each outcome reads as, that every probe ends within its timeout, that a late loop
does not turn a connect that completed in time into a timeout, and that the sweep keeps
each check's schedule and leaves no socket behind."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import pytest

from haguard.adapters.probes import ProbeResult
from haguard.adapters.tcpsweep import Target, TcpSweep
from tests.unit.descriptors import none_free
from tests.unit.test_probes import closed_port


def probe_once(address: str, port: int, timeout_s: float, stall_s: float = 0.0,
               starved: bool = False) -> ProbeResult:
    """One probe through a sweep; with ``stall_s`` the loop stalls that long once the
    connect is under way (thousands of checks under load); ``starved``: made with every
    file descriptor of the process in use."""
    async def main() -> ProbeResult:
        loop = asyncio.get_running_loop()
        got: asyncio.Future[ProbeResult] = loop.create_future()

        def done(ident: int, result: ProbeResult) -> None:
            got.set_result(result)
        sweep = TcpSweep(loop, done)
        try:
            with none_free() if starved else nullcontext():
                sweep.add(1, Target(address, port, timeout_s), 0.0)
                if stall_s:
                    while not sweep.in_flight() and not got.done():
                        await asyncio.sleep(0)
                    time.sleep(stall_s)
                return await got
        finally:
            sweep.close()
    return asyncio.run(main())


@contextmanager
def listening(backlog: int = 8) -> Iterator[int]:
    """A loopback listener nobody accepts from (the kernel completes connects); its port."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(backlog)
        yield int(listener.getsockname()[1])


def test_a_connect_that_completes_is_up_and_says_where() -> None:
    with listening() as port:
        result = probe_once("127.0.0.1", port, 1.0)
    assert (result.ok, result.detail) == (True, f"connected to 127.0.0.1:{port}")


def test_a_closed_port_is_a_refusal_at_once() -> None:
    result = probe_once("127.0.0.1", closed_port(), 5.0)
    assert (result.ok, result.detail) == (False, "connect refused")
    assert result.duration_s < 1.0


def test_a_listener_that_drops_syns_is_a_connect_timeout_within_the_timeout() -> None:
    # A full accept queue: the kernel drops further SYNs, as a firewall would.
    with listening(backlog=0) as port:
        fillers = []
        try:
            for _ in range(4):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
                fillers.append(s)
            result = probe_once("127.0.0.1", port, 0.3)
        finally:
            for s in fillers:
                s.close()
    assert (result.ok, result.detail) == (False, "connect timeout after 0.3 s")
    assert 0.3 <= result.duration_s < 1.0


def test_a_connect_that_completed_in_time_is_up_even_when_the_loop_runs_late() -> None:
    # The loop stalls for three timeouts: the connect ended in the kernel long before,
    # and its end and the deadline are seen together.
    with listening() as port:
        result = probe_once("127.0.0.1", port, 0.1, stall_s=0.3)
    assert result.ok, result.detail


def test_ipv6_addresses_are_checked_and_written_in_brackets() -> None:
    with socket.socket(socket.AF_INET6) as s:
        try:
            s.bind(("::1", 0))
        except OSError:
            pytest.skip("this host has no ::1")
        s.listen(1)
        result = probe_once("::1", s.getsockname()[1], 1.0)
    assert result.ok and result.detail.startswith("connected to [::1]:")


def test_a_connect_this_host_cannot_make_is_no_verdict() -> None:
    # Every file descriptor in use (thousands of checks, a low limit): the connect is not
    # made, and the result says so instead of calling the real server down.
    result = probe_once("127.0.0.1", 9, 1.0, starved=True)
    assert (result.ok, result.local, result.detail) == (
        False, True, "not checked: Too many open files on this director")


def test_each_check_runs_again_after_the_delay_its_result_returned() -> None:
    # Two checks, one up and one refused, each told to come back after its own delay.
    with listening() as port:
        refused = closed_port()

        async def main() -> dict[int, list[float]]:
            loop = asyncio.get_running_loop()
            seen: dict[int, list[float]] = {1: [], 2: []}
            enough = loop.create_future()

            def done(ident: int, result: ProbeResult) -> float | None:
                assert result.ok == (ident == 1), result.detail
                seen[ident].append(loop.time())
                if len(seen[1]) >= 4 and len(seen[2]) >= 2 and not enough.done():
                    enough.set_result(None)
                return 0.05 if ident == 1 else 0.2
            sweep = TcpSweep(loop, done)
            sweep.add(1, Target("127.0.0.1", port, 1.0), 0.0)
            sweep.add(2, Target("127.0.0.1", refused, 1.0), 0.0)
            try:
                await asyncio.wait_for(enough, 5.0)
            finally:
                sweep.close()
            return seen
        seen = asyncio.run(main())
    gaps = {ident: [b - a for a, b in zip(times, times[1:])] for ident, times in seen.items()}
    assert all(0.05 <= g < 0.5 for g in gaps[1]), gaps
    assert all(0.2 <= g < 0.8 for g in gaps[2]), gaps


def test_a_check_whose_result_returns_no_delay_is_not_probed_again() -> None:
    with listening() as port:
        async def main() -> int:
            loop = asyncio.get_running_loop()
            calls = 0

            def done(ident: int, result: ProbeResult) -> None:
                nonlocal calls
                calls += 1
            sweep = TcpSweep(loop, done)
            sweep.add(1, Target("127.0.0.1", port, 1.0), 0.0)
            await asyncio.sleep(0.3)
            sweep.close()
            return calls
        assert asyncio.run(main()) == 1


def test_the_sweep_leaves_no_socket_open_whatever_the_outcome_and_when_cleared() -> None:
    # Connects completed, refused and timed out, and then a clear() with connects in
    # flight (SYNs dropped): every socket is closed, none is left for the collector.
    with listening() as up_port, listening(backlog=0) as full_port:
        fillers = []
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", full_port))
            fillers.append(s)
        refused = closed_port()

        async def main() -> tuple[set[str], int]:
            loop = asyncio.get_running_loop()
            details: set[str] = set()
            results = 0

            def done(ident: int, result: ProbeResult) -> float | None:
                nonlocal results
                details.add(result.detail)
                results += 1
                return 0.01
            sweep = TcpSweep(loop, done)
            for ident, (port, timeout) in enumerate(
                    [(up_port, 1.0), (refused, 1.0), (full_port, 0.05)] * 10):
                sweep.add(ident, Target("127.0.0.1", port, timeout), 0.0)
            await asyncio.sleep(0.5)
            while not sweep.in_flight():        # a clear() with connects under way
                await asyncio.sleep(0.005)
            in_flight = sweep.in_flight()
            sweep.clear()
            await asyncio.sleep(0.05)
            sweep.close()
            return details, in_flight
        try:
            gc.collect()       # earlier tests' garbage must not close its files mid-count
            before = len(os.listdir("/proc/self/fd"))
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ResourceWarning)
                details, in_flight = asyncio.run(main())
                gc.collect()
            after = len(os.listdir("/proc/self/fd"))
        finally:
            for s in fillers:
                s.close()
    assert details == {f"connected to 127.0.0.1:{up_port}", "connect refused",
                       "connect timeout after 0.05 s"}
    assert in_flight > 0            # the clear() met connects under way
    assert after == before
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []
