"""What `haguard ipvs apply` remembers in state_dir: the services it owns, and what the last
finished apply made of each (which `apply --incremental` compares the config with).

Two files, one entry per service (tens of thousands on large tables, read by every
incremental apply): each service is one string, "4 tcp 192.0.2.100 80" (family,
protocol, address or mark, port), so json decodes a record in C.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import os
from collections.abc import Iterable
from ipaddress import IPv4Address
from typing import Any

from haguard.core.ipvsconfig import ServiceKey, VirtualService


def record_key(key: ServiceKey) -> str:
    return f"{key.family} {key.protocol} {key.address} {key.port}"


def service_key(text: str) -> ServiceKey | None:
    """The ServiceKey a record key names; None for a malformed one."""
    parts = text.split(" ")
    if len(parts) != 4 or not (parts[0].isdigit() and parts[3].isdigit()):
        return None
    return ServiceKey(int(parts[0]), parts[1], parts[2], int(parts[3]))


def _write_json(path: str, data: Any) -> None:
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(data, separators=(",", ":")))
    os.replace(tmp, path)


def _read_json(path: str) -> Any:
    """The file's JSON; None when it is missing or not JSON."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (FileNotFoundError, ValueError):
        return None


def owned_file(state_dir: str) -> str:
    return os.path.join(state_dir, "ipvs-owned.json")


def read_owned(state_dir: str) -> set[str]:
    """The services haguard has applied and not yet deleted (record keys)."""
    rows = _read_json(owned_file(state_dir))
    if not isinstance(rows, list):
        return set()   # "owns nothing": the safe reading, nothing foreign gets deleted
    keys = {k for k in rows if type(k) is str}
    # [family, protocol, address, port] rows: the format before record keys
    keys.update(" ".join(map(str, k)) for k in rows if type(k) is list and len(k) == 4)
    return keys


def write_owned(state_dir: str, keys: Iterable[str]) -> None:
    _write_json(owned_file(state_dir), sorted(set(keys)))


def digest(service: VirtualService) -> str:
    """A fingerprint of one desired service: every field the kernel holds, as primitives.

    It runs for every service of a table on every apply, so it avoids what is slow in
    Python: dataclass reprs, str() of addresses (their int and family say the same), and
    repr() itself. marshal's version 0 writes a value the same way whatever its history
    (later versions share interned strings); should a Python release change the format,
    every service reads as changed once, which costs time, never correctness."""
    k, p = service.key, service.persistence
    fields = [k.family, k.protocol, k.address, k.port, service.scheduler, service.flags,
              (p.timeout_s, p.netmask) if p else None]
    for r in service.real_servers:
        fields += (int(r.address), type(r.address) is IPv4Address, r.port, r.forwarding,
                   r.weight, r.upper_threshold, r.lower_threshold, r.tunnel_type, r.tunnel_port)
    return hashlib.sha1(marshal.dumps(fields, 0)).hexdigest()[:20]


def applied_file(state_dir: str) -> str:
    return os.path.join(state_dir, "ipvs-applied.json")


def kernel_identity() -> str:
    """This boot and this network namespace: the table a record describes.

    A state_dir that outlives a reboot (one not on /run), or that another namespace
    shares, must not pass the old record off as the kernel's table."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            boot = fh.read().strip()
        return f"{boot} {os.stat('/proc/self/ns/net').st_ino}"
    except OSError:
        return "unknown"


def read_applied(state_dir: str) -> dict[str, str] | None:
    """{record key: digest} of the last finished apply in this kernel; None when unknown."""
    data = _read_json(applied_file(state_dir))
    if not isinstance(data, dict) or data.get("kernel") != kernel_identity():
        return None
    services = data.get("services")
    return services if isinstance(services, dict) else None


def write_applied(state_dir: str, record: dict[str, str]) -> None:
    # In the config's order, as given: sorting 10,000 keys is time the one-change apply
    # does not have.
    _write_json(applied_file(state_dir), {"kernel": kernel_identity(), "services": record})


def forget_applied(state_dir: str) -> None:
    """Until an apply is known to have finished, no record says what the kernel holds."""
    try:
        os.unlink(applied_file(state_dir))
    except FileNotFoundError:
        pass
