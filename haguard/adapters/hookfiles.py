"""The notify hook files: where the package keeps them, and copying them into place."""

from __future__ import annotations

import os
import shutil
import sys

from haguard.errors import OperationFailed


def source_dir() -> str:
    """hooks/ of a checkout, else the copy a wheel installs under share/haguard/hooks."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # haguard/
    checkout = os.path.join(os.path.dirname(package), "hooks")
    for candidate in (checkout, os.path.join(sys.prefix, "share", "haguard", "hooks")):
        if os.path.isfile(os.path.join(candidate, "notify")):
            return candidate
    raise OperationFailed("cannot find haguard's hooks/ directory (looked beside the package "
                          f"and in {sys.prefix}/share/haguard/hooks)")


def copy(src: str, target: str, names: tuple[str, ...], python: str) -> None:
    """Each of ``names`` as a 0755 copy of ``src``/notify in ``target``, and haguard.env
    naming ``python``; every file replaced in one rename."""
    try:
        os.makedirs(target, mode=0o755, exist_ok=True)
        os.chmod(target, 0o755)
        for name in names:
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
