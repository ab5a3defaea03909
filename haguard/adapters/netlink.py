"""Links and addresses through rtnetlink (pyroute2).

pyroute2 is imported when a Netlink is opened, not at module import, because the notify
hook's start-up time is on the failover's critical path.
"""

from __future__ import annotations

import errno
import ipaddress
from dataclasses import dataclass
from typing import Any

from haguard.core.config import IPAddress, Vip
from haguard.errors import OperationFailed

# The kernel says "try again" with these; anything else is a real refusal.
_TRANSIENT = {errno.EAGAIN, errno.EBUSY, errno.EINTR, errno.ENOBUFS}


def _transient(exc: BaseException) -> bool:
    return getattr(exc, "code", None) in _TRANSIENT


def _with_retry(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Call, retrying only what the kernel called transient (tenacity, imported late)."""
    from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

    retrying = retry(retry=retry_if_exception(_transient), stop=stop_after_attempt(5),
                     wait=wait_exponential(multiplier=0.005, max=0.1), reraise=True)
    return retrying(call)(*args, **kwargs)


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
        from pyroute2 import IPRoute

        self._ipr: Any = IPRoute()

    def __enter__(self) -> "Netlink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._ipr.close()

    def link(self, name: str) -> Link | None:
        """The link called ``name``, or None when it does not exist."""
        found = self._ipr.link_lookup(ifname=name)
        if not found:
            return None
        msg = self._ipr.get_links(found[0])[0]
        return Link(index=msg["index"], name=name,
                    mac=msg.get_attr("IFLA_ADDRESS") or "00:00:00:00:00:00",
                    up=bool(msg["flags"] & 1))

    def addresses(self, link: Link | None = None) -> list[Address]:
        """Addresses on one link (or all links), excluding IPv6 link-local ones."""
        names = {l["index"]: l.get_attr("IFLA_IFNAME") for l in self._ipr.get_links()}
        kwargs = {"index": link.index} if link is not None else {}
        out = []
        for msg in self._ipr.get_addr(**kwargs):
            text = msg.get_attr("IFA_ADDRESS") if msg["family"] == 10 else \
                (msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS"))
            if text is None:
                continue
            addr = ipaddress.ip_address(text)
            if addr.version == 6 and addr.is_link_local:
                continue
            out.append(Address(address=addr, prefixlen=msg["prefixlen"],
                               label=msg.get_attr("IFA_LABEL"),
                               interface=names.get(msg["index"], str(msg["index"]))))
        return out

    def _addr(self, command: str, **kwargs: Any) -> None:
        try:
            self._ipr.addr(command, **kwargs)
        except Exception as exc:  # noqa: BLE001 - sorted by errno just below
            if not _transient(exc):
                raise
            _with_retry(self._ipr.addr, command, **kwargs)

    def add_vip(self, link: Link, vip: Vip) -> bool:
        """Add a VIP; False when it was already there. IPv6 VIPs skip DAD."""
        from pyroute2.netlink.exceptions import NetlinkError
        from pyroute2.netlink.rtnl.ifaddrmsg import IFA_F_NODAD

        kwargs: dict[str, Any] = {"index": link.index, "address": str(vip.address),
                                  "prefixlen": vip.prefixlen}
        if vip.family == 4:
            if vip.label:
                kwargs["label"] = vip.label
        else:
            # A VIP is moving, not new: waiting out DAD would delay the takeover.
            kwargs["flags"] = IFA_F_NODAD
        try:
            self._addr("add", **kwargs)
        except NetlinkError as exc:
            if exc.code == errno.EEXIST:
                return False
            raise OperationFailed(f"adding {vip} to {link.name} failed: {exc}") from exc
        return True

    def set_up(self, link: Link) -> None:
        """Bring a link up (idempotent)."""
        self._ipr.link("set", index=link.index, state="up")

    def remove_address(self, link: Link, address: IPAddress, prefixlen: int) -> bool:
        """Remove an address; False when it was not there."""
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            self._addr("del", index=link.index, address=str(address), prefixlen=prefixlen)
        except NetlinkError as exc:
            if exc.code in (errno.EADDRNOTAVAIL, errno.ENOENT, errno.ESRCH):
                return False
            raise OperationFailed(
                f"removing {address}/{prefixlen} from {link.name} failed: {exc}") from exc
        return True
