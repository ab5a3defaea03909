"""The lab client's eyes: run inside the client namespace, write JSON lines.

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
import ipaddress
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

ETH_P_ALL = 0x0003
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETH_P_IP = 0x0800
IPPROTO_VRRP = 112
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def parse_frame(frame: bytes) -> dict[str, Any] | None:
    """Decode the ARP or Neighbor Advertisement in an Ethernet frame, else None."""
    if len(frame) < 14:
        return None
    dst, src, ethertype = frame[0:6], frame[6:12], struct.unpack("!H", frame[12:14])[0]
    body = frame[14:]
    if ethertype == ETH_P_ARP and len(body) >= 28:
        op = struct.unpack("!H", body[6:8])[0]
        return {"kind": "arp", "op": op, "eth_src": _mac(src), "eth_dst": _mac(dst),
                "sha": _mac(body[8:14]), "spa": socket.inet_ntoa(body[14:18]),
                "tha": _mac(body[18:24]), "tpa": socket.inet_ntoa(body[24:28])}
    if ethertype == ETH_P_IP and len(body) >= 20 and body[9] == IPPROTO_VRRP:
        ihl = (body[0] & 0x0F) * 4
        vrrp = body[ihl:]
        if len(vrrp) >= 8:
            return {"kind": "vrrp", "eth_src": _mac(src), "src": socket.inet_ntoa(body[12:16]),
                    "dst": socket.inet_ntoa(body[16:20]), "version": vrrp[0] >> 4,
                    "vrid": vrrp[1], "priority": vrrp[2]}
        return None
    if ethertype == ETH_P_IPV6 and len(body) >= 40 + 24 and body[6] == 58 and body[40] == 136:
        icmp = body[40:]
        flags = icmp[4]
        record: dict[str, Any] = {
            "kind": "na", "eth_src": _mac(src), "eth_dst": _mac(dst),
            "src": str(ipaddress.IPv6Address(body[8:24])),
            "dst": str(ipaddress.IPv6Address(body[24:40])), "hlim": body[7],
            "R": bool(flags & 0x80), "S": bool(flags & 0x40), "O": bool(flags & 0x20),
            "target": str(ipaddress.IPv6Address(icmp[8:24])), "tll": None}
        options = icmp[24:]
        while len(options) >= 8 and options[1]:
            if options[0] == 2:
                record["tll"] = _mac(options[2:8])
            options = options[options[1] * 8:]
        return record
    return None


class _Writer:
    def __init__(self, path: str) -> None:
        self._fh = open(path, "a", encoding="utf-8", buffering=1)
        self._lock = threading.Lock()

    def __call__(self, record: dict[str, Any]) -> None:
        record.setdefault("t", time.time())
        with self._lock:
            self._fh.write(json.dumps(record) + "\n")


def sniff(iface: str, emit: Callable[[dict[str, Any]], None], stop: threading.Event,
          ready: threading.Event) -> None:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((iface, 0))
    # VRRP adverts arrive even where keepalived (which joins their group) is not running.
    from haguard.adapters.vrrpwire import join_vrrp_groups

    join_vrrp_groups(sock, iface)
    # The kernel stamps each frame on arrival; userspace wake-up latency stays out.
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.settimeout(0.2)
    ready.set()
    try:
        while not stop.is_set():
            try:
                frame, ancdata, _, addr = sock.recvmsg(65535, 64)
            except TimeoutError:
                continue
            now = time.time()
            for level, kind, data in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                    sec, nsec = struct.unpack("qq", data[:16])
                    now = sec + nsec / 1e9
            try:
                record = parse_frame(frame)
            except (ValueError, IndexError, struct.error):
                record = None  # a truncated or odd frame is not ours to report
            if record is not None:
                record["t"] = now
                record["dir"] = "out" if addr[2] == PACKET_OUTGOING else "in"
                emit(record)
    finally:
        sock.close()


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
