"""Running out of file descriptors on purpose, for as long as a block runs."""

from __future__ import annotations

import contextlib
import os
import resource
import socket
from collections.abc import Iterator


@contextlib.contextmanager
def none_free() -> Iterator[None]:
    """Every descriptor this process may open in use (a low limit, filled with sockets);
    the limit and the descriptors given back afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    hog: list[socket.socket] = []
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 8, hard))
        with contextlib.suppress(OSError):
            while True:
                hog.append(socket.socket())
        yield
    finally:
        for s in hog:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
