"""Reading a keepalived.conf from disk with its ``include`` files, as keepalived does."""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Iterator, Mapping

from haguard.core.kaconf import KeepalivedConfError, Line, Stmt, lines, parse

MAX_INCLUDE_DEPTH = 8   # keepalived's own limit is deeper; past this it is a loop
# keepalived runs under systemd, whose default PATH for services is this one; keepalived
# searches it for a command written without a directory.
SERVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def read_keepalived_conf(path: str) -> tuple[Stmt, ...]:
    """The statement tree of ``path``, every ``include`` expanded in place."""
    return parse(_expanded(path, (), None))


def _expanded(path: str, chain: tuple[str, ...], where: str | None) -> list[Line]:
    real = os.path.realpath(path)
    if real in chain:
        raise KeepalivedConfError(f"{where}: include {path}: includes itself (through "
                                  f"{' -> '.join(chain)})")
    if len(chain) >= MAX_INCLUDE_DEPTH:
        raise KeepalivedConfError(f"{where}: include {path}: nested more than "
                                  f"{MAX_INCLUDE_DEPTH} deep")
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError as exc:
        prefix = f"{where}: include " if where else ""
        raise KeepalivedConfError(f"{prefix}{path}: cannot read: {exc.strerror}") from None
    out: list[Line] = []
    for line in lines(text, path):
        if line.words[0] != "include":
            out.append(line)
            continue
        if len(line.words) != 2:
            raise KeepalivedConfError(f"{line.where}: include takes one path or pattern")
        pattern = line.words[1]
        # keepalived: a relative pattern is relative to the including file's directory.
        if not os.path.isabs(pattern):
            pattern = os.path.join(os.path.dirname(os.path.abspath(path)), pattern)
        matches = sorted(glob.glob(pattern))
        if not matches:
            # keepalived goes on without it; the include stays for migrate to report.
            out.append(line)
        for match in matches:
            out.extend(_expanded(match, chain + (real,), line.where))
    return out


class ProgramPaths(Mapping[str, str]):
    """Where keepalived's PATH search finds a bare command name on this machine."""

    def __init__(self, search: str = SERVICE_PATH) -> None:
        self._search = search

    def __getitem__(self, name: str) -> str:
        found = shutil.which(name, path=self._search)
        if found is None:
            raise KeyError(name)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(())   # looked up by name only; the PATH is not listed

    def __len__(self) -> int:
        return 0
