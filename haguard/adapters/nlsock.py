"""A netlink socket that sends haguard's own encoded requests and collects replies."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable

from haguard.core import nlmsg
from haguard.errors import OperationFailed

NETLINK_ROUTE = 0
NETLINK_GENERIC = 16
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10     # errors do not echo the request back: the sequence number names it
SO_RCVBUFFORCE = 33
RECV_SIZE = 1 << 16      # above the kernel's largest dump skb (32 KiB)
TIMEOUT_S = 60.0


class NetlinkError(OperationFailed):
    """The kernel refused a request; ``code`` is its errno."""

    def __init__(self, code: int, what: str) -> None:
        super().__init__(f"{what}: {os.strerror(code)}")
        self.code = code


class NetlinkSocket:
    """One netlink socket of ``protocol``; requests are built by the caller for a seq."""

    def __init__(self, protocol: int, rcvbuf: int | None = None, what: str = "netlink") -> None:
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                 protocol)
        except OSError as exc:
            raise OperationFailed(f"cannot open a {what} socket: {exc}") from exc
        self.sock = sock
        self.what = what
        self.seq = 0
        try:
            sock.bind((0, 0))
            if rcvbuf:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
                except PermissionError:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
            sock.settimeout(TIMEOUT_S)
        except BaseException:
            sock.close()
            raise

    def close(self) -> None:
        self.sock.close()

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def recv(self) -> bytes:
        try:
            return self.sock.recv(RECV_SIZE)
        except TimeoutError:
            raise OperationFailed(f"{self.what}: the kernel did not answer within "
                                  f"{TIMEOUT_S:.0f} s") from None
        except OSError as exc:
            if exc.errno == errno.ENOBUFS:
                raise OperationFailed(f"{self.what}: replies from the kernel were lost "
                                      "(receive buffer full); run the command again, it only "
                                      "makes the changes still missing") from None
            raise OperationFailed(f"{self.what}: reading from the kernel failed: {exc}") from None

    def request(self, build: Callable[[int], bytes], what: str) -> list[bytes]:
        """Send one request; its reply payloads (none for a plain ack). NetlinkError on a
        refusal."""
        return self._exchange(build, what, dump=False)

    def dump(self, build: Callable[[int], bytes], what: str) -> list[bytes]:
        """Every message of one dump, until NLMSG_DONE."""
        return self._exchange(build, what, dump=True)

    def _exchange(self, build: Callable[[int], bytes], what: str, dump: bool) -> list[bytes]:
        # A request ends at its ack or its one reply; a dump only at NLMSG_DONE (an ack
        # inside a dump is not its end).
        seq = self.next_seq()
        self.sock.send(build(seq))
        payloads: list[bytes] = []
        while True:
            for reply in nlmsg.replies(self.recv()):
                if reply.seq != seq:
                    continue  # a late reply to something abandoned earlier
                if reply.kind == nlmsg.NLMSG_DONE:
                    return payloads
                if reply.kind == nlmsg.NLMSG_ERROR:
                    code = nlmsg.error_code(reply.payload)
                    if code:
                        raise NetlinkError(code, what)
                    if not dump:
                        return payloads
                    continue
                payloads.append(reply.payload)
                if not dump and not reply.flags & nlmsg.NLM_F_MULTI:
                    return payloads
