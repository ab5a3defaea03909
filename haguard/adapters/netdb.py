"""The system's service-name table (/etc/services), as getservbyname(3) reads it."""

from __future__ import annotations

SERVICES = "/etc/services"


def service_ports(path: str = SERVICES) -> dict[tuple[str, str], int]:
    """(name or alias, protocol) -> port; empty when the file is missing."""
    out: dict[tuple[str, str], int] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return out
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) < 2 or "/" not in words[1]:
            continue
        port, _, protocol = words[1].partition("/")
        if not port.isdigit():
            continue
        for name in (words[0], *words[2:]):
            out.setdefault((name, protocol), int(port))   # the first entry wins, as in libc
    return out
