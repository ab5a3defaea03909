"""Helpers for the table-driven config tests: a base document edited one way per case,
and the problems haguard reports for it, written as an operator reads them."""

from __future__ import annotations

import pytest

from haguard.core.config import loads
from haguard.errors import ConfigError

FILENAME = "lb1.yaml"


def edit(text: str, *changes: tuple[str, str]) -> str:
    """Apply textual ``(old, new)`` replacements; each ``old`` must occur exactly once."""
    for old, new in changes:
        assert text.count(old) == 1, f"{old!r} must occur exactly once"
        text = text.replace(old, new)
    return text


def problems_of(text: str) -> list[str]:
    """Every problem the config loader reports for ``text`` (which must not load)."""
    with pytest.raises(ConfigError) as info:
        loads(text, filename=FILENAME)
    return info.value.problems


def at(line: int, rest: str) -> str:
    """A problem as reported: ``lb1.yaml:LINE: path: message``."""
    return f"{FILENAME}:{line}: {rest}"
