"""The run engine: executes a reviewed plan exactly, on a sunny day and on the day a region burns.

- ``start``: refusals and the lease, then a ``Run``; ``resume`` takes a run up again.
- ``run``: the loop (preflight, steps as soon as they may start, deadlines, interruptions).
- ``scheduler``: which steps may start now (pure). ``attempt``: one step's calls and retries.
- ``rollback``: compensation and its refusals. ``approvals``: who may let a step run.
- ``recorder``, ``lease``: the journal's writes and the lease behind them.
"""

from failover.engine.approvals import Approval, Approver
from failover.engine.checks import Readiness, live_reads, readiness
from failover.engine.interrupt import Interrupt
from failover.engine.options import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    Options,
    RunResult,
)
from failover.engine.reading import run_ids, run_state
from failover.engine.start import execute, resume

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_SIGINT",
    "EXIT_SIGTERM",
    "Approval",
    "Approver",
    "Interrupt",
    "Options",
    "Readiness",
    "RunResult",
    "execute",
    "live_reads",
    "readiness",
    "resume",
    "run_ids",
    "run_state",
]
