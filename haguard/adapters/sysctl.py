"""Read and write sysctls through /proc/sys (of the caller's network namespace)."""

from __future__ import annotations

import os

from haguard.errors import OperationFailed

PROC_SYS = "/proc/sys"


def _path(key: str) -> str:
    return os.path.join(PROC_SYS, *key.split("."))


def read(key: str) -> str | None:
    """Current value (whitespace-normalised), or None when the key does not exist."""
    try:
        with open(_path(key), encoding="ascii") as fh:
            return " ".join(fh.read().split())
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OperationFailed(f"sysctl {key}: cannot read: {exc.strerror}") from exc


def write(key: str, value: str) -> None:
    """Set a sysctl; an error names the key and what the kernel said."""
    try:
        with open(_path(key), "w", encoding="ascii") as fh:
            fh.write(value)
    except FileNotFoundError:
        raise OperationFailed(f"sysctl {key}: no such key on this kernel") from None
    except OSError as exc:
        raise OperationFailed(f"sysctl {key}={value}: {exc.strerror}") from exc
