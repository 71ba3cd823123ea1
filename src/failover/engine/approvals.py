"""Approvals: who may let a pivot or an ``approval: true`` step run, and how long they may take.

Flags (``--auto-approve``, ``--approve STEP``) answer at once. An approver (a callback of the
library's caller, or the terminal's prompt queue) is asked in a thread of its own and waited for
until the step's approval timeout; no answer in time, or an interruption, is a denial. An approver
that can take back a question (:class:`Withdrawable`: a prompt on screen) is told when the run
stops waiting for its answer.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, cast, runtime_checkable

from failover.plan import PlannedStep

TICK_S = 0.1
LOGIN_HINT = "login name of the host's user: a hint, not verified (see clouds for who acted)"


@dataclass(frozen=True, slots=True)
class Approval:
    """An answer to an approval request: granted or not, by whom, and why."""

    granted: bool
    by: str
    reason: str = ""


Approver = Callable[[PlannedStep, float], Approval]
"""Asked for an approval of a step, with the seconds it may take to answer."""


@runtime_checkable
class Withdrawable(Protocol):
    """An approver that can take back a question the run no longer waits for."""

    def withdraw(self, step: PlannedStep, reason: str) -> None:
        """The run stopped waiting for an answer about ``step``, for ``reason``."""


def signers(signatures: Iterable[Mapping[str, object]]) -> str | None:
    """Who signed, as an approval records it: each signer's principals and key fingerprint."""
    names = [
        f"{','.join(map(str, cast(list[object], s.get('principals') or [])))} ({s.get('fingerprint')})"
        for s in signatures
    ]
    return f"signed by {'; '.join(names)}" if names else None


def decide(
    step: PlannedStep,
    who: str,
    *,
    auto: bool,
    approved: frozenset[str],
    approver: Approver | None,
    interrupted: Callable[[], str | None],
    signed_by: str | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> Approval:
    """The answer to a step's approval request: from the plan's verified signers when the run's
    policy lets them approve (``signed_by``), from the flags, else from the approver within the
    step's approval timeout; ``interrupted()`` names a signal that ends the wait (a denial)."""
    if signed_by:
        return Approval(True, signed_by, "--signers-approve: the plan's verified signers")
    if auto:
        return Approval(True, who, "--auto-approve")
    if step.id in approved:
        return Approval(True, who, "--approve")
    if approver is None:
        return Approval(False, who, "no approval given (use --approve STEP or --auto-approve)")
    answers: list[Approval] = []
    answered = threading.Event()

    def ask() -> None:
        try:
            answers.append(approver(step, step.approval_timeout_s))
        except Exception as exc:  # an approver that breaks has not approved
            answers.append(Approval(False, who, f"the approver failed: {type(exc).__name__}: {exc}"))
        finally:
            answered.set()

    threading.Thread(target=ask, name=f"failover-approval-{step.id}", daemon=True).start()
    until = time.monotonic() + step.approval_timeout_s
    while not answered.is_set():
        left = until - time.monotonic()
        signal = interrupted()
        if signal is not None:
            return _gave_up(approver, step, Approval(False, who, f"interrupted by {signal}"))
        if stopping():
            why = "called off: the run is stopping (another step failed or was denied)"
            return _gave_up(approver, step, Approval(False, who, why))
        if left <= 0:
            why = f"no answer within {step.approval_timeout_s:g}s"
            return _gave_up(approver, step, Approval(False, "timeout", why))
        answered.wait(min(left, TICK_S))
    return answers[0]


def _gave_up(approver: Approver, step: PlannedStep, answer: Approval) -> Approval:
    """The run's answer without the approver's: a question still on its screen is taken back."""
    if isinstance(approver, Withdrawable):
        with contextlib.suppress(Exception):  # one that breaks has not approved: nothing changes
            approver.withdraw(step, answer.reason)
    return answer
