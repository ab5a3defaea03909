"""Crash points for the reliability suite: ``HAGUARD_FAILPOINT=NAME`` kills the process
with SIGKILL when it reaches NAME, to prove that whatever runs next converges.

Names: ``before:<log event>`` before a transition step (``before:vip_added``,
``before:announced``, ``before:ipvs_reconciled``, ``before:state_recorded``, ...),
``ipvs:between_batches`` in the middle of an IPVS apply, and the agent's own
``agent:read`` (an event read from the FIFO, not yet applied) and ``agent:applied``
(applied, its journal entry not yet removed). Unset, it costs one environment lookup.
"""

from __future__ import annotations

import os
import signal

VARIABLE = "HAGUARD_FAILPOINT"


def hit(name: str) -> None:
    """Die here, at once and without cleanup, when the environment names this point."""
    if os.environ.get(VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
