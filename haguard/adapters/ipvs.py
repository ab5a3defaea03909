"""The kernel's IPVS table through generic netlink (pyroute2), and the sync daemon.

pyroute2 has services and destinations; the connection-sync daemon is driven with
ipvsadm, which speaks the same netlink family. Use "set" to modify: pyroute2's
"update" deletes.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Iterable

from haguard.core.ipvsconfig import (FORWARDING, PROTOCOLS, SVC_F_PERSISTENT, SCHEDULER_FLAGS,
                                     TUNNEL_TYPES, Persistence, RealServer, ServiceKey,
                                     VirtualService)
from haguard.core.ipvsplan import (AddDest, AddService, DelDest, DelService, IpvsAction,
                                   SetDest, SetService)
from haguard.errors import OperationFailed

_PROTO_BY_NUMBER = {n: name for name, n in PROTOCOLS.items()}
_FWD_BY_NUMBER = {n: name for name, n in FORWARDING.items()}
_TUN_BY_NUMBER = {n: name for name, n in TUNNEL_TYPES.items()}
_FWD_MASK = 0x07  # IP_VS_CONN_F_FWD_MASK
_FLAG_MASK = 0xFFFF


@dataclass(frozen=True)
class ServiceStats:
    connections: int
    in_packets: int
    out_packets: int
    active: dict[str, int]     # real server -> active connections
    inactive: dict[str, int]


def _family(key: ServiceKey) -> int:
    return socket.AF_INET if key.family == 4 else socket.AF_INET6


def _netmask_attr(service: VirtualService) -> str:
    """IPVS_SVC_ATTR_NETMASK as pyroute2 encodes it (a dotted quad, network order)."""
    if service.key.family == 4:
        return service.persistence.netmask if service.persistence else "255.255.255.255"
    # For IPv6 the kernel reads the prefix length as a host-order u32 in that field.
    return _v6_prefix_attr(int(service.persistence.netmask) if service.persistence else 128)


def _v6_prefix_attr(bits: int) -> str:
    return str(ipaddress.IPv4Address(int.from_bytes(bits.to_bytes(4, sys.byteorder), "big")))


def _v6_prefix_from_attr(value: str) -> int:
    return int.from_bytes(ipaddress.IPv4Address(value).packed, sys.byteorder)


class Ipvs:
    """One IPVS netlink socket; a context manager, one per thread."""

    def __init__(self) -> None:
        from pyroute2 import IPVS

        try:
            self._ipvs: Any = IPVS()
        except Exception as exc:  # noqa: BLE001 - pyroute2 raises several kinds here
            raise OperationFailed(f"IPVS is not available in this kernel ({exc}); load it "
                                  "with `modprobe ip_vs`") from exc

    def __enter__(self) -> "Ipvs":
        return self

    def __exit__(self, *exc: object) -> None:
        self._ipvs.close()

    # ---------------------------------------------------------------- conversions
    @staticmethod
    def _service_msg(service: VirtualService | ServiceKey, full: bool = True) -> Any:
        from pyroute2 import IPVSService

        key = service if isinstance(service, ServiceKey) else service.key
        fields: dict[str, Any] = {"af": _family(key)}
        if key.protocol == "fwmark":
            fields["fwmark"] = int(key.address)
        else:
            fields.update(protocol=PROTOCOLS[key.protocol], addr=key.address, port=key.port)
        if full and isinstance(service, VirtualService):
            fields.update(sched_name=service.scheduler,
                          flags={"flags": service.flag_bits, "mask": _FLAG_MASK},
                          timeout=service.persistence.timeout_s if service.persistence else 0,
                          netmask=_netmask_attr(service))
        elif key.protocol == "fwmark" or key.family == 6:
            fields["netmask"] = "255.255.255.255" if key.family == 4 else _v6_prefix_attr(128)
        return IPVSService(**fields)

    @staticmethod
    def _dest_msg(server: RealServer) -> Any:
        from pyroute2 import IPVSDest

        return IPVSDest(addr=str(server.address), port=server.port,
                        fwd_method=FORWARDING[server.forwarding], weight=server.weight,
                        u_thresh=server.upper_threshold, l_thresh=server.lower_threshold,
                        tun_type=TUNNEL_TYPES[server.tunnel_type] if server.forwarding == "tun"
                        else 0,
                        # The kernel's attribute is big-endian; pyroute2 packs host order.
                        tun_port=socket.htons(server.tunnel_port), tun_flags=0)

    @staticmethod
    def _key_of(attrs: dict[str, Any]) -> ServiceKey:
        family = 4 if attrs.get("af") == socket.AF_INET else 6
        if attrs.get("fwmark"):
            return ServiceKey(family, "fwmark", str(attrs["fwmark"]), 0)
        return ServiceKey(family, _PROTO_BY_NUMBER.get(attrs.get("protocol"), "tcp"),
                          str(ipaddress.ip_address(attrs["addr"])), attrs.get("port") or 0)

    # ---------------------------------------------------------------- reading
    def _raw_services(self) -> list[Any]:
        return list(self._ipvs.service("dump"))

    def dump(self) -> dict[ServiceKey, VirtualService]:
        """Every service in the kernel with its real servers, in the config's model."""
        table, _ = self._dump(with_stats=False)
        return table

    def stats(self) -> dict[ServiceKey, ServiceStats]:
        """Connection counters per service (and per real server)."""
        _, stats = self._dump(with_stats=True)
        return stats

    def _dump(self, with_stats: bool) -> tuple[dict[ServiceKey, VirtualService],
                                                dict[ServiceKey, ServiceStats]]:
        table: dict[ServiceKey, VirtualService] = {}
        stats: dict[ServiceKey, ServiceStats] = {}
        for msg in self._raw_services():
            svc = _nla(msg.get_attr("IPVS_CMD_ATTR_SERVICE"), "IPVS_SVC_ATTR_")
            key = self._key_of(svc)
            flag_bits = (svc.get("flags") or {}).get("flags", 0)
            persistence = None
            if flag_bits & SVC_F_PERSISTENT:
                mask = svc.get("netmask") or "255.255.255.255"
                netmask = mask if key.family == 4 else str(_v6_prefix_from_attr(mask))
                persistence = Persistence(timeout_s=svc.get("timeout") or 0, netmask=netmask)
            flags = tuple(name for name, (sched, bit) in SCHEDULER_FLAGS.items()
                          if sched == svc.get("sched_name") and flag_bits & bit)
            servers = []
            active: dict[str, int] = {}
            inactive: dict[str, int] = {}
            for dmsg in self._ipvs.dest("dump", service=self._service_msg(key, full=False)):
                d = _nla(dmsg.get_attr("IPVS_CMD_ATTR_DEST"), "IPVS_DEST_ATTR_")
                rs = RealServer(address=ipaddress.ip_address(d["addr"]), port=d.get("port") or 0,
                                forwarding=_FWD_BY_NUMBER.get((d.get("fwd_method") or 0) & _FWD_MASK,
                                                              "nat"),
                                weight=d.get("weight", 0),
                                upper_threshold=d.get("u_thresh", 0),
                                lower_threshold=d.get("l_thresh", 0),
                                tunnel_type=_TUN_BY_NUMBER.get(d.get("tun_type") or 0, "ipip"),
                                tunnel_port=socket.ntohs(d.get("tun_port") or 0))
                servers.append(rs)
                active[str(rs)] = int(d.get("active_conns") or 0)
                inactive[str(rs)] = int(d.get("inact_conns") or 0)
            table[key] = VirtualService(key=key, scheduler=svc.get("sched_name", "wlc"),
                                        flags=flags, persistence=persistence,
                                        real_servers=tuple(servers))
            if with_stats:
                counters = {k: int(v) for k, v in (svc.get("stats64") or {}).get("attrs", [])}
                stats[key] = ServiceStats(connections=counters.get("IPVS_STATS_ATTR_CONNS", 0),
                                          in_packets=counters.get("IPVS_STATS_ATTR_INPKTS", 0),
                                          out_packets=counters.get("IPVS_STATS_ATTR_OUTPKTS", 0),
                                          active=active, inactive=inactive)
        return table, stats

    # ---------------------------------------------------------------- writing
    def apply(self, actions: Iterable[IpvsAction]) -> list[str]:
        """Apply planned changes in order; raise OperationFailed naming done/not done."""
        from haguard.core.ipvsplan import describe

        actions = list(actions)
        done: list[str] = []
        for i, action in enumerate(actions):
            try:
                self._apply_one(action)
            except Exception as exc:  # noqa: BLE001 - netlink errors come in many classes
                if isinstance(exc, OperationFailed):
                    raise
                left = [describe(a) for a in actions[i:]]
                raise OperationFailed(
                    f"IPVS: '{describe(action)}' failed: {_explain(exc, action)}. Done: "
                    f"{'; '.join(done) or 'nothing'}. Not done: {'; '.join(left)}") from exc
            done.append(describe(action))
        return done

    def _apply_one(self, action: IpvsAction) -> None:
        match action:
            case AddService(service=s):
                self._ipvs.service("add", service=self._service_msg(s))
            case SetService(service=s):
                self._ipvs.service("set", service=self._service_msg(s))
            case DelService(key=key):
                self._ipvs.service("del", service=self._service_msg(key, full=False))
            case AddDest(key=key, server=rs):
                self._ipvs.dest("add", service=self._service_msg(key, full=False),
                                dest=self._dest_msg(rs))
            case SetDest(key=key, server=rs):
                self._ipvs.dest("set", service=self._service_msg(key, full=False),
                                dest=self._dest_msg(rs))
            case DelDest(key=key, server=rs):
                self._ipvs.dest("del", service=self._service_msg(key, full=False),
                                dest=self._dest_msg(rs))


def _nla(msg: Any, prefix: str) -> dict[str, Any]:
    """A nested netlink attribute set as {"short_name": value} ("IPVS_SVC_ATTR_PORT" -> "port")."""
    if msg is None:
        return {}
    return {name[len(prefix):].lower(): value for name, value in msg["attrs"]}


def _explain(exc: Exception, action: IpvsAction) -> str:
    code = getattr(exc, "code", None)
    if code == errno.ENOENT and isinstance(action, (AddService, SetService)):
        return (f"the kernel has no scheduler '{action.service.scheduler}' "
                f"(module ip_vs_{action.service.scheduler} missing)")
    if code == errno.EEXIST:
        return "it already exists"
    return str(exc)


# ------------------------------------------------------------------ ownership record

def owned_file(state_dir: str) -> str:
    return os.path.join(state_dir, "ipvs-owned.json")


def read_owned(state_dir: str) -> list[ServiceKey]:
    try:
        with open(owned_file(state_dir), encoding="utf-8") as fh:
            return [ServiceKey(*item) for item in json.load(fh)]
    except (FileNotFoundError, ValueError, TypeError):
        return []


def write_owned(state_dir: str, keys: Iterable[ServiceKey]) -> None:
    os.makedirs(state_dir, mode=0o755, exist_ok=True)
    path = owned_file(state_dir)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump([[k.family, k.protocol, k.address, k.port] for k in sorted(set(keys))], fh)
    os.replace(tmp, path)


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
