"""The probes against real sockets on the loopback: what each outcome reads as in
`haguard status`, and that every probe ends within its timeout (haguard.adapters.probes).
The namespace lab runs them against real servers; these pin the edge cases of the bytes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest

from haguard.adapters import probes
from haguard.core.healthconfig import HttpSpec
from tests.unit.descriptors import none_free

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


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


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(coro: Awaitable[probes.ProbeResult]) -> probes.ProbeResult:
    async def main() -> probes.ProbeResult:
        return await coro
    return asyncio.run(main())


def late(probe: Coroutine[Any, Any, probes.ProbeResult]) -> probes.ProbeResult:
    """Run ``probe`` on a loop that stalls for three of its 0.1 s timeouts once the
    probe's connect is under way (thousands of checks under load)."""
    async def main() -> probes.ProbeResult:
        task = asyncio.ensure_future(probe)
        await asyncio.sleep(0)          # the probe's connect is under way
        time.sleep(0.3)                 # the loop does not run for three timeouts
        return await task
    return asyncio.run(main())


def http_probe(handler: Handler, spec: HttpSpec, timeout_s: float = 1.0
               ) -> probes.ProbeResult:
    async def main() -> probes.ProbeResult:
        async with server(handler) as port:
            return await probes.http("127.0.0.1", port, spec, timeout_s)
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
def test_an_http_probe_judges_the_status_and_the_body(
        chunks: tuple[bytes, ...], spec: HttpSpec, ok: bool, detail: str) -> None:
    result = http_probe(answering(*chunks, pause_s=0.01), spec)
    assert (result.ok, result.detail) == (ok, detail)


def test_an_http_probe_sends_the_configured_host_and_path() -> None:
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
    result = http_probe(_slow(2.0), HttpSpec("/slow"), timeout_s=0.3)
    assert (result.ok, result.detail) == (False, "HTTP timeout after 0.3 s on /slow")
    assert 0.3 <= result.duration_s < 1.5


def _slow(delay_s: float) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(delay_s)
        writer.close()
    return handle


def test_an_http_probe_to_a_closed_port_is_a_refusal() -> None:
    result = run(probes.http("127.0.0.1", closed_port(), HttpSpec("/"), 1.0))
    assert (result.ok, result.detail) == (False, "connect refused")


def test_probes_leave_no_socket_open_whatever_their_outcome() -> None:
    import gc
    import warnings

    # A listener nobody accepts from: the kernel completes connects, nothing answers.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]

    async def main() -> list[str]:
        details = []
        for _ in range(20):
            details.append((await probes.http("127.0.0.1", port, HttpSpec("/"), 0.02)).detail)
            details.append((await probes.http("127.0.0.1", closed_port(), HttpSpec("/"),
                                              1.0)).detail)
        return details
    try:
        gc.collect()       # earlier tests' garbage must not close its files mid-count
        before = len(os.listdir("/proc/self/fd"))
        # A socket dropped without close() says so when it is freed.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            details = asyncio.run(main())
            gc.collect()
        after = len(os.listdir("/proc/self/fd"))
    finally:
        listener.close()
    assert set(details) == {"connect refused", "HTTP timeout after 0.02 s on /"}
    assert after == before
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []


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
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    server_thread = threading.Thread(target=_answers_at_once, args=(listener,))
    server_thread.start()

    try:
        result = late(probes.http("127.0.0.1", listener.getsockname()[1],
                                  HttpSpec("/", body="ok"), 0.1))
    finally:
        server_thread.join(5)
        listener.close()
    assert (result.ok, result.detail) == (True, "HTTP 200 from /")


def test_a_probe_this_host_cannot_make_is_no_verdict_on_the_real_server() -> None:
    # Every file descriptor in use (thousands of checks, a low limit): the connect is not
    # made, and the result says so instead of calling the real server down.
    async def main() -> list[probes.ProbeResult]:
        with none_free():
            return [await probes.http("127.0.0.1", 9, HttpSpec("/"), 1.0)]
    results = asyncio.run(main())
    assert [(r.ok, r.local, r.detail) for r in results] == [
        (False, True, "not checked: Too many open files on this director")]
