"""What the agent waits on: keepalived's notify FIFO, who opens it, and process exits.

The agent creates the FIFO itself and holds it open read-write: keepalived then neither
creates nor deletes it (it unlinks only a FIFO it made), a writer that restarts never
makes the agent see end-of-file, and what keepalived writes while the agent restarts
waits in the pipe. keepalived closes and reopens the FIFO when it starts and on every
reload, which inotify reports as an open: that is how the agent notices a reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import os
import select
import stat
import struct

from haguard.errors import OperationFailed

IN_OPEN = 0x00000020
IN_ATTRIB = 0x00000004
IN_DELETE_SELF = 0x00000400
IN_IGNORED = 0x00008000
_EVENT = struct.Struct("iIII")


class Fifo:
    """keepalived's notify FIFO, opened read-write and non-blocking; yields whole lines."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._partial = b""
        self.fd = -1
        self.open()

    def open(self) -> None:
        os.makedirs(os.path.dirname(self.path) or "/", mode=0o755, exist_ok=True)
        try:
            os.mkfifo(self.path, 0o600)
        except FileExistsError:
            mode = os.lstat(self.path).st_mode
            if not stat.S_ISFIFO(mode):
                raise OperationFailed(f"{self.path} exists and is not a FIFO; remove it or set "
                                      "agent.fifo to another path") from None
        except OSError as exc:
            raise OperationFailed(f"cannot create the notify FIFO {self.path}: {exc}") from exc
        self.fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        self._identity = _identity(os.fstat(self.fd))

    def replaced(self) -> bool:
        """True when the path no longer names the FIFO held open (deleted or recreated)."""
        try:
            return _identity(os.stat(self.path)) != self._identity
        except FileNotFoundError:
            return True

    def exists(self) -> bool:
        """Whether something is at the FIFO's path."""
        return os.path.exists(self.path)

    def reopen(self) -> None:
        self.close()
        self.open()

    def read_lines(self) -> list[str]:
        """Every complete line available now (an incomplete one waits for its end)."""
        chunks = [self._partial]
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            if not data:
                break
            chunks.append(data)
        data = b"".join(chunks)
        *lines, self._partial = data.split(b"\n")
        return [line.decode("utf-8", "replace") for line in lines if line.strip()]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _identity(st: os.stat_result) -> tuple[int, int]:
    return (st.st_dev, st.st_ino)


class OpenWatch:
    """inotify on one path: reports opens by other processes (keepalived's start/reload)."""

    def __init__(self, path: str) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self._libc = libc
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OperationFailed(f"inotify_init1: {os.strerror(ctypes.get_errno())}")
        self.path = path
        self._watch()

    def _watch(self) -> None:
        wd = self._libc.inotify_add_watch(self.fd, self.path.encode(),
                                          IN_OPEN | IN_DELETE_SELF | IN_ATTRIB)
        if wd < 0:
            raise OperationFailed(f"inotify_add_watch {self.path}: "
                                  f"{os.strerror(ctypes.get_errno())}")

    def rewatch(self) -> None:
        """Watch the path again (after the FIFO was recreated)."""
        self._watch()

    def opened(self) -> int:
        """How many opens were reported since the last call."""
        count = 0
        while True:
            try:
                data = os.read(self.fd, 4096)
            except BlockingIOError:
                return count
            offset = 0
            while offset + _EVENT.size <= len(data):
                _wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size + length
                if mask & IN_OPEN:
                    count += 1

    def close(self) -> None:
        os.close(self.fd)


class ProcessExit:
    """A pidfd: readable once the process has ended, however it ended."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid, self.fd = pid, fd

    @classmethod
    def of(cls, pid: int) -> ProcessExit | None:
        """Watch ``pid``; None when it is already gone."""
        try:
            return cls(pid, os.pidfd_open(pid))
        except ProcessLookupError:
            return None
        except OSError as exc:
            if exc.errno == errno.ESRCH:
                return None
            raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def wait_readable(fds: list[int], timeout_s: float) -> set[int]:
    """Which of ``fds`` became readable within ``timeout_s`` (none when a signal came)."""
    try:
        ready, _, _ = select.select(fds, [], [], timeout_s)
    except InterruptedError:
        return set()
    return set(ready)


async def readable(fds: list[int], timeout_s: float) -> set[int]:
    """``wait_readable`` on the running event loop: other tasks run while it waits."""
    loop = asyncio.get_running_loop()
    woke = asyncio.Event()
    for fd in fds:
        loop.add_reader(fd, woke.set)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(woke.wait(), timeout_s)
    finally:
        for fd in fds:
            loop.remove_reader(fd)
    # Every descriptor that is ready now, as one select() would have reported them.
    return wait_readable(fds, 0) if woke.is_set() else set()
