"""Installing the notify hooks where keepalived's script security accepts them."""

from __future__ import annotations

import os
import shutil
import sys

from haguard.adapters.keepalived import insecure_path_components
from haguard.errors import OperationFailed

HOOK_NAMES = ("notify", "notify_master", "notify_backup", "notify_fault", "notify_stop")


def source_dir() -> str:
    """hooks/ of a checkout, else the copy a wheel installs under share/haguard/hooks."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # haguard/
    checkout = os.path.join(os.path.dirname(package), "hooks")
    for candidate in (checkout, os.path.join(sys.prefix, "share", "haguard", "hooks")):
        if os.path.isfile(os.path.join(candidate, "notify")):
            return candidate
    raise OperationFailed("cannot find haguard's hooks/ directory (looked beside the package "
                          f"and in {sys.prefix}/share/haguard/hooks)")


def install(target: str, python: str | None = None) -> list[str]:
    """Copy the hooks into ``target`` (0755, root) and write haguard.env; report lines."""
    src = source_dir()
    python = python or sys.executable
    try:
        os.makedirs(target, mode=0o755, exist_ok=True)
        os.chmod(target, 0o755)
        for name in HOOK_NAMES:
            dest = os.path.join(target, name)
            tmp = dest + ".tmp"
            # The per-state names are symlinks in the checkout; install real files so
            # keepalived checks exactly what it runs.
            shutil.copyfile(os.path.join(src, "notify"), tmp)
            os.chmod(tmp, 0o755)
            os.replace(tmp, dest)
        env = os.path.join(target, "haguard.env")
        with open(env + ".tmp", "w", encoding="utf-8") as fh:
            fh.write("# Written by `haguard hooks install`: the Python that has haguard.\n")
            fh.write(f"HAGUARD_PYTHON='{python}'\n")
        os.chmod(env + ".tmp", 0o644)
        os.replace(env + ".tmp", env)
    except OSError as exc:
        raise OperationFailed(f"installing hooks into {target} failed: {exc}") from exc
    lines = [f"installed {', '.join(HOOK_NAMES)} into {target} (python: {python})"]
    problems = insecure_path_components(os.path.join(target, "notify"))
    if problems:
        lines.append("warning: keepalived's enable_script_security will refuse these hooks:")
        lines += [f"  {p}" for p in problems]
    return lines
