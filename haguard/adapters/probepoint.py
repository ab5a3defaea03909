"""A live drill's probe point: the client-side probes, run in a network namespace of this
host that reaches the VIP the way clients do.

The witness pings the VIP and records the namespace's neighbour entries for the VIPs;
httpprobe knocks (a TCP connect every interval) and holds HTTP connections opened before
the failover. Each writes JSON lines into a work directory this object owns.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any

from haguard.adapters import process
from haguard.adapters.files import read_jsonl
from haguard.adapters.waiting import wait_until
from haguard.errors import BadInput, OperationFailed

HOLD_CONNECTIONS = 5


def namespace_exists(name: str) -> bool:
    """Whether ``ip netns`` knows ``name``."""
    return os.path.exists(f"/run/netns/{name}")


@dataclass(frozen=True)
class ProbeRecords:
    """What the probes wrote: the witness's records, the knocks, the held connections."""

    probe: list[dict[str, Any]]
    tcp: list[dict[str, Any]] = field(default_factory=list)
    held: dict[str, Any] = field(default_factory=dict)


class ProbePoint:
    """The probes in ``namespace``: ping + neighbour witness, TCP connects, held HTTP."""

    def __init__(self, namespace: str, parent: str, vip: str, vips: list[str],
                 port: int | None, interval_ms: int) -> None:
        links = subprocess.run(["ip", "-j", "-n", namespace, "link", "show"],
                               capture_output=True, text=True, timeout=30)
        try:
            ifaces = [link["ifname"] for link in json.loads(links.stdout or "[]")
                      if link.get("ifname") != "lo"]
        except (ValueError, KeyError, TypeError):
            ifaces = []
        if not ifaces:
            raise BadInput(f"--probe-from {namespace}: it has no interface besides lo")
        self.namespace, self.vip, self.port = namespace, vip, port
        os.makedirs(parent, exist_ok=True)
        self.work = tempfile.mkdtemp(prefix="drill-", dir=parent)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.probe_file = os.path.join(self.work, "probe.jsonl")
        self.tcp_file = os.path.join(self.work, "tcp.jsonl")
        self.go_file = os.path.join(self.work, "go")
        self.holder: subprocess.Popen[bytes] | None = None
        self.interval_ms = interval_ms
        args = ["--out", self.probe_file, "--ping", vip, "--interval-ms", str(interval_ms)]
        for name in ifaces:
            args += ["--iface", name]
        for address in vips:
            args += ["--watch", address]
        self._spawn("haguard.adapters.witness", *args)

    def _spawn(self, module: str, *args: str, stdout: int = subprocess.DEVNULL
               ) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(["ip", "netns", "exec", self.namespace, sys.executable, "-m",
                                 module, *args], stdin=subprocess.DEVNULL, stdout=stdout,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(proc)
        return proc

    def start(self) -> None:
        """Wait for the ping to be answered, open the held connections, start knocking."""
        def pongs() -> bool:
            records = read_jsonl(self.probe_file)
            errors = [r["error"] for r in records if r.get("kind") == "error"]
            if errors:
                raise OperationFailed(f"the probe in {self.namespace} failed: {errors[0]}")
            return any(r.get("kind") == "pong" for r in records)
        if not wait_until(pongs, 30, 0.1):
            raise OperationFailed(f"{self.vip} does not answer ping from {self.namespace}; "
                                  "a drill needs a probe point that reaches the VIP")
        if self.port is None:
            return
        ready = os.path.join(self.work, "ready")
        self.holder = self._spawn("haguard.adapters.httpprobe", "hold", self.vip, "--port",
                                  str(self.port), "--count", str(HOLD_CONNECTIONS),
                                  "--go-file", self.go_file, "--ready-file", ready,
                                  "--wait-s", "120", stdout=subprocess.PIPE)
        if not wait_until(lambda: os.path.exists(ready), 30, 0.05):
            raise OperationFailed(f"cannot open connections to {self.vip}:{self.port} from "
                                  f"{self.namespace}")
        self._spawn("haguard.adapters.httpprobe", "knock", self.vip, "--port", str(self.port),
                    "--interval-ms", str(self.interval_ms), "--out", self.tcp_file)

    def answered_since(self, since: float) -> bool:
        return any(r.get("kind") == "pong" and r.get("t", 0) > since
                   for r in read_jsonl(self.probe_file))

    def finish(self) -> ProbeRecords:
        """Stop probing (the held connections report before they close); what they wrote."""
        for proc in self.procs:
            if proc is not self.holder and proc.poll() is None:
                proc.terminate()
        held: dict[str, Any] = {}
        if self.holder is not None:
            with open(self.go_file, "w", encoding="ascii"):
                pass
            try:
                out, _ = self.holder.communicate(timeout=60)
                held = json.loads(out.decode() or "{}")
            except (subprocess.TimeoutExpired, ValueError):
                held = {}
        self._stop()
        return ProbeRecords(read_jsonl(self.probe_file),
                            read_jsonl(self.tcp_file) if self.port is not None else [], held)

    def _stop(self) -> None:
        for proc in self.procs:
            process.stop_child(proc)

    def close(self) -> None:
        """Stop every probe and remove the work directory (the report has it all)."""
        self._stop()
        shutil.rmtree(self.work, ignore_errors=True)
