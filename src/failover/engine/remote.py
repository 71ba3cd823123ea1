"""Approvals out of band: a run waits for ``failover approve RUN STEP`` (or ``deny``) typed on
another terminal or machine, through the state store both see.

The answer is a named record (``approval/RUN/STEP``), written once: the first answer stands.
It says who answered as the clouds know them (the caller identity of their credentials) beside
their login name, which is only a hint. With the two-person rule, the person or job that started
the run cannot answer its approvals: same cloud identity, or (where no cloud says) same login.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from failover.engine.approvals import LOGIN_HINT, Approval
from failover.errors import RefusedError
from failover.plan import PlannedStep
from failover.state.events import Event
from failover.state.store import StateStore

POLL_S = 1.0


def record_name(run_id: str, step: str, request: int) -> str:
    """The answer to one approval request (the journal's sequence number of its
    ``approval_requested``): an answer never carries over to the step's next request."""
    return f"approval/{run_id}/{step}/{request}"


def latest_request(events: Iterable[Event], step: str) -> int:
    """The sequence number of the step's latest approval request in a run's events (0 if none)."""
    return max((e.seq for e in events if e.kind == "approval_requested" and e.step == step), default=0)


def started_by(events: Iterable[Event]) -> Mapping[str, object]:
    """Who started the run, as its journal says (login name and cloud identities)."""
    first = next((e for e in events if e.kind == "run_started"), None)
    return first.data if first is not None else {}


def describe(identity: Mapping[str, object]) -> str:
    """``by`` with its cloud identities, as an answer names who gave it."""
    clouds = identity.get("clouds") or {}
    seen = ", ".join(f"{c} {v}" for c, v in sorted(clouds.items())) if isinstance(clouds, Mapping) else ""
    return f"{identity.get('by')}" + (f" ({seen})" if seen else "")


def same_person(first: Mapping[str, object], second: Mapping[str, object]) -> str | None:
    """Why two identities (``by`` and ``clouds``, as journaled) may be the same person, or None
    when they are shown to differ. A cloud identity the first has and the second cannot show
    counts as the same (an approver who cannot say who they are is not another person); with no
    cloud identity on either side, the login names decide (a weaker test, as they are hints)."""
    ours, theirs = _known(first.get("clouds")), _known(second.get("clouds"))
    for cloud, identity in ours.items():
        if cloud not in theirs:
            return f"the answer shows no {cloud} identity to compare with {identity}"
        if theirs[cloud] == identity:
            return f"both act as {identity} in {cloud}"
    if ours:
        return None
    if first.get("by") == second.get("by"):
        return f"both are {first.get('by')} (no cloud identity to tell them apart)"
    return None


def _known(clouds: object) -> dict[str, str]:
    if not isinstance(clouds, Mapping):
        return {}
    return {str(c): str(v) for c, v in clouds.items() if v and not str(v).startswith("unknown")}


@dataclass
class StoreApprover:
    """An approver that waits for an answer in the state store; ``say`` tells the operator (a
    pipeline's log) the exact command to type."""

    store: StateStore
    run_id: str
    state: str  # the --state that reaches the store, for the command it prints
    two_person: bool = False
    say: Callable[[str], None] = print
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    withdrawn: dict[str, str] = field(default_factory=dict, init=False, repr=False)  # step id: why

    def withdraw(self, step: PlannedStep, reason: str) -> None:
        """The run no longer waits for an answer about ``step``: say so, and stop looking."""
        self.withdrawn[step.id] = reason
        self.say(f"no longer waiting for approval of {step.id}: {reason}")

    def __call__(self, step: PlannedStep, timeout: float) -> Approval:
        where = f" --state {self.state}"
        self.say(
            f"waiting for approval of {step.id} ({'pivot, ' if step.pivot else ''}{step.description}): "
            f"failover approve {self.run_id} {step.id}{where} --reason TEXT "
            f"(or failover deny {self.run_id} {step.id}{where})"
        )
        until = self.clock() + timeout
        while self.clock() < until:
            if step.id in self.withdrawn:
                return Approval(False, "withdrawn", self.withdrawn.pop(step.id))  # the run has its answer
            events = self.store.events(self.run_id)
            since = max((e.seq for e in events if e.kind in ("run_started", "run_resumed")), default=0)
            request = latest_request(events, step.id)
            # this process's request, once the journal has it: never an answer to an earlier one
            found = (
                self.store.get_record(record_name(self.run_id, step.id, request)) if request > since else None
            )
            if found is not None:
                value = found.value
                why = same_person(started_by(events), value) if self.two_person else None
                if why is not None:
                    return Approval(False, str(value.get("by")), f"two-person rule: {why}")
                return Approval(bool(value.get("granted")), describe(value), str(value.get("reason") or ""))
            self.sleep(POLL_S)
        return Approval(False, "timeout", f"no answer within {timeout:g}s")


def answer(
    store: StateStore,
    run_id: str,
    step: str,
    request: int,
    *,
    granted: bool,
    by: str,
    clouds: Mapping[str, str],
    reason: str,
    starter: Mapping[str, object],
    two_person: bool,
) -> None:
    """Record an answer to a step's approval request; RefusedError when the step is not
    waiting for one, it was answered already, or the two-person rule forbids this answerer."""
    mine = {"by": by, "clouds": dict(clouds)}
    if two_person:
        why = same_person(starter, mine)
        if why is not None:
            raise RefusedError(
                f"run {run_id} has the two-person rule: whoever started it cannot answer its "
                f"approvals ({why})"
            )
    value = {
        "granted": granted,
        "by": by,
        "by_is": LOGIN_HINT,
        "clouds": dict(clouds),
        "reason": reason,
        "at": time.time(),
    }
    name = record_name(run_id, step, request)
    try:
        store.put_record(name, value)
    except RefusedError:
        seen = store.get_record(name)
        said = "approved" if seen is not None and seen.value.get("granted") else "denied"
        who = seen.value.get("by") if seen is not None else "someone"
        raise RefusedError(
            f"{step} of run {run_id} was {said} already, by {who}: the first answer stands"
        ) from None
