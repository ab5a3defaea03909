"""ARCHITECTURE.md names only files, functions and classes the project has: a newcomer
following the MASTER path finds every one of them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
ROOMS = ("haguard/", "hooks/", "tests/", "bench/", "core/", "app/", "adapters/", "cli/", "lab/")


def _paths() -> set[str]:
    found = set(re.findall(r"`((?:[\w.-]+/)+[\w.-]+)`", DOC))
    found |= set(re.findall(r"`((?:[\w.-]+/)*[\w-]+\.(?:py|md|yaml|toml))`", DOC))
    return found


def _resolve(path: str) -> Path | None:
    for base in ("", "haguard/"):
        candidate = ROOT / base / path
        if candidate.exists():
            return candidate
    if "/" not in path:  # a module named in its room's row of the table
        return next((ROOT / "haguard").rglob(path), None)
    return None


def test_every_file_the_architecture_names_exists() -> None:
    missing = sorted(p for p in _paths() if p.startswith(ROOMS) or "." in p.rsplit("/", 1)[-1]
                     if _resolve(p) is None and not p.startswith("state_dir/"))
    assert missing == []


def test_every_function_it_names_is_in_the_file_it_names() -> None:
    missing = []
    for path, name in re.findall(r"`((?:[\w-]+/)+[\w]+\.py)` `(\w+)\(\)`", DOC):
        source = _resolve(path)
        assert source is not None, path
        if not re.search(rf"^\s*(def|class) {name}\b", source.read_text(encoding="utf-8"),
                         re.M):
            missing.append(f"{path}: {name}()")
    assert missing == []
