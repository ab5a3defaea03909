"""The host seam: everything a transition needs from the machine, in one object.

Links and addresses (rtnetlink), sysctls, the announcement frames and the socket they
go out on, the IPVS table and its sync daemon, and the re-announcer process. A notify
hook opens one ``Host`` per event; ``haguard agent`` keeps one open for its lifetime,
with its netlink socket and one packet socket per interface, so a takeover costs a
netlink call and a frame. app/ code takes a ``Host`` and never the modules behind it,
so the unit tier runs the same code against an in-memory host
(``tests/unit/memoryhost.py``). Status and the levers look at the machine through it too.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from haguard.adapters import announce, process, sysctl
from haguard.adapters.announce import BurstResult, PacketSockets
from haguard.adapters.netlink import Address, Link, Netlink
from haguard.core.config import IPAddress, Vip

if TYPE_CHECKING:
    from haguard.adapters.ipvs import Ipvs
    from haguard.core.vrrp import Advert


class Host:
    """This machine, for the transitions of one process (see the module's docstring)."""

    def __init__(self, keep_sockets: bool = False) -> None:
        self._netlink = Netlink()
        # The agent announces often: one packet socket per interface, kept (closing an
        # AF_PACKET socket waits for an RCU grace period). A hook sends one burst.
        self._sockets = PacketSockets() if keep_sockets else None

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the netlink socket and any kept packet socket."""
        self._netlink.close()
        if self._sockets is not None:
            self._sockets.close()

    # ------------------------------------------------------------ links and addresses
    def link(self, name: str) -> Link | None:
        """The interface ``name`` (index, MAC), or None when it does not exist."""
        return self._netlink.link(name)

    def addresses(self, link: Link) -> list[Address]:
        """The addresses on ``link`` now."""
        return self._netlink.addresses(link)

    def add_vip(self, link: Link, vip: Vip) -> bool:
        """Add ``vip`` on ``link``; whether it was not there yet."""
        return self._netlink.add_vip(link, vip)

    def remove_address(self, link: Link, address: IPAddress, prefixlen: int) -> bool:
        """Remove ``address/prefixlen`` from ``link``; whether it was there."""
        return self._netlink.remove_address(link, address, prefixlen)

    # ------------------------------------------------------------ sysctls
    def read_sysctl(self, key: str) -> str | None:
        """The value of ``key`` (None when the kernel has no such key)."""
        return sysctl.read(key)

    def write_sysctl(self, key: str, value: str) -> None:
        """Set ``key`` to ``value``."""
        sysctl.write(key, value)

    # ------------------------------------------------------------ announcements
    def frames(self, cache_path: str, mac: str, vips: Iterable[Vip]) -> tuple[list[bytes], bool]:
        """The announcement frames for ``vips`` from ``mac`` and whether they were cached."""
        return announce.frames_for(cache_path, mac, vips)

    def send(self, link: Link, frames: list[bytes], rounds: int, interval_ms: int, *,
             keep_going: Callable[[], bool] = lambda: True, wait_first: bool = False,
             kept_socket: bool = False) -> BurstResult:
        """Send ``frames`` ``rounds`` times on ``link``; ``kept_socket`` uses the socket
        this host keeps for the interface (when it keeps any), else a socket of its own."""
        sock = self._sockets.get(link.name, link.index) \
            if kept_socket and self._sockets is not None else None
        return announce.send_burst(link.name, frames, rounds, interval_ms,
                                   keep_going=keep_going, wait_first=wait_first, sock=sock)

    # ------------------------------------------------------------ the wire
    def listen(self, interfaces: list[str], seconds: float,
               until: Callable[[Advert], bool] | None = None) -> list[Advert]:
        """The VRRP adverts on ``interfaces`` for ``seconds`` (or up to one ``until`` takes)."""
        from haguard.adapters.wire import listen

        return listen(interfaces, seconds, until)

    def arp_probe(self, interface: str, mac: str, vips: list[str], seconds: float,
                  rounds: int) -> dict[str, list[str]]:
        """ARP probes for ``vips`` from ``mac``; the other MACs that answered each."""
        from haguard.adapters.arpprobe import arp_probe

        return arp_probe(interface, mac, vips, seconds=seconds, rounds=rounds)

    # ------------------------------------------------------------ IPVS
    def ipvs(self) -> Ipvs:
        """A new connection to the kernel's IPVS table (use it in a ``with``)."""
        from haguard.adapters.ipvs import Ipvs  # only directors with an ipvs section pay it

        return Ipvs()

    def sync_daemon(self, role: str, interface: str, syncid: int) -> None:
        """Run the IPVS connection-sync daemon in ``role`` only."""
        from haguard.adapters.ipvs import sync_daemon

        sync_daemon(role, interface, syncid)

    # ------------------------------------------------------------ processes
    def spawn(self, args: list[str]) -> int:
        """Start ``args`` detached (own session, no stdio); its pid."""
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True,
                                close_fds=True)
        return proc.pid

    def terminate_if(self, pid: int, *markers: str) -> bool:
        """SIGTERM ``pid`` if its command line holds every marker; whether it did."""
        return process.terminate_if(pid, *markers)


def opened(host: Host | None) -> contextlib.AbstractContextManager[Host]:
    """``host`` as it is (whoever opened it closes it), else a new Host closed on exit."""
    return contextlib.nullcontext(host) if host is not None else Host()
