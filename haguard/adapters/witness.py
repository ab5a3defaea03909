"""A drill's eyes in a client's network namespace (the lab's client, or the namespace a
live drill probes from with --probe-from): run there, write JSON lines.

Three witnesses, each timestamped with the wall clock (shared by every namespace):
- ``arp`` / ``na`` / ``vrrp``: every ARP frame, Neighbor Advertisement and VRRP advert
  on the wire, in or out, stamped by the kernel on arrival;
- ``neigh``: every change of the client's neighbour entry for a watched address,
  from rtnetlink notifications (not polling);
- ``pong``: each echo reply of a ping every ``--interval-ms`` to the first VIP.

Run as ``python -m haguard.adapters.witness --out FILE --iface eth0 --watch VIP ...``; stops
on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from haguard.adapters.wire import sniff


class _Writer:
    def __init__(self, path: str) -> None:
        self._fh = open(path, "a", encoding="utf-8", buffering=1)
        self._lock = threading.Lock()

    def __call__(self, record: dict[str, Any]) -> None:
        record.setdefault("t", time.time())
        with self._lock:
            self._fh.write(json.dumps(record) + "\n")


_NUD = {0x01: "INCOMPLETE", 0x02: "REACHABLE", 0x04: "STALE", 0x08: "DELAY", 0x10: "PROBE",
        0x20: "FAILED", 0x40: "NOARP", 0x80: "PERMANENT", 0x00: "NONE"}


def watch_neighbours(watched: set[str], emit: Callable[[dict[str, Any]], None],
                     stop: threading.Event, ready: threading.Event) -> None:
    from pyroute2 import IPRoute
    from pyroute2.netlink.rtnl import RTMGRP_NEIGH

    with IPRoute() as ipr:
        ipr.bind(groups=RTMGRP_NEIGH)
        for msg in ipr.get_neighbours():
            _emit_neigh(msg, watched, emit, "dump")
        ready.set()
        while not stop.is_set():
            for msg in ipr.get():
                if msg.get("event") in ("RTM_NEWNEIGH", "RTM_DELNEIGH"):
                    _emit_neigh(msg, watched, emit, msg["event"])


def _emit_neigh(msg: Any, watched: set[str], emit: Callable[[dict[str, Any]], None],
                event: str) -> None:
    dst = msg.get_attr("NDA_DST")
    if dst not in watched:
        return
    emit({"kind": "neigh", "event": event, "ip": dst, "mac": msg.get_attr("NDA_LLADDR"),
          "state": _NUD.get(msg["state"], hex(msg["state"]))})


_PONG = re.compile(r"^\[(\d+\.\d+)\].*icmp_seq=(\d+)")


def ping(target: str, interval_ms: int, emit: Callable[[dict[str, Any]], None],
         stop: threading.Event) -> None:
    family = "-6" if ":" in target else "-4"
    proc = subprocess.Popen(["ping", family, "-D", "-n", "-i", f"{interval_ms / 1000:.3f}",
                             "-W", "1", target], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
    emit({"kind": "ping_started", "target": target, "interval_ms": interval_ms})
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            match = _PONG.match(line)
            if match:
                emit({"kind": "pong", "t": float(match.group(1)), "seq": int(match.group(2)),
                      "target": target})
            if stop.is_set():
                break
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="haguard-probe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--iface", action="append", required=True)
    parser.add_argument("--watch", action="append", default=[], help="address to follow")
    parser.add_argument("--ping", help="address to ping")
    parser.add_argument("--interval-ms", type=int, default=10)
    args = parser.parse_args(argv)

    emit = _Writer(args.out)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    readies = [threading.Event() for _ in range(len(args.iface) + 1)]
    threads = [threading.Thread(target=sniff, args=(i, emit, stop, r), daemon=True)
               for i, r in zip(args.iface, readies)]
    threads.append(threading.Thread(target=watch_neighbours,
                                    args=(set(args.watch), emit, stop, readies[-1]), daemon=True))
    if args.ping:
        threads.append(threading.Thread(target=ping, args=(args.ping, args.interval_ms, emit, stop),
                                        daemon=True))
    for t in threads:
        t.start()
    for r in readies:
        # Generous: under emulation (the VM lab) importing pyroute2 alone takes seconds.
        if not r.wait(180):
            emit({"kind": "error", "error": "a witness did not start within 180 s"})
            return 1
    emit({"kind": "ready", "pid": os.getpid()})
    while not stop.is_set():
        stop.wait(0.2)
    emit({"kind": "stopped"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
