"""TCP and plain-HTTP checks in bulk: all of them on one epoll set and one loop timer.

A TCP check is one connect, closed at once; a plain-HTTP check one connect, one request
and one answer; thousands of them a second. Run as an asyncio task each (a sleep, a
future and a timer handle per wait, the loop's selector bookkeeping per socket), the
loop's own work per check cost more than the check. Here a check is an entry in a heap:
when it is due its connect begins, its socket joins a private epoll set whose one
descriptor the loop watches, and closing the socket takes it out again. A TCP check
costs socket, connect, epoll_ctl and close.

Timeouts are keepalived's: ``timeout_s`` bounds each wait, the connect and then each read
of an HTTP answer (keepalived's HTTP_GET re-arms its timer for each read), and a wait is
judged by the socket's state when the sweep wakes: ready sockets are collected before any
deadline is looked at, so a loop running late under load does not call a connect or an
answer that came in time a timeout. An error of this host (``probes.LOCAL_ERRNOS``) is no
verdict on the real server. What an answer means is core.httpanswer's.
"""

from __future__ import annotations

import asyncio
import errno
import heapq
import itertools
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from haguard.adapters.probes import ProbeResult, connect_failure
from haguard.core import httpanswer
from haguard.core.healthconfig import HttpSpec

_ERROR = select.EPOLLERR | select.EPOLLHUP
# One wake-up of the sweep holds the loop this long at most (and begins at most BURST
# probes): after a stall, or when more checks are due than this host can make, thousands
# are due at once, and the loop's other work (a VRRP event from keepalived) goes between
# slices, not after all of them.
SLICE_S = 0.005
BURST = 256
# A wake-up also begins the probes due within the next EARLY_S (at most EARLY_SHARE of
# their delay early): with a thousand checks a second each would otherwise have a
# wake-up of its own, and the loop's cost per wake-up was most of a probe's.
EARLY_S = 0.005
EARLY_SHARE = 0.01
POLL_MAX = 1024        # events per epoll_wait; a full answer means more may be ready
_CONNECT_FLAGS = socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC


@dataclass(frozen=True)
class Target:
    """What one check connects to; with ``http``, the GET it sends and judges."""

    address: str
    port: int
    timeout_s: float
    http: HttpSpec | None = None


class _Check:
    __slots__ = ("target", "family", "sockaddr", "up_words", "connect_timeout_words",
                 "read_timeout_words", "request")

    def __init__(self, target: Target) -> None:
        self.target = target
        self.family = socket.AF_INET6 if ":" in target.address else socket.AF_INET
        self.sockaddr = (target.address, target.port)
        host = f"[{target.address}]" if ":" in target.address else target.address
        self.up_words = f"connected to {host}:{target.port}"
        self.connect_timeout_words = f"connect timeout after {target.timeout_s:g} s"
        self.request, self.read_timeout_words = b"", ""
        if target.http is not None:
            self.request = httpanswer.request(target.address, target.port, target.http)
            self.read_timeout_words = \
                f"HTTP timeout after {target.timeout_s:g} s on {target.http.path}"


class _Probe:
    """One probe under way: its socket and, for HTTP, what is left to send and what has
    been read. ``token`` names its current deadline (a read moves it on)."""

    __slots__ = ("ident", "check", "sock", "started", "token", "unsent", "answer")

    def __init__(self, ident: int, check: _Check, sock: socket.socket, started: float) -> None:
        self.ident, self.check, self.sock, self.started = ident, check, sock, started
        self.token = 0
        self.unsent: bytes | None = None     # None: still connecting
        self.answer = b""


class Sweep:
    """Runs TCP and plain-HTTP checks on ``loop`` until ``close``; ``done(ident,
    result)`` hears each probe's result and returns the delay before that check's next
    probe (None: no more). ``clock`` times the slices (tests pass their own)."""

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 done: Callable[[int, ProbeResult], float | None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._loop, self._done, self._clock = loop, done, clock
        self._checks: dict[int, _Check] = {}
        self._due: list[tuple[float, int, int, float]] = []   # (when, seq, ident, earliest)
        self._deadlines: list[tuple[float, int, int]] = []    # (when, token, fd)
        self._flight: dict[int, _Probe] = {}                  # by descriptor
        self._seq = itertools.count(1)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._epoll = select.epoll()
        loop.add_reader(self._epoll.fileno(), self._ready)

    def add(self, ident: int, target: Target, delay_s: float) -> None:
        """Check ``target`` as ``ident``, the first probe ``delay_s`` from now."""
        self._checks[ident] = _Check(target)
        self._schedule(ident, delay_s)

    def clear(self) -> None:
        """Forget every check; probes in flight are abandoned and their sockets closed."""
        for probe in self._flight.values():
            probe.sock.close()
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
        early = min(EARLY_S, delay_s * EARLY_SHARE)
        heapq.heappush(self._due, (when, next(self._seq), ident, when - early))
        self._arm(when)

    def _arm(self, when: float) -> None:
        if self._timer is not None and self._timer_at <= when:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._tick)

    def _pending(self, deadline: tuple[float, int, int]) -> bool:
        """Whether ``deadline`` is still that of a probe in flight."""
        probe = self._flight.get(deadline[2])
        return probe is not None and probe.token == deadline[1]

    def _deadline(self, probe: _Probe, fd: int) -> None:
        probe.token = next(self._seq)
        deadline = self._loop.time() + probe.check.target.timeout_s
        heapq.heappush(self._deadlines, (deadline, probe.token, fd))
        self._arm(deadline)

    def _tick(self) -> None:
        self._timer = None
        try:
            self._due_now()
        finally:
            # Whatever one result's handling raised (the loop's handler logs it), every
            # other check keeps its schedule.
            deadlines = self._deadlines
            # The deadline of a probe that has ended since needs no wake-up.
            while deadlines and not self._pending(deadlines[0]):
                heapq.heappop(deadlines)
            nxt = min(self._deadlines[0][0] if self._deadlines else float("inf"),
                      self._due[0][0] if self._due else float("inf"))
            if nxt != float("inf"):
                self._arm(nxt)

    def _due_now(self) -> None:
        # What is left when the slice ends is due still: _tick arms the timer for it, to
        # run after the loop's other ready work.
        until = self._clock() + SLICE_S
        # Sockets ready by now are judged ready, however late this wake-up is: no
        # deadline is looked at before every one of them has been read.
        if not self._collect(until):
            return
        now = self._loop.time()
        deadlines, due = self._deadlines, self._due
        while deadlines and deadlines[0][0] <= now:
            if self._clock() > until:
                return
            deadline = heapq.heappop(deadlines)
            if not self._pending(deadline):
                continue            # that probe ended, or read since, before this deadline
            fd = deadline[2]
            probe = self._flight[fd]
            self._end(fd, probe, False, probe.check.connect_timeout_words
                      if probe.unsent is None else probe.check.read_timeout_words)
        begun, soon = 0, now + EARLY_S
        while due and due[0][0] <= soon and due[0][3] <= now and begun < BURST \
                and self._clock() <= until:
            ident = heapq.heappop(due)[2]
            if ident in self._checks:
                self._begin(ident)
                begun += 1

    # ------------------------------------------------------------------ probing
    def _begin(self, ident: int) -> None:
        check = self._checks[ident]
        started = self._loop.time()
        try:
            sock = socket.socket(check.family, _CONNECT_FLAGS)
        except OSError as exc:
            self._finish(ident, connect_failure(exc.errno or errno.EIO, 0.0))
            return
        err = sock.connect_ex(check.sockaddr)
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            self._finish(ident, connect_failure(err, self._loop.time() - started))
            return
        probe = _Probe(ident, check, sock, started)
        fd = sock.fileno()
        if err == 0 and check.target.http is None:
            sock.close()
            self._finish(ident, ProbeResult(True, check.up_words, self._loop.time() - started))
            return
        try:
            self._epoll.register(fd, select.EPOLLOUT)
        except OSError as exc:
            sock.close()
            self._finish(ident, connect_failure(exc.errno or errno.EIO,
                                                self._loop.time() - started))
            return
        self._flight[fd] = probe
        self._deadline(probe, fd)

    def _ready(self) -> None:
        self._collect(self._clock() + SLICE_S)

    def _collect(self, until: float) -> bool:
        """Every probe whose socket is ready: a connect that ended (success without a
        syscall more, failure by its SO_ERROR), a request to send, an answer to read.
        False when the slice ended first (the set is level-triggered: the rest stay
        ready, and the loop calls again)."""
        while True:
            events = self._epoll.poll(0, POLL_MAX)
            last = len(events) - 1 if len(events) < POLL_MAX else -1
            for handled, (fd, flags) in enumerate(events):
                probe = self._flight.get(fd)
                if probe is not None:
                    if probe.unsent is None:
                        self._connected(fd, probe, flags)
                    elif probe.unsent:
                        self._send(fd, probe)
                    else:
                        self._read(fd, probe)
                if handled != last and self._clock() > until:
                    return False
            if len(events) < POLL_MAX:
                return True

    def _connected(self, fd: int, probe: _Probe, flags: int) -> None:
        sock = probe.sock
        if flags & _ERROR:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) or errno.ECONNRESET
            del self._flight[fd]
            sock.close()
            self._finish(probe.ident, connect_failure(err, self._loop.time() - probe.started))
        elif probe.check.target.http is None:
            self._end(fd, probe, True, probe.check.up_words)
        else:
            probe.unsent = probe.check.request
            self._send(fd, probe)

    def _send(self, fd: int, probe: _Probe) -> None:
        assert probe.unsent is not None
        try:
            sent = probe.sock.send(probe.unsent)
        except BlockingIOError:
            return
        except OSError as exc:
            self._end(fd, probe, False, f"HTTP exchange failed: {exc}")
            return
        probe.unsent = probe.unsent[sent:]
        if not probe.unsent:
            self._epoll.modify(fd, select.EPOLLIN)
        self._deadline(probe, fd)

    def _read(self, fd: int, probe: _Probe) -> None:
        spec = probe.check.target.http
        assert spec is not None
        try:
            chunk = probe.sock.recv(httpanswer.BODY_LIMIT)
        except BlockingIOError:
            return
        except OSError as exc:
            self._end(fd, probe, False, f"HTTP exchange failed: {exc}")
            return
        probe.answer += chunk
        said = httpanswer.verdict(probe.answer, not chunk, spec)
        if said is None:
            self._deadline(probe, fd)
        else:
            self._end(fd, probe, *said)

    def _end(self, fd: int, probe: _Probe, ok: bool, words: str) -> None:
        del self._flight[fd]
        probe.sock.close()
        self._finish(probe.ident, ProbeResult(ok, words, self._loop.time() - probe.started))

    def _finish(self, ident: int, result: ProbeResult) -> None:
        delay = self._done(ident, result)
        if delay is not None and ident in self._checks:
            self._schedule(ident, delay)
