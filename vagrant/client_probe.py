#!/usr/bin/python3
"""The client's view of a failover, recorded on the client VM (as root).

Three things at once, all timed on the client's monotonic clock:
- HTTP requests to the VIP, each on a new TCP connection, every --interval seconds
  (which real server answered, or the error);
- every ARP frame on the interface (AF_PACKET): the directors' gratuitous ARPs, and
  whether the client itself asked who has the VIP;
- the client's neighbour entry for the VIP (/proc/net/arp), each change of its MAC.

It runs until --stop-file appears or --duration passes, then writes JSON to --out.
--ready-file is written once a request has been answered, so a test knows traffic
flows before it triggers anything; the moment each --mark-file appears is recorded, so a
test can put its trigger (and what it saw after) on the client's clock. Standard library
only: the client has no haguard.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import struct
import sys
import threading
import time
from typing import Any

ETH_P_ARP = 0x0806
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35        # asm-generic/socket.h; the socket module does not name it


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


class Probe:
    def __init__(self, vip: str, port: int, iface: str) -> None:
        self.vip = vip
        self.port = port
        self.iface = iface
        self.t0 = time.monotonic()
        self.wall0 = time.time() - (time.monotonic() - self.t0)   # the wall clock at t0
        self.stop = threading.Event()
        self.requests: list[dict[str, Any]] = []
        self.arp: list[dict[str, Any]] = []
        self.neighbour: list[dict[str, Any]] = []
        self.answered = threading.Event()

    def now_ms(self) -> float:
        return round((time.monotonic() - self.t0) * 1000, 1)

    def kernel_ms(self, ancillary: list[tuple[int, int, bytes]]) -> float:
        """A frame's kernel receive time (SO_TIMESTAMPNS, the wall clock) on this
        probe's clock; now when the kernel gave none."""
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                sec, nsec = struct.unpack("qq", data[:16])
                return round((sec + nsec / 1e9 - self.wall0) * 1000, 1)
        return self.now_ms()

    def http(self, interval: float, timeout: float) -> None:
        while not self.stop.is_set():
            start = self.now_ms()
            conn = http.client.HTTPConnection(self.vip, self.port, timeout=timeout)
            entry: dict[str, Any] = {"t": start}
            try:
                conn.request("GET", "/")
                entry["server"] = conn.getresponse().read().decode().strip()
                self.answered.set()
            except (OSError, http.client.HTTPException) as exc:
                entry["error"] = f"{type(exc).__name__}: {exc}"
            finally:
                conn.close()
            entry["done"] = self.now_ms()
            self.requests.append(entry)
            left = interval - (entry["done"] - start) / 1000
            if left > 0:
                self.stop.wait(left)

    def sniff(self) -> None:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        sock.bind((self.iface, ETH_P_ARP))
        # Each frame timed by the kernel as it arrived, not when this thread got to read
        # it: under emulation the thread can be late, and a frame stamped late would
        # look as if it came after the neighbour entry it caused.
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                frame, ancillary, _, addr = sock.recvmsg(2048, 64)
            except TimeoutError:
                continue
            if len(frame) < 42:
                continue
            op = struct.unpack("!H", frame[20:22])[0]
            self.arp.append({
                "t": self.kernel_ms(ancillary),
                "op": "request" if op == 1 else "reply" if op == 2 else op,
                "outgoing": addr[2] == PACKET_OUTGOING, "eth_src": mac_text(frame[6:12]),
                "eth_dst": mac_text(frame[0:6]), "sha": mac_text(frame[22:28]),
                "spa": socket.inet_ntoa(frame[28:32]), "tha": mac_text(frame[32:38]),
                "tpa": socket.inet_ntoa(frame[38:42])})
        sock.close()

    def watch_neighbour(self) -> None:
        last: tuple[str, str] | None = None
        while not self.stop.is_set():
            current = ("", "absent")
            with open("/proc/net/arp", encoding="ascii") as fh:
                for line in fh.readlines()[1:]:
                    fields = line.split()
                    if fields[0] == self.vip and fields[5] == self.iface:
                        current = (fields[3], fields[2])
            if current != last:
                self.neighbour.append({"t": self.now_ms(), "mac": current[0],
                                       "flags": current[1]})
                last = current
            self.stop.wait(0.01)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vip", required=True)
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--iface", default="eth1")
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--timeout", type=float, default=0.5)
    parser.add_argument("--duration", type=float, default=120.0)
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--ready-file")
    parser.add_argument("--mark-file", action="append", default=[],
                        help="record when this file appears (repeatable)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    probe = Probe(args.vip, args.port, args.iface)
    threads = [threading.Thread(target=probe.sniff, daemon=True),
               threading.Thread(target=probe.watch_neighbour, daemon=True),
               threading.Thread(target=probe.http, args=(args.interval, args.timeout),
                                daemon=True)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + args.duration
    ready_at: float | None = None
    marks: dict[str, float | None] = {path: None for path in args.mark_file}
    while time.monotonic() < deadline and not os.path.exists(args.stop_file):
        if args.ready_file and ready_at is None and probe.answered.is_set():
            ready_at = probe.now_ms()
            with open(args.ready_file, "w", encoding="ascii") as fh:
                fh.write(f"{ready_at}\n")
        for path, at in marks.items():
            if at is None and os.path.exists(path):
                marks[path] = probe.now_ms()
        time.sleep(0.02)
    probe.stop.set()
    for t in threads:
        t.join(timeout=5)
    result = {"vip": args.vip, "port": args.port, "iface": args.iface,
              "stopped_by": "file" if os.path.exists(args.stop_file) else "duration",
              "ready_at": ready_at,
              "marked_at": marks[args.mark_file[0]] if args.mark_file else None,
              "marks": marks,
              "requests": probe.requests, "arp": probe.arp, "neighbour": probe.neighbour}
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="ascii") as fh:
        json.dump(result, fh)
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
