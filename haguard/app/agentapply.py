"""`ipvs apply` while an agent runs: the agent is the table's one writer, so the command
asks it to re-read the config (SIGHUP) and waits until it says how that went.

Writing the kernel here as well, from the agent's last published view, could undo a
change the agent made since it published (a real server it has just found dead, put back
at its weight), and the agent, believing the kernel holds its table, would not correct it.
"""

from __future__ import annotations

from typing import Any

from haguard.adapters import files, locks, process
from haguard.adapters.statefile import StateDir
from haguard.core.config import Config
from haguard.errors import BadInput, OperationFailed

AGENT_WAIT_S = 30.0
POLL_S = 0.1


def agent_pid(config: Config) -> int | None:
    """The running agent's pid, when one holds this config's agent lock."""
    if config.agent is None:
        return None
    return locks.holder(config.agent_lock)


def apply(config: Config, pid: int, wait_s: float = AGENT_WAIT_S) -> list[str]:
    """Have the agent (``pid``) apply ``config``'s file; the changes it made."""
    state_dir = StateDir(config.node.state_dir)
    running = _config_of(state_dir.read_health() or {})
    if running and running.get("path") and not files.same_file(running["path"], config.path):
        raise BadInput(f"the running agent (pid {pid}) reads {running['path']}, not "
                       f"{config.path}: while it runs it owns the IPVS table, so apply "
                       f"with -c {running['path']} (or edit that file)")
    try:
        digest = files.digest(config.path)
    except OSError as exc:
        raise BadInput(f"{config.path}: {exc.strerror}") from exc
    before = (running or {}).get("reload") or {}
    try:
        process.ask_to_reload(pid)
    except OSError as exc:
        raise OperationFailed(f"cannot signal the agent (pid {pid}): {exc.strerror}") from exc

    def settled(health: dict[str, Any]) -> dict[str, Any] | None:
        loaded = _config_of(health) or {}
        outcome = loaded.get("reload") or {}
        return outcome if loaded.get("digest") == digest and outcome and outcome != before \
            else None
    outcome = state_dir.await_health(settled, wait_s, POLL_S)
    if outcome is None:
        raise OperationFailed(
            f"the agent (pid {pid}) was asked to re-read {config.path} but has not said "
            f"it applied it within {wait_s:g} s (its log says why); nothing was written "
            "by this command")
    if not outcome.get("ok"):
        raise OperationFailed(f"the agent (pid {pid}) did not apply {config.path}: "
                              f"{outcome.get('error')}")
    changes = [str(c) for c in outcome.get("changes") or []]
    return changes or ["the agent applied it: nothing to change"]


def _config_of(health: dict[str, Any]) -> dict[str, Any] | None:
    loaded = health.get("config")
    return loaded if isinstance(loaded, dict) else None
