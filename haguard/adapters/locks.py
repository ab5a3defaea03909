"""File locks: one writer of the IPVS table per node, one agent per node."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator


@contextlib.contextmanager
def held(path: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing), waiting for it."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class PidLock:
    """An exclusive lock that says who holds it: ``path`` holds the holder's pid.

    The hooks read the lock (not the pid) to decide whether an agent runs, so a pid file
    left by a dead agent hands nothing over to it.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = -1

    def acquire(self) -> str | None:
        """Take the lock now: None when taken, else the holder's pid as it wrote it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            return other
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return None

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def held_by_another(path: str) -> bool:
    """Whether a process holds the lock at ``path`` now (the agent's, for a command that
    must leave the table to it), asked without waiting and without creating the file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False



def holder(path: str) -> int | None:
    """The pid a PidLock's holder wrote at ``path``, while the lock is held; else None."""
    if not held_by_another(path):
        return None
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            text = fh.read(32).strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
