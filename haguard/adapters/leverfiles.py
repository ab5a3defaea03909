"""The levers' files in ``lever_dir``: keepalived's track files (what it obeys), the
levers in force with their expiry (``levers.json``) and the audit log (``audit.log``)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from typing import Any, TypeVar

from haguard.core.leverrules import Lever, RsLever
from haguard.errors import OperationFailed

T = TypeVar("T")


def ensure_dir(lever_dir: str) -> str:
    """Create lever_dir/track (0755); the path. keepalived drops track files without it."""
    path = os.path.join(lever_dir, "track")
    try:
        os.makedirs(path, mode=0o755, exist_ok=True)
    except OSError as exc:
        raise OperationFailed(f"cannot create {path}: {exc.strerror}") from exc
    return path


def _levers_path(lever_dir: str) -> str:
    return os.path.join(lever_dir, "levers.json")


def _rs_path(lever_dir: str) -> str:
    return os.path.join(lever_dir, "realservers.json")


def _read(path: str, kind: type[T]) -> list[T]:
    """The records in ``path`` (none when the file is missing or unreadable)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return [kind(**item) for item in json.load(fh)]
    except (FileNotFoundError, ValueError, TypeError):
        return []


def _write(path: str, records: Sequence[Any]) -> None:
    """Replace the records in ``path``, atomically."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump([dataclasses.asdict(r) for r in records], fh, indent=1)
    os.replace(tmp, path)


def read_levers(lever_dir: str) -> list[Lever]:
    """The instances' levers in force."""
    return _read(_levers_path(lever_dir), Lever)


def write_levers(lever_dir: str, levers: list[Lever]) -> None:
    _write(_levers_path(lever_dir), levers)


def read_rs_levers(lever_dir: str) -> list[RsLever]:
    """The real-server levers in force."""
    return _read(_rs_path(lever_dir), RsLever)


def write_rs_levers(lever_dir: str, levers: list[RsLever]) -> None:
    _write(_rs_path(lever_dir), levers)


def rs_levers_changed_at(lever_dir: str) -> float | None:
    """When the real-server levers last changed (None: there are none)."""
    try:
        return os.stat(_rs_path(lever_dir)).st_mtime
    except OSError:
        return None


def write_track(path: str, value: int) -> None:
    """Set a keepalived track file to ``value``."""
    # Rewritten in place: keepalived watches the file and rereads it on close.
    with open(path, "w", encoding="ascii") as fh:
        fh.write(f"{value}\n")


def clear_track(path: str) -> None:
    """Set a track file to 0 where its directory exists (without it there is no lever)."""
    if os.path.exists(os.path.dirname(path)):
        write_track(path, 0)


def read_track(path: str) -> int:
    """A track file's value as keepalived reads it (0 when missing or not a number)."""
    try:
        with open(path, encoding="ascii") as fh:
            return int(fh.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def append_audit(lever_dir: str, entry: dict[str, Any]) -> None:
    """One JSON line in lever_dir/audit.log."""
    os.makedirs(lever_dir, mode=0o755, exist_ok=True)
    with open(os.path.join(lever_dir, "audit.log"), "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, sort_keys=True) + "\n")
