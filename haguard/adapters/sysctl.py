"""Read and write sysctls through /proc/sys (of the caller's network namespace)."""

from __future__ import annotations

import os
import subprocess

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


# Keys that exist only once their module is loaded: after a reboot nothing may have
# loaded ip_vs yet when the first MASTER transition sets them.
_MODULE_OF = (("net.ipv4.vs.", "ip_vs"),)


def write(key: str, value: str) -> None:
    """Set a sysctl; an error names the key and what the kernel said."""
    path = _path(key)
    module = next((m for prefix, m in _MODULE_OF if key.startswith(prefix)), None)
    if module and not os.path.exists(path):
        subprocess.run(["modprobe", module], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=60, check=False)
    try:
        with open(path, "w", encoding="ascii") as fh:
            fh.write(value)
    except FileNotFoundError:
        hint = f" (module {module} did not load)" if module else ""
        raise OperationFailed(f"sysctl {key}: no such key on this kernel{hint}") from None
    except OSError as exc:
        raise OperationFailed(f"sysctl {key}={value}: {exc.strerror}") from exc
