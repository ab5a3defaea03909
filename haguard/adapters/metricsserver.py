"""The agent's /metrics over HTTP, on the agent's event loop, rendered by prometheus_client.

The loop only takes a snapshot of what the metrics read (``collect``, cheap) and answers;
the families are built and written in a worker thread, so a scrape of ten thousand real
servers does not hold up a VRRP transition.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from haguard.core.metrics import Family

REQUEST_LIMIT = 8192        # bytes of a request's head read at most
REQUEST_TIMEOUT_S = 5.0

# On the loop: what the families will be built from, as a function the worker runs.
Collect = Callable[[], Callable[[], Iterable[Family]]]


class _Collector:
    """Our families as prometheus_client's, for one scrape."""

    def __init__(self, build: Callable[[], Iterable[Family]]) -> None:
        self._build = build

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        for family in self._build():
            labels = [name for name, _ in family.samples[0][0]] if family.samples else []
            out: Any = (CounterMetricFamily if family.kind == "counter" else
                        GaugeMetricFamily)(family.name, family.help, labels=labels)
            for sample_labels, value in family.samples:
                out.add_metric([v for _, v in sample_labels], float(value))
            yield out


def exposition(build: Callable[[], Iterable[Family]]) -> tuple[bytes, str]:
    """The families ``build`` makes, in Prometheus' text format, and its content type."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(build))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class MetricsServer:
    """GET /metrics on ``address``:``port`` until ``close``."""

    def __init__(self, collect: Collect) -> None:
        self._collect = collect
        self._server: asyncio.Server | None = None

    async def start(self, address: str, port: int) -> None:
        """Listen; OSError as bind(2) says (the address in use, not this host's)."""
        self._server = await asyncio.start_server(self._serve, address, port,
                                                  reuse_address=True)

    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                return
            if len(head) > REQUEST_LIMIT:
                return
            method, _, rest = head.decode("latin-1").partition(" ")
            target = rest.split(" ", 1)[0].split("?", 1)[0]
            if method != "GET":
                await _answer(writer, 405, b"only GET /metrics\n", "text/plain")
            elif target != "/metrics":
                await _answer(writer, 404, b"haguard agent: the metrics are at /metrics\n",
                              "text/plain")
            else:
                build = self._collect()
                try:
                    body, content_type = await asyncio.get_running_loop().run_in_executor(
                        None, exposition, build)
                except Exception as exc:  # noqa: BLE001 - a scrape fails, the agent goes on
                    await _answer(writer, 500, f"metrics failed: {exc}\n".encode(),
                                  "text/plain")
                    return
                await _answer(writer, 200, body, content_type)
        except OSError:
            pass            # the scraper went away
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _answer(writer: asyncio.StreamWriter, status: int, body: bytes,
                  content_type: str) -> None:
    reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed",
              500: "Internal Server Error"}[status]
    writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
                 f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("ascii")
                 + body)
    await writer.drain()
