"""What `haguard ipvs apply` remembers in state_dir: the services it owns, and what the last
finished apply made of each (which `apply --incremental` compares the config with).

Two files, one entry per service (tens of thousands on large tables, read by every
incremental apply): each service is one string, "4 tcp 192.0.2.100 80" (family,
protocol, address or mark, port), so json decodes a record in C.

A write of a few services (the agent's checker, `apply --only`) does not rewrite the
applied record: it appends to its journal, one "KEY DIGEST" line per service, "KEY -"
before the kernel changes and "KEY DIGEST" after. Rewriting ten thousand entries for
each batch of health changes cost the checker more than its checks. Later lines win;
the journal is folded into the record once it is as large.
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

DIGEST_LEN = 20    # hex characters of a fingerprint: a journal line with fewer was cut short


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
    return hashlib.sha1(marshal.dumps(fields, 0)).hexdigest()[:DIGEST_LEN]


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


def journal_file(state_dir: str) -> str:
    return os.path.join(state_dir, "ipvs-applied.journal")


UNKNOWN = "-"      # a journal's digest for a service whose kernel state is not known


def read_applied(state_dir: str) -> dict[str, str] | None:
    """{record key: digest} of the last finished apply in this kernel, its journal
    included; None when unknown."""
    data = _read_json(applied_file(state_dir))
    if not isinstance(data, dict) or data.get("kernel") != kernel_identity():
        return None
    services = data.get("services")
    if not isinstance(services, dict):
        return None
    for key, value in _journal(state_dir):
        if value == UNKNOWN:
            services.pop(key, None)
        else:
            services[key] = value
    return services


def _journal(state_dir: str) -> list[tuple[str, str]]:
    """The journal's complete lines, in order (a line cut short by a crash is not one)."""
    try:
        with open(journal_file(state_dir), encoding="utf-8") as fh:
            text = fh.read()
    except (FileNotFoundError, ValueError):
        return []
    lines = text.split("\n")[:-1]     # what follows the last newline is unfinished
    entries = []
    for line in lines:
        key, _, value = line.rpartition(" ")
        if (value == UNKNOWN or len(value) == DIGEST_LEN) and service_key(key) is not None:
            entries.append((key, value))
    return entries


def write_applied(state_dir: str, record: dict[str, str]) -> None:
    """Replace the applied record (and with it its journal)."""
    # In the config's order, as given: sorting 10,000 keys is time the one-change apply
    # does not have.
    _write_json(applied_file(state_dir), {"kernel": kernel_identity(), "services": record})
    # After the record, not before: a journal left by a crash between the two is what
    # the record already says (a fold), or nothing (after forget_applied, no journal).
    _unlink(journal_file(state_dir))


def journal_applied(state_dir: str, entries: Iterable[tuple[str, str]]) -> None:
    """Append ``(record key, digest or UNKNOWN)`` to the applied record's journal (nothing
    when there is no record); fold it into the record once it is as large."""
    try:
        size = os.stat(applied_file(state_dir)).st_size
    except FileNotFoundError:
        return
    # The leading newline ends a line a crash cut short, which is then no line at all.
    text = "\n" + "".join(f"{key} {value}\n" for key, value in entries)
    with open(journal_file(state_dir), "a", encoding="utf-8") as fh:
        fh.write(text)
        length = fh.tell()
    if length > max(JOURNAL_MIN, size):
        record = read_applied(state_dir)
        if record is None:
            forget_applied(state_dir)
        else:
            write_applied(state_dir, record)


JOURNAL_MIN = 64 * 1024    # bytes of journal kept before a fold, on however small a record


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def forget_applied(state_dir: str) -> None:
    """Until an apply is known to have finished, no record says what the kernel holds."""
    _unlink(applied_file(state_dir))
    _unlink(journal_file(state_dir))
