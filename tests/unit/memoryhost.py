"""An in-memory machine for app/ code in the unit tier: the calls of ``adapters.host.Host``
over dicts and lists, and every call recorded in order, so a test can say what a
transition did to the machine and in which order, without root or a kernel."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable

from haguard.adapters.announce import BurstResult
from haguard.adapters.netlink import Address, Link
from haguard.core.config import IPAddress, Vip
from haguard.core.ipvsconfig import ServiceKey, VirtualService
from haguard.core.ipvsplan import (
    AddDest,
    AddService,
    DelDest,
    DelService,
    IpvsAction,
    SetDest,
    SetService,
)
from haguard.core.vrrp import Advert
from haguard.errors import OperationFailed


class TableIpvs:
    """The IPVS adapter's reading and writing calls over a dict; counts what is read."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.table: dict[ServiceKey, VirtualService] = {}
        self.timeout_values = (900, 120, 300)      # the kernel's defaults
        self.dumps = 0
        self.reads: list[ServiceKey] = []
        self.fail_at = fail_at

    def __enter__(self) -> TableIpvs:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def dump(self) -> dict[ServiceKey, VirtualService]:
        self.dumps += 1
        return dict(self.table)

    def read(self, keys: Iterable[ServiceKey]) -> dict[ServiceKey, VirtualService]:
        keys = sorted(keys)
        self.reads += keys
        return {k: self.table[k] for k in keys if k in self.table}

    def timeouts(self) -> tuple[int, int, int]:
        return self.timeout_values

    def set_timeouts(self, timeouts: tuple[int, int, int]) -> None:
        self.timeout_values = timeouts

    def apply(self, actions: Iterable[IpvsAction]) -> int:
        done = 0
        for action in actions:
            if done == self.fail_at:
                raise OperationFailed("IPVS: injected failure")
            self._apply_one(action)
            done += 1
        return done

    def _apply_one(self, action: IpvsAction) -> None:
        t = self.table
        match action:
            case AddService(service=s) | SetService(service=s):
                old = t.get(s.key)
                t[s.key] = dataclasses.replace(s, real_servers=old.real_servers if old else ())
            case DelService(key=key):
                del t[key]
            case AddDest(key=key, server=rs) | SetDest(key=key, server=rs):
                kept = tuple(r for r in t[key].real_servers if r.key != rs.key)
                t[key] = dataclasses.replace(t[key], real_servers=kept + (rs,))
            case DelDest(key=key, server=rs):
                kept = tuple(r for r in t[key].real_servers if r.key != rs.key)
                t[key] = dataclasses.replace(t[key], real_servers=kept)


class MemoryHost:
    """``Host``'s calls over memory; ``calls`` is what was done, in order."""

    def __init__(self, links: Iterable[str] = ("eth0",),
                 sysctls: dict[str, str] | None = None) -> None:
        self.links = {name: Link(index, name, f"02:00:00:00:00:{index:02x}", True)
                      for index, name in enumerate(links, start=2)}
        self.addrs: dict[str, list[tuple[IPAddress, int]]] = {n: [] for n in self.links}
        self.sysctls = dict(sysctls or {})
        self.table = TableIpvs()
        self.calls: list[tuple[object, ...]] = []
        self.fail: dict[str, Exception] = {}      # a call's name -> raise this instead
        self.adverts: list[Advert] = []           # what listen() hears on the wire
        self.arp_answers: dict[str, list[str]] = {}   # VIP -> the other MACs answering it
        self._pids = itertools.count(4000)

    def _call(self, *call: object) -> None:
        self.calls.append(call)
        failure = self.fail.get(str(call[0]))
        if failure is not None:
            raise failure

    def vips(self, link: str = "eth0") -> list[str]:
        return sorted(f"{a}/{p}" for a, p in self.addrs[link])

    def link(self, name: str) -> Link | None:
        return self.links.get(name)

    def addresses(self, link: Link) -> list[Address]:
        return [Address(a, p, None, link.name) for a, p in self.addrs[link.name]]

    def add_vip(self, link: Link, vip: Vip) -> bool:
        self._call("add_vip", link.name, str(vip))
        present = (vip.address, vip.prefixlen)
        if present in self.addrs[link.name]:
            return False
        self.addrs[link.name].append(present)
        return True

    def remove_address(self, link: Link, address: IPAddress, prefixlen: int) -> bool:
        self._call("remove_address", link.name, f"{address}/{prefixlen}")
        if (address, prefixlen) not in self.addrs[link.name]:
            return False
        self.addrs[link.name].remove((address, prefixlen))
        return True

    def read_sysctl(self, key: str) -> str | None:
        return self.sysctls.get(key)

    def write_sysctl(self, key: str, value: str) -> None:
        self._call("write_sysctl", key, value)
        self.sysctls[key] = value

    def frames(self, cache_path: str, mac: str, vips: Iterable[Vip]) -> tuple[list[bytes], bool]:
        return [f"{mac}>{v.address}".encode() for v in vips], False

    def send(self, link: Link, frames: list[bytes], rounds: int, interval_ms: int, *,
             keep_going: Callable[[], bool] = lambda: True, wait_first: bool = False,
             kept_socket: bool = False) -> BurstResult:
        sent = 0
        for round_no in range(rounds):
            if (round_no or wait_first) and not keep_going():
                break
            sent += len(frames)
        self._call("send", link.name, sent)
        return BurstResult(sent, 1.0 if sent else None, 1.0 if sent else None)

    def listen(self, interfaces: list[str], seconds: float,
               until: Callable[[Advert], bool] | None = None) -> list[Advert]:
        self._call("listen", tuple(interfaces), seconds)
        return [a for a in self.adverts if a.interface in interfaces]

    def arp_probe(self, interface: str, mac: str, vips: list[str], seconds: float,
                  rounds: int) -> dict[str, list[str]]:
        self._call("arp_probe", interface, tuple(vips))
        return {v: list(self.arp_answers.get(v, ())) for v in vips}

    def ipvs(self) -> TableIpvs:
        self._call("ipvs")
        return self.table

    def sync_daemon(self, role: str, interface: str, syncid: int) -> None:
        self._call("sync_daemon", role, interface, syncid)

    def spawn(self, args: list[str]) -> int:
        pid = next(self._pids)
        self._call("spawn", pid, args[2] if len(args) > 2 else "")
        return pid

    def terminate_if(self, pid: int, *markers: str) -> bool:
        self._call("terminate_if", pid)
        return True
