"""How commands print: text for people, --json for programs; and the config they load."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from haguard.core.config import Config


def load(path: str) -> Config:
    """The validated config at ``path`` (ConfigError lists every problem in it)."""
    from haguard.adapters.files import load_config

    return load_config(path)


def emit(data: Any, as_json: bool, text: Callable[[Any], str]) -> None:
    """Print ``data`` as indented JSON, or as ``text(data)`` for a person."""
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        print(text(data))
