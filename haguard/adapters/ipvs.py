"""The kernel's IPVS table through generic netlink, and the sync daemon.

One netlink socket and haguard's own codec (``core.ipvsnl``): changes go to the kernel
many per sendmsg with their acknowledgements read after, and a dump is decoded as it
arrives, so a large table costs what the kernel spends on it. The connection-sync daemon
is driven with ipvsadm, which speaks the same netlink family.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import socket
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial

from haguard.adapters import failpoint
from haguard.adapters.nlsock import NETLINK_GENERIC, NetlinkError, NetlinkSocket
from haguard.core import ipvsnl, nlmsg
from haguard.core.ipvsconfig import ServiceKey, VirtualService
from haguard.core.ipvsplan import AddService, DelDest, DelService, IpvsAction, SetService, describe
from haguard.errors import OperationFailed

RCVBUF = 8 << 20         # room for a whole batch of acknowledgements
BATCH_MESSAGES = 256
BATCH_BYTES = 48 << 10   # well under the socket's send buffer: one sendmsg, one skb


@dataclass(frozen=True)
class ServiceStats:
    connections: int
    in_packets: int
    out_packets: int
    active: dict[str, int]     # real server -> active connections
    inactive: dict[str, int]


class Ipvs:
    """One IPVS netlink socket; a context manager, one per thread."""

    def __init__(self) -> None:
        self._nl = NetlinkSocket(NETLINK_GENERIC, rcvbuf=RCVBUF, what="IPVS")
        try:
            self._nl.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * BATCH_BYTES)
            self._family = self._resolve_family()
        except BaseException:
            self._nl.close()
            raise

    def __enter__(self) -> Ipvs:
        return self

    def __exit__(self, *exc: object) -> None:
        self._nl.close()

    # ---------------------------------------------------------------- plumbing
    def _resolve_family(self) -> int:
        try:
            found = self._nl.request(ipvsnl.family_request, "IPVS: resolving its netlink family")
        except NetlinkError as exc:
            if exc.code == errno.ENOENT:
                raise OperationFailed("IPVS is not available in this kernel; load it with "
                                      "`modprobe ip_vs`") from None
            raise
        if not found:
            raise OperationFailed("IPVS: the generic-netlink controller did not answer")
        return ipvsnl.family_id(found[0])

    def _dump(self, build: Callable[[int], bytes]) -> list[bytes]:
        """Every message of one dump, until NLMSG_DONE."""
        return self._nl.dump(build, "IPVS: reading the table")

    # ---------------------------------------------------------------- reading
    def dump(self) -> dict[ServiceKey, VirtualService]:
        """Every service in the kernel with its real servers, in the config's model."""
        table, _ = self._read(with_stats=False)
        return table

    def stats(self) -> dict[ServiceKey, ServiceStats]:
        """Connection counters per service (and per real server)."""
        _, stats = self._read(with_stats=True)
        return stats

    def _read(self, with_stats: bool) -> tuple[dict[ServiceKey, VirtualService],
                                                dict[ServiceKey, ServiceStats]]:
        services = [ipvsnl.decode_service(p) for p in
                    self._dump(lambda seq: ipvsnl.dump_services_request(self._family, seq))]
        table: dict[ServiceKey, VirtualService] = {}
        stats: dict[ServiceKey, ServiceStats] = {}
        for found in services:
            key = found.service.key
            dests = [ipvsnl.decode_dest(p, key.family) for p in self._dump(
                partial(ipvsnl.dump_dests_request, self._family, key=key))]
            table[key] = dataclasses.replace(found.service,
                                             real_servers=tuple(d.server for d in dests))
            if with_stats:
                stats[key] = ServiceStats(connections=found.connections,
                                          in_packets=found.in_packets,
                                          out_packets=found.out_packets,
                                          active={str(d.server): d.active for d in dests},
                                          inactive={str(d.server): d.inactive for d in dests})
        return table, stats

    def connections(self, key: ServiceKey) -> dict[str, tuple[int, int]]:
        """Active and inactive connections per real server of one service (only its
        destinations are read: a drain's countdown on a large table stays cheap)."""
        return {str(d.server): (d.active, d.inactive) for d in (
            ipvsnl.decode_dest(p, key.family) for p in self._dump(
                partial(ipvsnl.dump_dests_request, self._family, key=key)))}

    def read(self, keys: Iterable[ServiceKey]) -> dict[ServiceKey, VirtualService]:
        """Only these services (those the kernel has), each with its real servers."""
        table: dict[ServiceKey, VirtualService] = {}
        for key in keys:
            try:
                found = self._nl.request(
                    partial(ipvsnl.get_service_request, self._family, key=key),
                    f"IPVS: reading {key}")
            except NetlinkError as exc:
                if exc.code in (errno.ESRCH, errno.ENOENT):
                    continue
                raise
            if not found:
                continue
            service = ipvsnl.decode_service(found[0]).service
            dests = [ipvsnl.decode_dest(p, key.family).server for p in self._dump(
                partial(ipvsnl.dump_dests_request, self._family, key=key))]
            table[key] = dataclasses.replace(service, real_servers=tuple(dests))
        return table

    def timeouts(self) -> tuple[int, int, int]:
        """The kernel's (tcp, tcpfin, udp) connection timeouts, in seconds."""
        found = self._nl.request(partial(ipvsnl.get_config_request, self._family),
                                 "IPVS: reading the timeouts")
        if not found:
            raise OperationFailed("IPVS: the kernel did not answer for its timeouts")
        return ipvsnl.decode_config(found[0])

    # ---------------------------------------------------------------- writing
    def set_timeouts(self, timeouts: tuple[int, int, int]) -> None:
        """Set the (tcp, tcpfin, udp) connection timeouts (ipvsadm --set)."""
        self._nl.request(partial(ipvsnl.set_config_request, self._family, timeouts=timeouts),
                         "IPVS: setting the timeouts")

    def apply(self, actions: Iterable[IpvsAction]) -> int:
        """Apply planned changes in order (how many); raise OperationFailed naming done/not done.

        Changes go in batches. A batch that holds a failure is still carried out by the
        kernel to its end, so deletions are never batched with additions: when an
        addition fails, nothing is deleted.
        """
        actions = list(actions)
        encoded = [ipvsnl.action_request(self._family, 0, a) for a in actions]
        applied = 0
        for batch in _batches(actions, [len(m) for m in encoded]):
            failures = self._send_batch([encoded[i] for i in batch])
            failures = [(batch[n], code) for n, code in failures]
            if failures:
                outcome = {index: code for index, code in failures}
                first_index, first_code = failures[0]
                failed = actions[first_index]
                done = [describe(a) for a in actions[:applied]]
                done += [describe(actions[i]) for i in batch if i not in outcome]
                left = [describe(actions[i]) for i in range(len(actions))
                        if i in outcome or i > batch[-1]]
                raise OperationFailed(
                    f"IPVS: '{describe(failed)}' failed: {_explain(first_code, failed)}. "
                    f"Done: {_listing(done)}. Not done: {_listing(left)}")
            applied += len(batch)
            failpoint.hit("ipvs:between_batches")
        return applied

    def _send_batch(self, messages: Sequence[bytes]) -> list[tuple[int, int]]:
        """Send ``messages`` in one sendmsg; (position, errno) of those that failed."""
        first_seq = self._nl.seq + 1
        self._nl.seq += len(messages)
        buf = bytearray(b"".join(messages))
        offset = 0
        for n, msg in enumerate(messages):
            nlmsg.set_seq(buf, offset, first_seq + n)
            offset += len(msg)
        self._nl.sock.send(buf)
        pending = set(range(first_seq, first_seq + len(messages)))
        failures: list[tuple[int, int]] = []
        while pending:
            for reply in nlmsg.replies(self._nl.recv()):
                if reply.kind != nlmsg.NLMSG_ERROR or reply.seq not in pending:
                    continue
                pending.discard(reply.seq)
                code = nlmsg.error_code(reply.payload)
                if code:
                    failures.append((reply.seq - first_seq, code))
        return sorted(failures)


def _batches(actions: Sequence[IpvsAction], sizes: Sequence[int]) -> list[list[int]]:
    """Indices of ``actions`` in send batches: bounded in count and bytes, deletions apart."""
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    deleting = False
    for i, (action, size) in enumerate(zip(actions, sizes)):
        is_delete = isinstance(action, (DelService, DelDest))
        if current and (len(current) >= BATCH_MESSAGES or used + size > BATCH_BYTES
                        or is_delete != deleting):
            batches.append(current)
            current, used = [], 0
        current.append(i)
        used += size
        deleting = is_delete
    if current:
        batches.append(current)
    return batches


def _listing(items: list[str], limit: int = 8) -> str:
    if not items:
        return "nothing"
    shown = "; ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown}; and {len(items) - limit} more"


def _explain(code: int, action: IpvsAction) -> str:
    if code == errno.ENOENT and isinstance(action, (AddService, SetService)):
        return (f"the kernel has no scheduler '{action.service.scheduler}' "
                f"(module ip_vs_{action.service.scheduler} missing)")
    if code == errno.EEXIST:
        return "it already exists"
    if code == errno.ESRCH and not isinstance(action, (AddService, DelService)):
        return "the kernel has no such service"
    if code == errno.ENOENT and isinstance(action, DelDest):
        return "the kernel has no such real server"
    return os.strerror(code)


# ------------------------------------------------------------------ sync daemon

def sync_daemon(role: str, interface: str, syncid: int) -> None:
    """Run the connection-sync daemon in ``role`` (master/backup) only, like keepalived."""
    other = "backup" if role == "master" else "master"
    _ipvsadm(["--stop-daemon", other], ok_codes=(0, 255))
    current = sync_daemon_state()
    if current.get(role) == (interface, syncid):
        return
    if role in current:
        _ipvsadm(["--stop-daemon", role], ok_codes=(0, 255))
    _ipvsadm(["--start-daemon", role, "--mcast-interface", interface, "--syncid", str(syncid)])


def sync_daemon_state() -> dict[str, tuple[str, int]]:
    """{role: (interface, syncid)} from `ipvsadm -L --daemon`."""
    out = _ipvsadm(["-L", "--daemon"])
    state = {}
    for line in out.splitlines():
        # "master sync daemon (mcast=eth0, syncid=51, maxlen=1472, ...)"
        words = line.replace(",", " ").replace("(", " ").replace(")", " ").split()
        if len(words) >= 3 and words[1:3] == ["sync", "daemon"]:
            fields = dict(w.split("=", 1) for w in words if "=" in w)
            state[words[0]] = (fields.get("mcast", ""), int(fields.get("syncid", "0")))
    return state


def _ipvsadm(args: list[str], ok_codes: tuple[int, ...] = (0,)) -> str:
    try:
        proc = subprocess.run(["ipvsadm", *args], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise OperationFailed("ipvsadm is not installed (apt-get install ipvsadm); it drives "
                              "the IPVS sync daemon") from None
    if proc.returncode not in ok_codes:
        raise OperationFailed(f"ipvsadm {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout
