"""Crash points for the reliability suite: ``HAGUARD_FAILPOINT=NAME`` kills the process
with SIGKILL when it reaches NAME, to prove that whatever runs next converges.

Names: ``before:<log event>`` before a transition step (``before:vip_added``,
``before:announced``, ``before:ipvs_reconciled``, ``before:state_recorded``, ...),
``ipvs:between_batches`` in the middle of an IPVS apply, and the agent's own
``agent:read`` (an event read from the FIFO, not yet applied) and ``agent:applied``
(applied, its journal entry not yet removed). ``NAME@STATE`` dies there only on the way
to STATE (``before:state_recorded@MASTER``): an agent's start-up re-assertion of the
recorded state runs the same steps, and must not be the one that dies when the point
is meant for the next transition. Unset, it costs one environment lookup.
"""

from __future__ import annotations

import os
import signal

VARIABLE = "HAGUARD_FAILPOINT"


def hit(name: str, state: str | None = None) -> None:
    """Die here, at once and without cleanup, when the environment names this point
    (``state``: the state the work at hand leads to, for ``NAME@STATE``)."""
    wanted = os.environ.get(VARIABLE)
    if wanted is not None and wanted in (name, f"{name}@{state}"):
        os.kill(os.getpid(), signal.SIGKILL)
