"""The guest side of haguard.lab.vm: run the host's commands, answer in JSON lines.

Standard library only, and no haguard imports: it starts before anything else in the
guest and must not depend on what it is there to test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any


def find_port(name: str) -> str:
    """The /dev node of the virtio-serial port called ``name`` (no udev in the guest)."""
    base = "/sys/class/virtio-ports"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for port in sorted(os.listdir(base)) if os.path.isdir(base) else []:
            try:
                with open(f"{base}/{port}/name", encoding="ascii") as fh:
                    if fh.read().strip() == name:
                        return f"/dev/{port}"
            except OSError:
                continue
        time.sleep(0.1)
    raise SystemExit(f"vmagent: no virtio-serial port named {name}")


def handle(request: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    env = {**os.environ, **(request.get("env") or {})}
    try:
        proc = subprocess.run(request["argv"], capture_output=True, text=True, env=env,
                              cwd=request.get("cwd"), timeout=request.get("timeout") or 300,
                              stdin=subprocess.DEVNULL, errors="replace")
        answer = {"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}
    except subprocess.TimeoutExpired as exc:
        answer = {"rc": -9, "stdout": exc.stdout or "", "stderr": f"timed out: {exc}"}
        if isinstance(answer["stdout"], bytes):
            answer["stdout"] = answer["stdout"].decode(errors="replace")
    except OSError as exc:
        answer = {"rc": 127, "stdout": "", "stderr": f"cannot run {request['argv'][0]}: {exc}"}
    answer["id"] = request.get("id")
    answer["duration_s"] = round(time.monotonic() - started, 3)
    return answer


def spawn(request: dict[str, Any]) -> dict[str, Any]:
    """Start a process that outlives the request, output to a file; answer its pid."""
    try:
        with open(request["out"], "ab") as out:
            proc = subprocess.Popen(request["argv"], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    env={**os.environ, **(request.get("env") or {})})
    except OSError as exc:
        return {"id": request.get("id"), "rc": 127, "stderr": f"cannot start: {exc}"}
    return {"id": request.get("id"), "rc": 0, "pid": proc.pid}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True, help="virtio-serial port name")
    args = parser.parse_args()
    fd = os.open(find_port(args.name), os.O_RDWR)
    reader = os.fdopen(fd, "rb", buffering=0)

    def send(obj: dict[str, Any]) -> None:
        data = (json.dumps(obj) + "\n").encode()
        while data:
            data = data[os.write(fd, data):]

    send({"ready": True, "kernel": os.uname().release, "python": sys.version.split()[0]})
    buf = b""
    while True:
        chunk = reader.read(65536)
        if not chunk:
            time.sleep(0.05)  # host not connected (yet / any more)
            continue
        buf += chunk
        while b"\n" in buf:
            line, _, buf = buf.partition(b"\n")
            try:
                request = json.loads(line)
            except ValueError:
                continue
            if request.get("op") == "poweroff":
                return 0
            send(spawn(request) if request.get("op") == "spawn" else handle(request))


if __name__ == "__main__":
    sys.exit(main())
