"""Validation primitives shared by the config sections: problems with file, line, path."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from haguard.core.yamlsrc import Path, Source

MISSING = object()
_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")
# keepalived re-splits a script line on white space and quotes.
_SCRIPT_WORD_RE = re.compile(r"^[^\s\"'\\]+$")
IFNAME_MAX = 15  # IFNAMSIZ - 1; also the limit for IPv4 address labels
_IFNAME_RE = re.compile(r"^[^\s/:]+$")


class Checker:
    """Collects problems against a Source; every check returns a usable value."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.problems: list[str] = []
        # instance path -> list index of each VIP that was accepted, for cross-checks
        self.vip_positions: dict[Path, list[int]] = {}

    def fail(self, path: Path, message: str, key: bool = False) -> None:
        problem = f"{self.source.where(path, key)}: {message}"
        # A service's default judged once per real server must not be reported each time.
        if problem not in self.problems:
            self.problems.append(problem)

    def mapping(self, value: Any, path: Path, allowed: Iterable[str],
                required: Iterable[str] = ()) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(path, f"must be a mapping, not {kind(value)}")
            return {}
        allowed = tuple(allowed)
        for key in value:
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                suffix = f" (did you mean '{hint[0]}'?)" if hint else \
                    f" (known keys: {', '.join(allowed)})"
                self.fail(path + (key,), f"unknown key{suffix}", key=True)
        for key in required:
            if key not in value:
                self.fail(path, f"missing required key '{key}'")
        return value

    def integer(self, value: Any, path: Path, lo: int, hi: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"must be an integer, not {show(value)}")
            return None
        if not lo <= value <= hi:
            self.fail(path, f"{value} is out of range ({lo}-{hi})")
            return None
        return value

    def number(self, value: Any, path: Path, lo: float, hi: float) -> float | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(path, f"must be a number, not {show(value)}")
            return None
        if not lo <= value <= hi:
            self.fail(path, f"{value} is out of range ({lo:g}-{hi:g})")
            return None
        return float(value)

    def boolean(self, value: Any, path: Path) -> bool | None:
        if not isinstance(value, bool):
            self.fail(path, f"must be true or false, not {show(value)}")
            return None
        return value

    def string(self, value: Any, path: Path, pattern: re.Pattern[str] | None = None,
               what: str = "") -> str | None:
        if not isinstance(value, str) or not value:
            self.fail(path, f"must be a non-empty string, not {show(value)}")
            return None
        if pattern is not None and not pattern.match(value):
            self.fail(path, f"{value!r} is not {what}")
            return None
        return value

    def abspath(self, value: Any, path: Path) -> str | None:
        text = self.string(value, path)
        if text is not None and not text.startswith("/"):
            self.fail(path, f"{text!r} must be an absolute path")
            return None
        return text

    def choice(self, value: Any, path: Path, choices: Iterable[Any]) -> Any:
        choices = tuple(choices)
        if value not in choices or isinstance(value, bool) != any(isinstance(c, bool) for c in choices):
            shown = ", ".join(str(c) for c in choices)
            self.fail(path, f"{show(value)} is not one of: {shown}")
            return None
        return value

    def ifname(self, value: Any, path: Path) -> str | None:
        """A Linux interface name: 1-15 characters, no whitespace, '/' or ':'."""
        name = self.string(value, path, _IFNAME_RE, "a valid interface name")
        if name is None:
            return None
        if len(name) > IFNAME_MAX or name in (".", ".."):
            self.fail(path, f"{name!r} is not a valid interface name (1-{IFNAME_MAX} characters)")
            return None
        return name

    def listing(self, value: Any, path: Path) -> list[Any]:
        if not isinstance(value, list):
            self.fail(path, f"must be a list, not {kind(value)}")
            return []
        return value


def kind(value: Any) -> str:
    if value is None:
        return "empty"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


def show(value: Any) -> str:
    if isinstance(value, (dict, list)) or value is None:
        return kind(value)
    return repr(value)


def field(checker: Checker, data: Mapping[str, Any], key: str, path: Path,
           check: Callable[[Any, Path], Any], default: Any = MISSING) -> Any:
    if key not in data:
        return default
    return check(data[key], path + (key,))




def argv(c: Checker, raw: Any, path: Path, *, placeholders: tuple[str, ...] = (),
         elsewhere: str = "", script_line: bool = False) -> tuple[str, ...] | None:
    """A command as an argument list, its program an absolute path (it runs without a
    shell or a PATH search). ``placeholders``: the {names} haguard fills in (none:
    ``elsewhere`` says where they work); ``script_line``: keepalived carries it in one
    script line, so no argument may hold white space or quotes."""
    items = c.listing(raw, path)
    if isinstance(raw, list) and not items:
        c.fail(path, "must list the program and its arguments")
        return None
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, (str, int)) or isinstance(item, bool) or item == "":
            c.fail(path + (i,), f"{show(item)} is not a command argument (a string)")
            return None
        text = str(item)
        if i == 0 and not text.startswith("/"):
            c.fail(path + (i,), f"{text!r} must be an absolute path (commands run without "
                                "a shell or a PATH search)")
            return None
        if script_line and not _SCRIPT_WORD_RE.match(text):
            c.fail(path + (i,), f"{text!r}: keepalived splits script lines on white space "
                                "and quotes; an argument cannot hold them")
            return None
        for name in _PLACEHOLDER_RE.findall(text):
            if name not in placeholders:
                known = ", ".join("{" + p + "}" for p in placeholders)
                c.fail(path + (i,), f"{{{name}}} is not a placeholder haguard fills in"
                       + (f" (known: {known})" if placeholders else f" ({elsewhere})"))
                return None
        out.append(text)
    return tuple(out) if len(out) == len(items) and out else None
