"""Traffic for the lab: a real server that names itself, and a client that counts.

``serve``: an HTTP/1.1 server (keep-alive) answering every GET with its own name.
``fetch``: N requests, each on a new TCP connection, and which server answered each.
``hold``: open N keep-alive connections, ask once, wait for a go-file, ask again on the
same connections, and report which still work (connection survival across failover).

Standard library only; JSON on stdout.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import os
import socket
import socketserver
import sys
import time
from typing import Any


def serve(name: str, port: int, bind: str) -> None:
    body = (name + "\n").encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    family = socket.AF_INET6 if ":" in bind else socket.AF_INET

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        address_family = family
        daemon_threads = True
        allow_reuse_address = True

        def server_bind(self) -> None:
            if family == socket.AF_INET6:
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            super().server_bind()

    with Server((bind, port), Handler) as server:
        print(json.dumps({"serving": name, "port": port}), flush=True)
        server.serve_forever()


def _get(conn: http.client.HTTPConnection) -> str:
    conn.request("GET", "/")
    response = conn.getresponse()
    return response.read().decode().strip()


def fetch(host: str, port: int, count: int, timeout: float, source: str | None) -> dict[str, Any]:
    answers: list[str | None] = []
    errors: list[str] = []
    for _ in range(count):
        conn = http.client.HTTPConnection(host, port, timeout=timeout,
                                          source_address=(source, 0) if source else None)
        try:
            answers.append(_get(conn))
        except OSError as exc:
            answers.append(None)
            errors.append(str(exc))
        finally:
            conn.close()
    counts: dict[str, int] = {}
    for a in answers:
        if a is not None:
            counts[a] = counts.get(a, 0) + 1
    return {"answers": answers, "counts": counts, "failed": answers.count(None), "errors": errors}


def hold(host: str, port: int, count: int, timeout: float, go_file: str, wait_s: float,
         ready_file: str | None) -> dict[str, Any]:
    conns = []
    first: list[str | None] = []
    for _ in range(count):
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            first.append(_get(conn))
        except OSError:
            first.append(None)
        conns.append(conn)
    if ready_file:
        with open(ready_file, "w", encoding="ascii") as fh:
            fh.write(json.dumps(first))
    deadline = time.monotonic() + wait_s
    while not os.path.exists(go_file) and time.monotonic() < deadline:
        time.sleep(0.05)
    second: list[str | None] = []
    errors: list[str] = []
    for conn in conns:
        try:
            second.append(_get(conn))
        except (OSError, http.client.HTTPException) as exc:
            second.append(None)
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()
    same = sum(1 for a, b in zip(first, second) if a is not None and a == b)
    return {"before": first, "after": second, "survived": same, "total": count, "errors": errors}


def knock(host: str, port: int, interval_ms: int, out: str) -> None:
    """A TCP connect to host:port every interval, each attempt a JSON line, until SIGTERM."""
    import signal
    import socket

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    interval = interval_ms / 1000.0
    with open(out, "a", encoding="ascii", buffering=1) as fh:
        while not stop:
            started = time.time()
            try:
                with socket.create_connection((host, port), timeout=max(interval, 0.05)):
                    ok = True
            except OSError:
                ok = False
            fh.write(json.dumps({"kind": "tcp", "t": started, "ok": ok}) + "\n")
            time.sleep(max(0.0, interval - (time.time() - started)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m haguard.adapters.httpprobe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve")
    p.add_argument("--name", required=True)
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--bind", default="::")
    p = sub.add_parser("fetch")
    p.add_argument("host")
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--timeout", type=float, default=3.0)
    p.add_argument("--source", help="source address to bind (one client per address)")
    p = sub.add_parser("knock", help="TCP connect every --interval-ms, as JSON lines")
    p.add_argument("host")
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--interval-ms", type=int, default=10)
    p.add_argument("--out", required=True)
    p = sub.add_parser("hold")
    p.add_argument("host")
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--go-file", required=True)
    p.add_argument("--ready-file")
    p.add_argument("--wait-s", type=float, default=120.0)
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.name, args.port, args.bind)
        return 0
    if args.command == "knock":
        knock(args.host, args.port, args.interval_ms, args.out)
        return 0
    if args.command == "fetch":
        result = fetch(args.host, args.port, args.count, args.timeout, args.source)
    else:
        result = hold(args.host, args.port, args.count, args.timeout, args.go_file, args.wait_s,
                      args.ready_file)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
