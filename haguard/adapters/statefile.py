"""The per-node state directory: locks, event order, recorded state per instance.

Files, per instance NAME: ``NAME.lock`` (held for a whole transition), ``NAME.order``
(the newest event key seen; updated under its own short lock) and ``NAME.json`` (the
recorded state, replaced atomically so a reader never sees half a file).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from haguard.adapters import process
from haguard.core.events import OrderKey
from haguard.core.metrics import Family
from haguard.errors import OperationFailed

T = TypeVar("T")


def frame_cache_path(state_dir: StateDir, instance: str, device: str | None = None) -> str:
    """Where the announcement frames of ``instance`` are cached (see adapters.announce):
    one file per device, so VIPs on two devices do not rebuild each other's frames."""
    name = f"{instance}.frames.json" if device is None else f"{instance}@{device}.frames.json"
    return os.path.join(state_dir.path, name)


class StateDir:
    def __init__(self, path: str) -> None:
        self.path = path

    def ensure(self) -> None:
        try:
            os.makedirs(self.path, mode=0o755, exist_ok=True)
        except OSError as exc:
            raise OperationFailed(f"state_dir {self.path}: cannot create: {exc.strerror}") from exc

    def _file(self, instance: str, suffix: str) -> str:
        return os.path.join(self.path, f"{instance}.{suffix}")

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[int]:
        fd = os.open(name, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # closing releases the flock

    def transition_lock(self, instance: str) -> contextlib.AbstractContextManager[int]:
        """Exclusive lock serialising the transitions of one instance."""
        return self._locked(self._file(instance, "lock"))

    def register(self, instance: str, key: OrderKey) -> OrderKey:
        """Record that an event with ``key`` arrived; return the newest key seen."""
        with self._locked(self._file(instance, "order")) as fd:
            newest = _pending(_read_key(fd))
            if newest is None or key > newest:
                data = json.dumps(key.as_list()).encode()
                os.lseek(fd, 0, os.SEEK_SET)
                os.ftruncate(fd, 0)
                os.write(fd, data)
                newest = key
            return newest

    def newest(self, instance: str) -> OrderKey | None:
        """The newest event registered whose process may still apply it."""
        try:
            fd = os.open(self._file(instance, "order"), os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            return _pending(_read_key(fd))
        finally:
            os.close(fd)

    def read_state(self, instance: str) -> dict[str, Any] | None:
        """The recorded state, or None if never recorded (or unreadable)."""
        try:
            with open(self._file(instance, "json"), encoding="utf-8") as fh:
                data = json.load(fh)
        except (FileNotFoundError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write_state(self, instance: str, record: dict[str, Any]) -> None:
        final = self._file(instance, "json")
        tmp = f"{final}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(record, fh, indent=1, sort_keys=True)
                fh.write("\n")
            os.replace(tmp, final)
        except OSError as exc:
            raise OperationFailed(f"recording state in {final} failed: {exc.strerror}") from exc

    def write_health(self, snapshot: dict[str, Any]) -> None:
        """The agent's view of every watched real server (`haguard status` reads it)."""
        from haguard.adapters.files import write_atomic

        # One line: json's C encoder (an indent takes the pure-Python one, and with ten
        # thousand real servers that cost the agent's loop seconds per snapshot). One
        # service at a time: a worker thread writes it, and one call encoding every
        # service would hold the interpreter from the agent's loop all along.
        services = snapshot.get("services", [])
        head = json.dumps({k: v for k, v in snapshot.items() if k != "services"},
                          sort_keys=True)
        body = ", ".join(json.dumps(s, sort_keys=True) for s in services)
        write_atomic(os.path.join(self.path, "health.json"),
                     f'{head[:-1]}{", " if len(head) > 2 else ""}"services": [{body}]}}\n')

    def read_health(self) -> dict[str, Any] | None:
        """The last snapshot the agent wrote, or None."""
        try:
            with open(os.path.join(self.path, "health.json"), encoding="utf-8") as fh:
                data = json.load(fh)
        except (FileNotFoundError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def await_health(self, answer: Callable[[dict[str, Any]], T | None], wait_s: float,
                     poll_s: float = 0.1) -> T | None:
        """Read the agent's snapshot every ``poll_s`` until ``answer`` makes something of
        it (an absent snapshot reads as {}); None once ``wait_s`` has passed without."""
        deadline = time.monotonic() + wait_s
        while True:
            said = answer(self.read_health() or {})
            if said is not None:
                return said
            if time.monotonic() >= deadline:
                return None
            time.sleep(poll_s)

    def record_drill(self, node: str, instances: list[str], report: dict[str, Any]) -> None:
        """Keep the last drill's outage for the metrics textfile, and rewrite it."""
        path = os.path.join(self.path, "drill.json")
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump({"at": time.time(), "outage_ms": report.get("outage_ms"),
                           "tcp_outage_ms": report.get("tcp_outage_ms")}, fh)
            os.replace(tmp, path)
            self.write_metrics(node, instances)
        except OSError:
            pass  # the drill's report stands without the textfile

    def write_metrics(self, node: str, instances: list[str],
                      health: dict[str, Any] | None = None) -> None:
        """Rewrite metrics.prom (Prometheus textfile) from the records, the last drill and
        the real servers' health (``health``: the snapshot just written, else the file)."""
        from haguard.core.metrics import text

        final = os.path.join(self.path, "metrics.prom")
        tmp = f"{final}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text(self.metric_families(node, instances, health)))
        os.replace(tmp, final)

    def metric_families(self, node: str, instances: list[str],
                        health: dict[str, Any] | None = None) -> list[Family]:
        """The textfile's families, from the records and the last drill on disk and the
        real servers' health (``health``, else the file)."""
        from haguard.core.metrics import families

        drill = None
        try:
            with open(os.path.join(self.path, "drill.json"), encoding="utf-8") as fh:
                drill = json.load(fh)
        except (FileNotFoundError, ValueError):
            pass
        records = [r for r in (self.read_state(name) for name in instances) if r]
        return families(node, records, drill,
                        health if health is not None else self.read_health())


def _pending(key: OrderKey | None) -> OrderKey | None:
    """``key`` while the process that registered it lives, else None.

    A registered event holds back older ones only while it may still be applied. An agent
    killed between reading an event and applying it leaves its key behind; the same event
    then comes back as the hook's journal entry or fallback, forked earlier in clock ticks
    than the dead agent read it, and must not be taken for an older one. A pid reused
    since has a later start than the key.
    """
    if key is None:
        return None
    started = process.start_ticks(key.pid)
    return key if started is not None and started <= key.start_ticks \
        and process.alive(key.pid) else None


def _read_key(fd: int) -> OrderKey | None:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 256)
    try:
        return OrderKey.from_list(json.loads(raw)) if raw else None
    except ValueError:
        return None
