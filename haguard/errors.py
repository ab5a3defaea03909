"""One exception hierarchy; each class knows the exit status the CLI returns for it."""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """Every exit status ``haguard`` uses, and what each means to a script calling it."""

    OK = 0
    FAILED = 1          # an operation failed, a check found a problem, a lever was refused
    BAD_INPUT = 2       # invalid config or arguments; nothing was changed
    WARNINGS = 3        # doctor: warnings, but no error; migrate: lines need a decision
    INTERRUPTED = 130   # SIGINT / SIGTERM (128 + SIGINT, as shells report it)


class HaguardError(Exception):
    """Root of every error haguard raises on purpose."""

    exit_code: ExitStatus = ExitStatus.FAILED


class BadInput(HaguardError):
    """The caller gave something haguard cannot act on; nothing was changed."""

    exit_code = ExitStatus.BAD_INPUT


class ConfigError(BadInput):
    """One or more problems in a config file, each with file, line and path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class UnknownInstance(BadInput):
    """A notify event named an instance the config does not have."""


class UnknownState(BadInput):
    """A notify event carried a state haguard does not know."""


class OperationFailed(HaguardError):
    """The system refused an action; the message says what was and was not done."""


class KeepalivedError(OperationFailed):
    """keepalived could not be run, or rejected the rendered config."""


class LabError(OperationFailed):
    """The lab could not be built, driven or measured."""
