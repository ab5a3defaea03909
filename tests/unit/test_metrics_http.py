"""The agent's /metrics over HTTP (haguard.adapters.metricsserver): what prometheus_client
serves is what the textfile says, plus the agent's own health; the server answers only
GET /metrics and builds each answer off the event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from haguard.adapters.metricsserver import MetricsServer, exposition
from haguard.core.config import loads
from haguard.core.metrics import Family, agent_families, families, text
from haguard.errors import ConfigError

RECORDS = [{"instance": "VI_1", "state": "MASTER", "complete": True, "transitions": 7,
            "last_transition_ms": 12.5, "announcements": 3},
           {"instance": "VI_2", "state": "BACKUP", "transitions": 1}]
HEALTH = {"services": [{"service": "tcp 192.0.2.100:80", "quorum": True, "realservers": [
    {"realserver": "192.0.2.21:80", "state": "up", "in_kernel": True, "weight": 3,
     "transitions": 2, "checks": [{"at": 100.0, "duration_ms": 1.5}]},
    {"realserver": "192.0.2.22:80", "state": "down", "in_kernel": False, "weight": None,
     "transitions": 1, "checks": []}]}]}


def samples(exposed: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and labels (parsed by prometheus_client)."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(exposed) for s in f.samples}


def served(found: Iterable[Family]) -> str:
    body, content_type = exposition(lambda: list(found))
    assert content_type.startswith("text/plain; version=")
    return body.decode()


def test_the_endpoint_serves_every_sample_of_the_textfile_with_the_same_value() -> None:
    found = families("lb1", RECORDS, {"outage_ms": 620.0, "at": 1700000000.0}, HEALTH)
    assert samples(served(found)) == samples(text(found))
    assert samples(served(found))[("haguard_realserver_up", (
        ("node", "lb1"), ("realserver", "192.0.2.22:80"),
        ("service", "tcp 192.0.2.100:80")))] == 0


def test_the_agents_own_health_is_served_beside_it() -> None:
    own = samples(served(agent_families("lb1", 0.0042, 12, 1700000000.5)))
    assert own == {("haguard_agent_events_applied_total", (("node", "lb1"),)): 12,
                   ("haguard_agent_loop_lag_seconds", (("node", "lb1"),)): 0.0042,
                   ("haguard_agent_last_fifo_line_timestamp_seconds", (("node", "lb1"),)):
                       1700000000.5}
    # Before the first measurement and the first line: the counter alone.
    assert [f.name for f in agent_families("lb1", None, 0, None)] == [
        "haguard_agent_events_applied_total"]


CONFIG = """\
node: {{name: lb1}}
agent: {{metrics: {{listen: {listen}}}}}
instances:
  - {{name: VI_1, interface: eth0, virtual_router_id: 51, priority: 150,
     vips: [192.0.2.100/32]}}
"""


@pytest.mark.parametrize(("listen", "expected"), [
    ("127.0.0.1:9650", ("127.0.0.1", 9650)),
    ('"[::1]:9650"', ("::1", 9650)),
    ("192.0.2.10:9100", ("192.0.2.10", 9100)),
])
def test_metrics_listen_takes_an_address_and_a_port(listen: str, expected: tuple) -> None:
    agent = loads(CONFIG.format(listen=listen)).agent
    assert agent is not None and agent.metrics_listen == expected


@pytest.mark.parametrize(("listen", "words"), [
    ("9650", "agent.metrics.listen: 9650: give ADDRESS:PORT, e.g. 127.0.0.1:9650"),
    ("localhost:9650", "'localhost' is not an IP address (a host name is not resolved"),
    ("127.0.0.1:0", "port 0 is outside 1-65535"),
    ('"10.0.0.300:80"', "'10.0.0.300' is not an IP address"),
    ('"::1:9650"', "give ADDRESS:PORT"),
])
def test_a_listen_that_is_not_address_and_port_is_refused_with_its_path(
        listen: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        loads(CONFIG.format(listen=listen))
    assert words in str(caught.value)


async def _get(port: int, request: bytes) -> tuple[str, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.decode().split("\r\n")[0], body


def test_the_server_answers_get_metrics_and_nothing_else() -> None:
    built_in: list[str] = []

    def collect():            # on the loop: the snapshot; the build runs elsewhere
        def build() -> list[Family]:
            built_in.append(threading.current_thread().name)
            return families("lb1", RECORDS, None, HEALTH)
        return build

    async def main() -> list[tuple[str, bytes]]:
        server = MetricsServer(collect)
        await server.start("127.0.0.1", 0)
        try:
            return [await _get(server.port(), request) for request in (
                b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")]
        finally:
            server.close()
    (ok, body), (missing, _), (refused, _) = asyncio.run(main())
    assert ok == "HTTP/1.1 200 OK"
    assert ("haguard_instance_state", (("instance", "VI_1"), ("node", "lb1"),
                                       ("state", "MASTER"))) in samples(body.decode())
    assert missing == "HTTP/1.1 404 Not Found"
    assert refused == "HTTP/1.1 405 Method Not Allowed"
    assert built_in and threading.main_thread().name not in built_in
