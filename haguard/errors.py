"""One exception hierarchy; each class knows the exit code the CLI returns for it."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class HaguardError(Exception):
    """Root of every error haguard raises on purpose."""

    exit_code = EXIT_FAILED


class BadInput(HaguardError):
    """The caller gave something haguard cannot act on; nothing was changed."""

    exit_code = EXIT_BAD_INPUT


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
