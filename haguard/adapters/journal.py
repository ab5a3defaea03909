"""The hooks' journal, ``state_dir/journal/TICKS.PID``: events a hook handed to the agent.

A hook that finds the agent's lock held writes its event here as well as leaving it to
the FIFO, so an agent that restarts between keepalived's write and its own read still
learns of it. The name is the hook's place in line (when keepalived forked it).
"""

from __future__ import annotations

import os

from haguard.core.events import Event, OrderKey
from haguard.core.fifo import parse_journal_entry, parse_journal_name


class Journal:
    """The journal directory of one node."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _names(self) -> list[str]:
        try:
            return os.listdir(self.path)
        except FileNotFoundError:
            return []

    def entries(self) -> list[tuple[OrderKey, Event]]:
        """Every readable entry, oldest first."""
        entries = []
        for name in self._names():
            key = parse_journal_name(name)
            if key is None:
                continue
            try:
                with open(os.path.join(self.path, name), encoding="utf-8") as fh:
                    event = parse_journal_entry(fh.read())
            except OSError:
                continue
            if event is not None:
                entries.append((key, event))
        return sorted(entries, key=lambda pair: pair[0])

    def remove(self, key: OrderKey) -> None:
        """Drop the entry of the hook ``key`` (gone already is fine)."""
        try:
            os.unlink(os.path.join(self.path, f"{key.start_ticks}.{key.pid}"))
        except FileNotFoundError:
            pass

    def forget(self, upto: OrderKey) -> None:
        """Drop the entries of hooks forked no later than ``upto`` (in clock ticks)."""
        for name in self._names():
            key = parse_journal_name(name)
            if key is not None and key.start_ticks <= upto.start_ticks:
                try:
                    os.unlink(os.path.join(self.path, name))
                except FileNotFoundError:
                    pass
