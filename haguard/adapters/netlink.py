"""Links and addresses through rtnetlink, with haguard's own small codec (core.rtnl).

A transition needs a link by name, its addresses, an add and a delete: each is one
request and its acknowledgement on one socket, with nothing to import first, so neither
a hook's start-up nor the agent's takeover waits on a netlink library.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from haguard.adapters.nlsock import NETLINK_ROUTE, NetlinkError, NetlinkSocket
from haguard.core import rtnl
from haguard.core.config import IPAddress, Vip
from haguard.errors import OperationFailed

# The kernel says "try again" with these; anything else is a real refusal.
_TRANSIENT = {errno.EAGAIN, errno.EBUSY, errno.EINTR, errno.ENOBUFS}


def _transient(exc: BaseException) -> bool:
    return getattr(exc, "code", None) in _TRANSIENT


def _with_retry(call: Callable[[], Any]) -> Any:
    """Call, retrying only what the kernel called transient (tenacity, imported late)."""
    try:
        return call()
    except NetlinkError as exc:
        if not _transient(exc):
            raise
    from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

    retrying = retry(retry=retry_if_exception(_transient), stop=stop_after_attempt(5),
                     wait=wait_exponential(multiplier=0.005, max=0.1), reraise=True)
    return retrying(call)()


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    mac: str
    up: bool


@dataclass(frozen=True)
class Address:
    address: IPAddress
    prefixlen: int
    label: str | None
    interface: str


class Netlink:
    """One rtnetlink socket; use as a context manager, one per thread."""

    def __init__(self) -> None:
        self._sock = NetlinkSocket(NETLINK_ROUTE, what="rtnetlink")

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def link(self, name: str) -> Link | None:
        """The link called ``name``, or None when it does not exist."""
        try:
            found = self._sock.request(lambda seq: rtnl.get_link(seq, name), f"link {name}")
        except NetlinkError as exc:
            if exc.code in (errno.ENODEV, errno.ENOENT):
                return None
            raise
        if not found:
            return None
        info = rtnl.decode_link(found[0])
        return Link(index=info.index, name=info.name or name, mac=info.mac, up=info.up)

    def _link_names(self) -> dict[int, str]:
        return {info.index: info.name for info in
                map(rtnl.decode_link, self._sock.dump(rtnl.dump_links, "links"))}

    def addresses(self, link: Link | None = None) -> list[Address]:
        """Addresses on one link (or all links), excluding IPv6 link-local ones."""
        names = {link.index: link.name} if link is not None else self._link_names()
        out = []
        for payload in self._sock.dump(rtnl.dump_addresses, "addresses"):
            info = rtnl.decode_address(payload)
            if info is None or (link is not None and info.index != link.index):
                continue
            if info.address.version == 6 and info.address.is_link_local:
                continue
            out.append(Address(address=info.address, prefixlen=info.prefixlen, label=info.label,
                               interface=names.get(info.index, str(info.index))))
        return out

    def add_vip(self, link: Link, vip: Vip) -> bool:
        """Add a VIP; False when it was already there. IPv6 VIPs skip DAD."""
        # A VIP is moving, not new: waiting out DAD would delay the takeover.
        try:
            _with_retry(lambda: self._sock.request(
                lambda seq: rtnl.add_address(seq, link.index, vip.address, vip.prefixlen,
                                             label=vip.label if vip.family == 4 else None,
                                             nodad=vip.family == 6),
                f"adding {vip} to {link.name}"))
        except NetlinkError as exc:
            if exc.code == errno.EEXIST:
                return False
            raise OperationFailed(f"adding {vip} to {link.name} failed: "
                                  f"{exc.args[0].split(': ', 1)[-1]}") from exc
        return True

    def set_up(self, link: Link) -> None:
        """Bring a link up (idempotent)."""
        self._sock.request(lambda seq: rtnl.set_link_up(seq, link.index), f"{link.name} up")

    def remove_address(self, link: Link, address: IPAddress, prefixlen: int) -> bool:
        """Remove an address; False when it was not there."""
        try:
            _with_retry(lambda: self._sock.request(
                lambda seq: rtnl.del_address(seq, link.index, address, prefixlen),
                f"removing {address}/{prefixlen} from {link.name}"))
        except NetlinkError as exc:
            if exc.code in (errno.EADDRNOTAVAIL, errno.ENOENT, errno.ESRCH):
                return False
            raise OperationFailed(
                f"removing {address}/{prefixlen} from {link.name} failed: "
                f"{exc.args[0].split(': ', 1)[-1]}") from exc
        return True
