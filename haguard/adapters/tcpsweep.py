"""TCP checks in bulk: every TCP check of the agent on one epoll set and one loop timer.

A TCP check is one connect, closed at once, thousands of times a second. Run as an
asyncio task each (a sleep, a future and a timer handle per wait, the loop's selector
bookkeeping per socket) the loop's own work per check cost more than the connect. Here
a check is an entry in a heap: when it is due its connect begins, its socket joins a
private epoll set (the loop watches that set's one descriptor), and closing the socket
takes it out again, so a check costs socket, connect, epoll_ctl and close, and a few
dictionary operations.

Semantics are probes.tcp's: success is a completed connect; ``timeout_s`` bounds the
connect, judged by the socket's state when the sweep wakes (a socket that became ready
in time is ready however late the loop runs: ready sockets are collected before any
deadline is looked at); an error of this host (``probes.LOCAL_ERRNOS``) is no verdict.
"""

from __future__ import annotations

import asyncio
import errno
import heapq
import itertools
import select
import socket
from collections.abc import Callable
from dataclasses import dataclass

from haguard.adapters.probes import ProbeResult, connect_failure

_ERROR = select.EPOLLERR | select.EPOLLHUP
_CONNECT_FLAGS = socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC


@dataclass(frozen=True)
class Target:
    """What one check connects to."""

    address: str
    port: int
    timeout_s: float


class _Check:
    __slots__ = ("target", "family", "sockaddr", "up_words", "timeout_words", "token")

    def __init__(self, target: Target) -> None:
        self.target = target
        self.family = socket.AF_INET6 if ":" in target.address else socket.AF_INET
        self.sockaddr = (target.address, target.port)
        host = f"[{target.address}]" if ":" in target.address else target.address
        self.up_words = f"connected to {host}:{target.port}"
        self.timeout_words = f"connect timeout after {target.timeout_s:g} s"
        self.token = 0          # which probe of this check is in flight (0: none)


class TcpSweep:
    """Runs TCP checks on ``loop`` until ``close``; ``done(ident, result)`` hears each
    probe's result and returns the delay before that check's next probe (None: no more)."""

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 done: Callable[[int, ProbeResult], float | None]) -> None:
        self._loop, self._done = loop, done
        self._checks: dict[int, _Check] = {}
        self._due: list[tuple[float, int, int]] = []          # (when, seq, ident)
        self._deadlines: list[tuple[float, int, int]] = []    # (when, token, fd)
        # In-flight connects by descriptor: (ident, token, socket, started).
        self._flight: dict[int, tuple[int, int, socket.socket, float]] = {}
        self._seq = itertools.count(1)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._epoll = select.epoll()
        loop.add_reader(self._epoll.fileno(), self._collect)

    def add(self, ident: int, target: Target, delay_s: float) -> None:
        """Check ``target`` as ``ident``, the first probe ``delay_s`` from now."""
        self._checks[ident] = _Check(target)
        self._schedule(ident, delay_s)

    def clear(self) -> None:
        """Forget every check; probes in flight are abandoned and their sockets closed."""
        for _, _, sock, _ in self._flight.values():
            sock.close()
        self._flight.clear()
        self._checks.clear()
        self._due.clear()
        self._deadlines.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        """Clear and release the epoll set."""
        self.clear()
        self._loop.remove_reader(self._epoll.fileno())
        self._epoll.close()

    def in_flight(self) -> int:
        return len(self._flight)

    # ------------------------------------------------------------------ timing
    def _schedule(self, ident: int, delay_s: float) -> None:
        when = self._loop.time() + delay_s
        heapq.heappush(self._due, (when, next(self._seq), ident))
        self._arm(when)

    def _arm(self, when: float) -> None:
        if self._timer is not None and self._timer_at <= when:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._tick)

    def _tick(self) -> None:
        self._timer = None
        # Sockets ready by now are judged ready, however late this wake-up is.
        self._collect()
        now = self._loop.time()
        deadlines, due = self._deadlines, self._due
        while deadlines and deadlines[0][0] <= now:
            _, token, fd = heapq.heappop(deadlines)
            flight = self._flight.get(fd)
            if flight is None or flight[1] != token:
                continue            # that probe ended before its deadline
            del self._flight[fd]
            ident, _, sock, started = flight
            sock.close()
            check = self._checks[ident]
            self._finish(ident, ProbeResult(False, check.timeout_words,
                                            self._loop.time() - started))
        while due and due[0][0] <= now:
            _, _, ident = heapq.heappop(due)
            if ident in self._checks:
                self._begin(ident)
        nxt = min(deadlines[0][0] if deadlines else float("inf"),
                  due[0][0] if due else float("inf"))
        if nxt != float("inf"):
            self._arm(nxt)

    # ------------------------------------------------------------------ probing
    def _begin(self, ident: int) -> None:
        check = self._checks[ident]
        started = self._loop.time()
        try:
            sock = socket.socket(check.family, _CONNECT_FLAGS)
        except OSError as exc:
            self._finish(ident, connect_failure(exc.errno or errno.EIO, self._loop.time() - started))
            return
        err = sock.connect_ex(check.sockaddr)
        if err == 0:
            sock.close()
            self._finish(ident, ProbeResult(True, check.up_words, self._loop.time() - started))
            return
        if err != errno.EINPROGRESS:
            sock.close()
            self._finish(ident, connect_failure(err, self._loop.time() - started))
            return
        fd = sock.fileno()
        token = next(self._seq)
        try:
            self._epoll.register(fd, select.EPOLLOUT)
        except OSError as exc:
            sock.close()
            self._finish(ident, connect_failure(exc.errno or errno.EIO, self._loop.time() - started))
            return
        self._flight[fd] = (ident, token, sock, started)
        deadline = started + check.target.timeout_s
        heapq.heappush(self._deadlines, (deadline, token, fd))
        self._arm(deadline)

    def _collect(self) -> None:
        """Every connect that has ended: success without a syscall more, failure by its
        SO_ERROR. Closing the socket takes it out of the epoll set."""
        events = self._epoll.poll(0)
        if not events:
            return
        now = self._loop.time()
        for fd, flags in events:
            flight = self._flight.pop(fd, None)
            if flight is None:
                continue
            ident, _, sock, started = flight
            if flags & _ERROR:
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) or errno.ECONNRESET
                sock.close()
                self._finish(ident, connect_failure(err, now - started))
            else:
                sock.close()
                self._finish(ident, ProbeResult(True, self._checks[ident].up_words,
                                                now - started))

    def _finish(self, ident: int, result: ProbeResult) -> None:
        delay = self._done(ident, result)
        if delay is not None and ident in self._checks:
            self._schedule(ident, delay)

