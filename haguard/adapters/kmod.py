"""Kernel modules: load one, or ask whether one could be loaded without loading it."""

from __future__ import annotations

import os
import shutil
import subprocess

from haguard.errors import OperationFailed

_KMOD_HINT = "apt-get install kmod"


def _modprobe() -> str | None:
    # /sbin is not on every PATH a hook or a sudo session gets.
    return shutil.which("modprobe") or next(
        (p for p in ("/usr/sbin/modprobe", "/sbin/modprobe") if os.path.exists(p)), None)


def load(module: str) -> None:
    """modprobe ``module``; OperationFailed with modprobe's own words when it cannot."""
    try:
        proc = subprocess.run(["modprobe", module], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise OperationFailed(f"modprobe is not installed ({_KMOD_HINT})") from None
    if proc.returncode != 0:
        raise OperationFailed(f"modprobe {module}: {proc.stderr.strip()}")


def ip_vs_loadable() -> tuple[bool, str]:
    """Whether IPVS is in the kernel or can be loaded, and in words why (loads nothing)."""
    # /proc/net/ip_vs appears once IPVS is in the kernel (built in or loaded).
    if os.path.exists("/proc/net/ip_vs"):
        return True, "loaded"
    modprobe = _modprobe()
    if modprobe is None:
        return False, f"not loaded, and modprobe is not installed ({_KMOD_HINT})"
    try:
        # -n: resolve and report, load nothing (doctor changes nothing on the host).
        proc = subprocess.run([modprobe, "-n", "-v", "ip_vs"], capture_output=True, text=True,
                              timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"modprobe -n ip_vs failed: {exc}"
    if proc.returncode == 0:
        return True, "not loaded; modprobe can load it"
    return False, (proc.stderr.strip() or f"modprobe -n ip_vs exited {proc.returncode}")
