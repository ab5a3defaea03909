"""Reading config files and JSON-line logs, writing generated files."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from haguard.core.config import Config, loads
from haguard.errors import BadInput, ConfigError, OperationFailed


def read_jsonl(path: str | None) -> list[dict[str, Any]]:
    """Every JSON line of a file another process may be appending to; [] if it is missing."""
    if not path:
        return []
    out = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue  # a line being written right now
    except FileNotFoundError:
        pass
    return out


def load_config(path: str) -> Config:
    """Read and validate a node config; the Config remembers its absolute path."""
    return parse_config(read_config(path), path)


def read_config(path: str) -> bytes:
    """A config file's bytes (BadInput, in words, when it cannot be read)."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise BadInput(f"{path}: no such config file") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror}") from None


def parse_config(data: bytes, path: str) -> Config:
    """Validate the bytes read from ``path`` as a node config."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}:1: not UTF-8 text ({exc.reason})"]) from None
    return loads(text, filename=path, path=os.path.abspath(path))


def digest(path: str) -> str:
    """sha256 of the file's bytes: which version of a config a process has read."""
    with open(path, "rb") as fh:
        return digest_of(fh.read())


def digest_of(data: bytes) -> str:
    """sha256 of bytes already read (``digest``'s answer for the file they came from)."""
    return hashlib.sha256(data).hexdigest()


def same_file(a: str, b: str) -> bool:
    """Whether two paths name one file (by their absolute paths when one is missing)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def write_atomic(path: str, text: str, mode: int = 0o644) -> None:
    """Replace ``path`` with ``text`` in one rename, so readers never see half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise OperationFailed(f"writing {path} failed: {exc.strerror}") from exc
