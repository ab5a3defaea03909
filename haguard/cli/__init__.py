"""The ``haguard`` command: argument spec (parser), commands, output and exit status.

Exit codes are ``haguard.errors.ExitStatus``: 0 success, 1 an operation failed, 2 bad
input (nothing was changed), 3 doctor found warnings only, 130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from haguard.cli.parser import build_parser
from haguard.errors import ConfigError, ExitStatus, HaguardError


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``haguard`` command line; the process's exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args))
        from haguard.adapters.process import termination_seen

        if termination_seen():
            # Told to stop, yet the command ran on to its end (the KeyboardInterrupt was
            # lost somewhere): it was still interrupted, and must not say it succeeded.
            print("interrupted", file=sys.stderr)
            return ExitStatus.INTERRUPTED
        return code
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return exc.exit_code
    except HaguardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitStatus.INTERRUPTED
    except BrokenPipeError:
        return ExitStatus.FAILED
