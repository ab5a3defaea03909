"""Network namespaces, veths and bridges for the lab, through iproute2's `ip`.

Everything is created inside namespaces the lab owns; the root namespace's links,
addresses, routes and sysctls are never touched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence

from haguard.errors import LabError

IP = "ip"


def run(args: Sequence[str], check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run a command (argument list, no shell); raise LabError with its stderr."""
    try:
        proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise LabError(f"{args[0]}: not installed (the lab needs iproute2)") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(args)}: timed out after {timeout} s") from None
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(args)}: {proc.stderr.strip() or 'exit ' + str(proc.returncode)}")
    return proc


def ns_exec(namespace: str, *args: str) -> list[str]:
    return [IP, "netns", "exec", namespace, *args]


def exists(namespace: str) -> bool:
    return os.path.exists(f"/run/netns/{namespace}")


def create(namespace: str) -> None:
    run([IP, "netns", "add", namespace])
    run([IP, "-n", namespace, "link", "set", "lo", "up"])


def set_sysctl(namespace: str, key: str, value: str) -> None:
    """Write a sysctl inside ``namespace`` (network sysctls are per namespace)."""
    run(ns_exec(namespace, "sysctl", "-q", "-w", f"{key}={value}"))


def add_bridge(namespace: str, bridge: str) -> None:
    # A plain learning switch: no STP delay, no multicast snooping (VRRP adverts and
    # IPv6 all-nodes NAs must flood to every port, as on a small access switch).
    run([IP, "-n", namespace, "link", "add", bridge, "type", "bridge", "stp_state", "0",
         "forward_delay", "0", "mcast_snooping", "0"])
    run([IP, "-n", namespace, "link", "set", bridge, "up"])


def add_port(switch_ns: str, bridge: str, port: str, host_ns: str, ifname: str) -> None:
    """A veth from ``bridge`` in the switch namespace to ``ifname`` in ``host_ns``."""
    run([IP, "-n", switch_ns, "link", "add", port, "type", "veth", "peer", "name", ifname,
         "netns", host_ns])
    run([IP, "-n", switch_ns, "link", "set", port, "master", bridge])
    run([IP, "-n", switch_ns, "link", "set", port, "up"])


def add_address(namespace: str, ifname: str, address: str) -> None:
    extra = ["nodad"] if ":" in address else []
    run([IP, "-n", namespace, "addr", "add", address, "dev", ifname, *extra])


def link_up(namespace: str, ifname: str) -> None:
    run([IP, "-n", namespace, "link", "set", ifname, "up"])


def link_down(namespace: str, ifname: str) -> None:
    run([IP, "-n", namespace, "link", "set", ifname, "down"])


def add_route(namespace: str, prefix: str, ifname: str) -> None:
    run([IP, "-n", namespace, "route", "add", prefix, "dev", ifname])


def mac_of(namespace: str, ifname: str) -> str:
    out = run([IP, "-n", namespace, "-o", "link", "show", ifname]).stdout
    words = out.split()
    return words[words.index("link/ether") + 1]


def pids_in(namespace: str) -> list[int]:
    if not exists(namespace):
        return []
    out = run([IP, "netns", "pids", namespace], check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def kill_all_in(namespace: str, grace_s: float = 2.0) -> list[int]:
    """SIGTERM, then SIGKILL, every process left in ``namespace``, each by its pid."""
    pids = pids_in(namespace)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and pids_in(namespace):
        time.sleep(0.05)
    for pid in pids_in(namespace):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


def delete(namespace: str) -> None:
    if exists(namespace):
        run([IP, "netns", "delete", namespace], check=False)
