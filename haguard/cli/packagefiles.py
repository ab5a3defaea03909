"""The files the Debian package generates at build time, from the code itself.

    python3 -m haguard.cli.packagefiles OUTDIR

writes OUTDIR/man/haguard.8 and haguard.yaml.5 (from the argument spec and the config
model), OUTDIR/bash-completion/haguard, and OUTDIR/systemd/ (the agent's and the real
server's units, keepalived's KillMode drop-in): debian/rules installs them from there.
"""

from __future__ import annotations

import os
import sys

from haguard.adapters.files import write_atomic
from haguard.adapters.systemd import packaged_units
from haguard.cli.manpage import bash_completion, haguard_8, haguard_yaml_5


def files() -> dict[str, str]:
    """Every generated file by its path under OUTDIR."""
    out = {"man/haguard.8": haguard_8(), "man/haguard.yaml.5": haguard_yaml_5(),
           "bash-completion/haguard": bash_completion()}
    out.update({f"systemd/{name}": text for name, text in packaged_units().items()})
    return out


def main(argv: list[str] | None = None) -> int:
    """Write :func:`files` under OUTDIR."""
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: python3 -m haguard.cli.packagefiles OUTDIR", file=sys.stderr)
        return 2
    for name, text in files().items():
        path = os.path.join(args[0], name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_atomic(path, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
