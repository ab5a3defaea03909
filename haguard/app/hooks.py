"""Installing the notify hooks where keepalived's script security accepts them."""

from __future__ import annotations

import os
import sys

from haguard.adapters import hookfiles
from haguard.adapters.keepalived import insecure_path_components

HOOK_NAMES = ("notify", "notify_master", "notify_backup", "notify_fault", "notify_stop")


def install(target: str, python: str | None = None) -> list[str]:
    """Copy the hooks into ``target`` (0755, root) and write haguard.env; report lines."""
    python = python or sys.executable
    hookfiles.copy(hookfiles.source_dir(), target, HOOK_NAMES, python)
    lines = [f"installed {', '.join(HOOK_NAMES)} into {target} (python: {python})"]
    problems = insecure_path_components(os.path.join(target, "notify"))
    if problems:
        lines.append("warning: keepalived's enable_script_security will refuse these hooks:")
        lines += [f"  {p}" for p in problems]
    return lines
