"""TCP and plain-HTTP checks in bulk (haguard.adapters.sweep) against real sockets on the
loopback: what each outcome reads as in `haguard status`, that every probe ends within
its timeout, that a late loop does not turn a connect or an answer that came in time
into a timeout, and that the sweep keeps each check's schedule and leaves no socket
behind. The namespace lab runs them against real servers; these pin the edge cases."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
import threading
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, nullcontext

import pytest

from haguard.adapters.probes import ProbeResult
from haguard.adapters.sweep import BURST, EARLY_S, EARLY_SHARE, SLICE_S, Sweep, Target
from haguard.core.healthconfig import HttpSpec
from tests.unit.descriptors import none_free


async def swept(target: Target, stall_s: float = 0.0, starved: bool = False) -> ProbeResult:
    """One probe of ``target`` through a sweep on the running loop; with ``stall_s`` the
    loop stalls that long once the connect is under way (thousands of checks under load);
    ``starved``: made with every file descriptor of the process in use."""
    loop = asyncio.get_running_loop()
    got: asyncio.Future[ProbeResult] = loop.create_future()

    def done(ident: int, result: ProbeResult) -> None:
        got.set_result(result)
    sweep = Sweep(loop, done)
    try:
        with none_free() if starved else nullcontext():
            sweep.add(1, target, 0.0)
            if stall_s:
                while not sweep.in_flight() and not got.done():
                    await asyncio.sleep(0)
                time.sleep(stall_s)
            return await got
    finally:
        sweep.close()


def probe_once(address: str, port: int, timeout_s: float, http: HttpSpec | None = None,
               stall_s: float = 0.0, starved: bool = False) -> ProbeResult:
    return asyncio.run(swept(Target(address, port, timeout_s, http), stall_s, starved))


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def listening(backlog: int = 8) -> Iterator[int]:
    """A loopback listener nobody accepts from (the kernel completes connects); its port."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(backlog)
        yield int(listener.getsockname()[1])


@contextmanager
def dropping_syns() -> Iterator[int]:
    """A loopback port whose accept queue is full: the kernel drops further SYNs, as a
    firewall would; connects to it time out."""
    with listening(backlog=0) as port:
        fillers = []
        try:
            for _ in range(4):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
                fillers.append(s)
            yield port
        finally:
            for s in fillers:
                s.close()


def test_a_connect_that_completes_is_up_and_says_where() -> None:
    with listening() as port:
        result = probe_once("127.0.0.1", port, 1.0)
    assert (result.ok, result.detail) == (True, f"connected to 127.0.0.1:{port}")


def test_a_closed_port_is_a_refusal_at_once() -> None:
    result = probe_once("127.0.0.1", closed_port(), 5.0)
    assert (result.ok, result.detail) == (False, "connect refused")
    assert result.duration_s < 1.0


def test_a_listener_that_drops_syns_is_a_connect_timeout_within_the_timeout() -> None:
    with dropping_syns() as port:
        result = probe_once("127.0.0.1", port, 0.3)
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
            sweep = Sweep(loop, done)
            sweep.add(1, Target("127.0.0.1", port, 1.0), 0.0)
            sweep.add(2, Target("127.0.0.1", refused, 1.0), 0.0)
            try:
                await asyncio.wait_for(enough, 5.0)
            finally:
                sweep.close()
            return seen
        seen = asyncio.run(main())
    gaps = {ident: [b - a for a, b in zip(times, times[1:])] for ident, times in seen.items()}
    # A probe may begin up to EARLY_SHARE of its delay early (sharing a wake-up).
    assert all(0.05 * (1 - EARLY_SHARE) <= g < 0.5 for g in gaps[1]), gaps
    assert all(0.2 * (1 - EARLY_SHARE) <= g < 0.8 for g in gaps[2]), gaps


def test_probes_due_within_a_few_ms_share_one_wake_up_and_none_begins_too_early() -> None:
    # A thousand checks a second are a millisecond apart: one wake-up each would cost
    # more than the probes. Ten due over 4 ms begin together, the first when it is
    # due, none more than EARLY_SHARE of its delay (and at most EARLY_S) before its time.
    class Counted(Sweep):
        wake_ups = 0

        def _tick(self) -> None:
            self.wake_ups += 1
            super()._tick()
    with listening(backlog=64) as port:
        async def main() -> tuple[int, dict[int, float], float]:
            loop = asyncio.get_running_loop()
            began: dict[int, float] = {}
            all_ended = loop.create_future()

            def done(ident: int, result: ProbeResult) -> None:
                began[ident] = loop.time() - result.duration_s
                if len(began) == 10:
                    all_ended.set_result(None)
            # A clock that stands still: no slice ends, however loaded the machine.
            sweep = Counted(loop, done, clock=lambda: 0.0)
            at = loop.time()
            for ident in range(10):
                sweep.add(ident, Target("127.0.0.1", port, 1.0), 0.5 + ident * 0.00045)
            try:
                await asyncio.wait_for(all_ended, 5.0)
            finally:
                sweep.close()
            return sweep.wake_ups, began, at
        wake_ups, began, at = asyncio.run(main())
    early = {i: at + 0.5 + i * 0.00045 - t for i, t in began.items()}
    assert all(e <= min(EARLY_S, (0.5 + i * 0.00045) * EARLY_SHARE) + 1e-6
               for i, e in early.items()), early
    assert wake_ups <= 2, wake_ups


def test_a_check_whose_result_returns_no_delay_is_not_probed_again() -> None:
    with listening() as port:
        async def main() -> int:
            loop = asyncio.get_running_loop()
            calls = 0

            def done(ident: int, result: ProbeResult) -> None:
                nonlocal calls
                calls += 1
            sweep = Sweep(loop, done)
            sweep.add(1, Target("127.0.0.1", port, 1.0), 0.0)
            await asyncio.sleep(0.3)
            sweep.close()
            return calls
        assert asyncio.run(main()) == 1


def test_the_sweep_leaves_no_socket_open_whatever_the_outcome_and_when_cleared() -> None:
    # Connects completed, refused and timed out, HTTP answers that never came, and then a
    # clear() with probes in flight: every socket is closed, none is left for the collector.
    with listening() as up_port, dropping_syns() as full_port:
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
            sweep = Sweep(loop, done)
            for ident, (port, timeout, http) in enumerate(
                    [(up_port, 1.0, None), (refused, 1.0, None), (full_port, 0.05, None),
                     (up_port, 0.05, HttpSpec("/")), (refused, 1.0, HttpSpec("/"))] * 10):
                sweep.add(ident, Target("127.0.0.1", port, timeout, http), 0.0)
            await asyncio.sleep(0.5)
            while not sweep.in_flight():        # a clear() with connects under way
                await asyncio.sleep(0.005)
            in_flight = sweep.in_flight()
            sweep.clear()
            await asyncio.sleep(0.05)
            sweep.close()
            return details, in_flight
        gc.collect()       # earlier tests' garbage must not close its files mid-count
        before = len(os.listdir("/proc/self/fd"))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            details, in_flight = asyncio.run(main())
            gc.collect()
        after = len(os.listdir("/proc/self/fd"))
    assert details == {f"connected to 127.0.0.1:{up_port}", "connect refused",
                       "connect timeout after 0.05 s", "HTTP timeout after 0.05 s on /"}
    assert in_flight > 0            # the clear() met connects under way
    assert after == before
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []


# ---------------------------------------------------------------------- plain HTTP
@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[int]:
    """A loopback HTTP server answering with ``handler``; yields its port."""
    srv = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield srv.sockets[0].getsockname()[1]
    finally:
        srv.close()
        await srv.wait_closed()


def answering(*chunks: bytes, pause_s: float = 0.0) -> Handler:
    """A handler that reads the request, then writes ``chunks`` with ``pause_s`` between."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(pause_s)
        writer.close()
    return handle


def http_probe(handler: Handler, spec: HttpSpec, timeout_s: float = 1.0) -> ProbeResult:
    async def main() -> ProbeResult:
        async with server(handler) as port:
            return await swept(Target("127.0.0.1", port, timeout_s, spec))
    return asyncio.run(main())


@pytest.mark.parametrize(("chunks", "spec", "ok", "detail"), [
    ((b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",), HttpSpec("/healthz"), True,
     "HTTP 200 from /healthz"),
    ((b"HTTP/1.1 503 Service Unavailable\r\n\r\n",), HttpSpec("/healthz"), False,
     "HTTP 503 from /healthz"),
    ((b"HTTP/1.0 204 No Content\r\n\r\n",), HttpSpec("/", status=(200, 204)), True,
     "HTTP 204 from /"),
    ((b"SSH-2.0-OpenSSH_9.2\r\n",), HttpSpec("/"), False,
     "not an HTTP answer from /: 'SSH-2.0-OpenSSH_9.2'"),
    ((), HttpSpec("/"), False, "not an HTTP answer from /: 'nothing'"),
    # The status line, headers and body in pieces: the probe reads on until it has them.
    ((b"HTTP/1.1 2", b"00 OK\r\nX-A: 1\r", b"\n\r\n", b"all ", b"ready"),
     HttpSpec("/", body="ready"), True, "HTTP 200 from /"),
    ((b"HTTP/1.1 200 OK\r\n\r\nstarting",), HttpSpec("/", body="ready"), False,
     "HTTP 200 from / without 'ready' in the body"),
    # Bare newlines end headers too, as the old line reader took them.
    ((b"HTTP/1.1 200 OK\nX-A: 1\n\nready",), HttpSpec("/", body="ready"), True,
     "HTTP 200 from /"),
    ((b"HTTP/1.1 200 OK\r\nX-A: 1\r\n",), HttpSpec("/", body="ready"), False,
     "HTTP 200 from / without 'ready' in the body"),
])
def test_an_http_check_judges_the_status_and_the_body(
        chunks: tuple[bytes, ...], spec: HttpSpec, ok: bool, detail: str) -> None:
    result = http_probe(answering(*chunks, pause_s=0.01), spec)
    assert (result.ok, result.detail) == (ok, detail)


def test_an_http_check_sends_the_configured_host_and_path() -> None:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\n\r\n")
        writer.close()
    result = http_probe(handle, HttpSpec("/check?x=1", host="www.example.org"))
    assert result.ok
    lines = seen[0].decode().split("\r\n")
    assert lines[0] == "GET /check?x=1 HTTP/1.1"
    assert "Host: www.example.org" in lines and "Connection: close" in lines


def test_an_answer_slower_than_the_timeout_is_a_timeout_that_names_the_path() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(2.0)
        writer.close()
    result = http_probe(slow, HttpSpec("/slow"), timeout_s=0.3)
    assert (result.ok, result.detail) == (False, "HTTP timeout after 0.3 s on /slow")
    assert 0.3 <= result.duration_s < 1.5


def test_each_read_of_an_answer_has_the_whole_timeout_as_in_keepalived() -> None:
    # Three pieces 0.2 s apart with a 0.3 s timeout: no wait is longer than the timeout,
    # the whole exchange is (keepalived's HTTP_GET re-arms its timer for each read).
    result = http_probe(answering(b"HTTP/1.1 200 OK\r\n", b"X-A: 1\r\n\r\n", b"ready",
                                  pause_s=0.2), HttpSpec("/", body="ready"), timeout_s=0.3)
    assert (result.ok, result.detail) == (True, "HTTP 200 from /")
    assert result.duration_s >= 0.4


def test_an_http_check_to_a_closed_port_is_a_refusal() -> None:
    result = probe_once("127.0.0.1", closed_port(), 1.0, http=HttpSpec("/"))
    assert (result.ok, result.detail) == (False, "connect refused")


def test_headers_that_never_end_are_read_no_further_than_the_body_limit() -> None:
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n" + (b"X-Pad: " + b"a" * 1000 + b"\r\n") * 80)
        await writer.drain()
        await asyncio.sleep(5)          # and never the blank line
        writer.close()
    result = http_probe(endless, HttpSpec("/", body="ready"), timeout_s=2.0)
    assert (result.ok, result.detail) == (False, "HTTP 200 from / without 'ready' in the body")
    assert result.duration_s < 1.5


def _answers_at_once(listener: socket.socket) -> None:
    """Accept one connection and answer it at once, before the request is even read."""
    conn, _ = listener.accept()
    with conn:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        conn.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            conn.recv(4096)


def test_an_http_answer_that_came_in_time_is_up_even_when_the_loop_runs_late() -> None:
    # The loop stalls for three timeouts while the real server connects and answers: the
    # answer is in the socket when the probe wakes, and the probe reads it.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        server_thread = threading.Thread(target=_answers_at_once, args=(listener,))
        server_thread.start()
        try:
            result = probe_once("127.0.0.1", listener.getsockname()[1], 0.1,
                                http=HttpSpec("/", body="ok"), stall_s=0.3)
        finally:
            server_thread.join(5)
    assert (result.ok, result.detail) == (True, "HTTP 200 from /")


def turns_while_due(count: int, timeout_s: float,
                    clock: Callable[[], float] | None = None) -> list[tuple[int, int]]:
    """``count`` checks of a listener, all due at once; at each turn of the loop, what
    another reader on it saw: (probes ended, probes in flight)."""
    with listening(backlog=1024) as port:
        async def main() -> list[tuple[int, int]]:
            loop = asyncio.get_running_loop()
            ended = 0
            sweep: Sweep

            def done(ident: int, result: ProbeResult) -> None:
                nonlocal ended
                ended += 1
            seen: list[tuple[int, int]] = []
            r, w = os.pipe()
            os.write(w, b"x")           # readable on every turn of the loop
            loop.add_reader(r, lambda: seen.append((ended, sweep.in_flight())))
            sweep = Sweep(loop, done) if clock is None else Sweep(loop, done, clock=clock)
            for ident in range(count):
                sweep.add(ident, Target("127.0.0.1", port, timeout_s), 0.0)
            try:
                while ended < count:
                    await asyncio.sleep(0.01)
            finally:
                loop.remove_reader(r)
                os.close(r)
                os.close(w)
                sweep.close()
            return seen
        return asyncio.run(main())


def steps(counts: list[int]) -> list[int]:
    return [b - a for a, b in zip(counts, counts[1:])]


def test_a_thousand_checks_due_at_once_begin_in_bursts_with_the_loops_other_work_between(
        ) -> None:
    # After a stall thousands of checks are due together: another reader on the loop (in
    # the agent, keepalived's FIFO) runs between bursts of BURST, not after all of them.
    seen = [e + f for e, f in turns_while_due(1000, 5.0)]
    assert seen[-1] == 1000
    assert 0 < max(steps(seen)) <= BURST and max(steps(seen)) < 1000, steps(seen)


def test_one_wake_up_of_the_sweep_holds_the_loop_one_slice_however_much_is_due() -> None:
    # More checks due than the host can make (ten thousand real servers on a slow
    # machine): every wake-up, beginning probes or reading results, ends when its slice
    # of SLICE_S is used up, and the loop's other reader runs between. The clock here
    # moves a millisecond each time the sweep looks at it.
    ticks = iter(range(10**9))

    def clock() -> float:
        return next(ticks) / 1000
    per_slice = int(SLICE_S * 1000) + 2
    seen = turns_while_due(600, 30.0, clock)
    ended, begun = [e for e, _ in seen], [e + f for e, f in seen]
    assert ended[-1] == 600
    for counts in (ended, begun):
        assert 0 < max(steps(counts)) <= per_slice, steps(counts)


def test_a_result_whose_handling_raises_stops_no_other_check() -> None:
    # A bug in what hears one check's result, on the sweep's timer (a connect timeout):
    # the loop's handler reports it, and the timer still runs every other check.
    with listening() as port, dropping_syns() as full_port:
        async def main() -> tuple[int, list[str]]:
            loop = asyncio.get_running_loop()
            errors: list[str] = []
            loop.set_exception_handler(lambda _, context: errors.append(
                str(context.get("exception"))))
            heard = {1: 0, 2: 0}

            def done(ident: int, result: ProbeResult) -> float:
                heard[ident] += 1
                if ident == 1:
                    raise RuntimeError(f"a bug on {result.detail}")
                return 0.02
            sweep = Sweep(loop, done)
            sweep.add(1, Target("127.0.0.1", full_port, 0.05), 0.0)
            sweep.add(2, Target("127.0.0.1", port, 1.0), 0.2)
            await asyncio.sleep(0.6)
            sweep.close()
            return heard[2], errors
        later, errors = asyncio.run(main())
    assert errors[:1] == ["a bug on connect timeout after 0.05 s"]
    assert later >= 5
