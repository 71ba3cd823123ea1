"""What a run is, from what its journal recorded: events, and the run and step state machines
that replay them. Pure: no I/O, no clock.

Replay enforces the machines drawn in docs/concepts.md: an event that does not fit the state it
arrives in (a step that succeeds before it started, an event after the run finished without a
resume) is an error, never a silent overwrite.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from failover.errors import JournalError


@dataclass(frozen=True, slots=True)
class Event:
    """One journal record. (``data`` is as written; read back from the journal it is the JSON
    form of it.)"""

    seq: int
    run_id: str
    at: float
    kind: str
    step: str | None
    data: Mapping[str, object]
    hash: str = ""  # its link in the run's hash chain (state/chain.py)


# Step events: from which states each may come, and the state it leaves the step in (None: the
# same state).
STEP_MACHINE: Mapping[str, tuple[frozenset[str], str | None]] = {
    "approval_requested": (frozenset({"pending", "awaiting_approval"}), "awaiting_approval"),
    "approval_granted": (frozenset({"awaiting_approval"}), "pending"),
    "approval_denied": (frozenset({"awaiting_approval"}), "pending"),
    "step_skipped": (frozenset({"pending"}), "skipped"),
    "step_started": (frozenset({"pending", "failed"}), "started"),
    "apply_started": (frozenset({"started", "applying"}), "applying"),
    "attempt_failed": (frozenset({"applying"}), None),
    "step_succeeded": (frozenset({"started", "applying"}), "succeeded"),
    "step_failed": (frozenset({"started", "applying"}), "failed"),
    "compensation_started": (
        frozenset({"succeeded", "started", "applying", "failed", "compensating"}),
        "compensating",
    ),
    "compensation_failed": (frozenset({"succeeded", "started", "applying", "failed", "compensating"}), None),
    "step_compensated": (frozenset({"compensating"}), "compensated"),
}
RUN_EVENTS = frozenset(
    {
        "run_started",
        "run_resumed",
        "check_passed",
        "check_failed",
        "check_skipped",
        "preflight_passed",
        "rollback_started",
        "stop_condition",
        "run_halted",
        "run_interrupted",
        "run_finished",
    }
)
RESUMABLE = frozenset({"halted", "interrupted", "stopped"})
"""Statuses of a finished run that ``resume`` and ``rollback`` take up again."""


@dataclass
class StepRecord:
    """What the journal says of one step, replayed."""

    state: str = "pending"
    before: object = None  # the snapshot read before the change (rollback puts it back)
    has_snapshot: bool = False  # apply_started was journaled: from then on the change may have happened
    attempts: int = 0  # failed so far; once the step ends, every attempt it took
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    best_effort: bool = False
    in_doubt: bool = False  # given up on while its change may have been under way
    approved_by: str | None = None
    compensated_at: float | None = None
    waiting_on: str | None = None  # while it runs: what it waits for
    since: float | None = None  # when it began waiting on that


@dataclass
class CheckRecord:
    """A preflight check's outcome, replayed."""

    ok: bool
    observed: object = None
    message: str = ""
    skipped: bool = False
    reason: str | None = None
    best_effort: bool = False
    at: float = 0.0


def _count(value: object, default: int) -> int:
    return value if isinstance(value, int) else default


@dataclass
class RunState:
    """A run as its events tell it. Nothing else about a run is stored."""

    run_id: str
    status: str = "running"  # running, succeeded, rolled_back, halted, refused, interrupted, stopped
    exit_code: int | None = None
    message: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    options: dict[str, object] | None = None
    sandbox: str | None = None  # the embedded clouds it ran against, if it was a sandbox drill
    preflight_done: bool = False
    rollback_started: bool = False
    undo: bool = False  # the rollback undoes a run that had succeeded
    interrupted: str | None = None  # the signal or request that interrupted it last
    stopped_by: dict[str, object] | None = None  # the stop condition that went bad: check, observed
    best_effort_failures: list[str] = field(default_factory=list)
    steps: dict[str, StepRecord] = field(default_factory=dict)
    checks: dict[str, CheckRecord] = field(default_factory=dict)
    approvals: list[dict[str, object]] = field(default_factory=list)
    _begun: bool = False

    @property
    def finished(self) -> bool:
        return self.exit_code is not None

    def step(self, step_id: str) -> StepRecord:
        return self.steps.setdefault(step_id, StepRecord())

    @classmethod
    def replay(cls, run_id: str, events: list[Event]) -> RunState:
        """The run's state after ``events``; JournalError when one does not fit."""
        state = cls(run_id=run_id)
        for event in events:
            state.apply(event)
        return state

    def apply(self, e: Event) -> None:
        """Take one event into the state, or raise JournalError when it does not fit."""
        if e.kind == "run_started" and self._begun:
            self._misfit(e, "the run had started already")
        if e.kind != "run_started" and not self._begun:
            self._misfit(e, "the run has not started")
        if self.finished and e.kind not in ("run_resumed",):
            self._misfit(e, f"the run had finished ({self.status}) and was not resumed")
        if e.kind in RUN_EVENTS:
            self._run_event(e)
        elif e.step is not None and e.kind in STEP_MACHINE:
            self._step_event(e)
        else:
            self._misfit(e, "not an event of a run or of a step")

    def _misfit(self, e: Event, why: str) -> None:
        what = f"{e.kind} of step {e.step}" if e.step else e.kind
        raise JournalError(f"run {self.run_id}: event #{e.seq} ({what}) does not fit: {why}")

    def _run_event(self, e: Event) -> None:
        d, kind = e.data, e.kind
        if kind == "run_started":
            self._begun = True
            self.started_at = e.at
            self.options = dict(d)
            self.sandbox = str(d["sandbox"]) if d.get("sandbox") else None
        elif kind in ("check_passed", "check_failed", "check_skipped"):
            if self.preflight_done:
                self._misfit(e, "preflight had passed already")
            self.checks[str(d.get("check"))] = CheckRecord(
                ok=kind != "check_failed",
                observed=d.get("observed"),
                message=str(d.get("message", "")),
                skipped=kind == "check_skipped",
                reason=str(d.get("reason")) if kind == "check_skipped" else None,
                best_effort=bool(d.get("best_effort")),
                at=e.at,
            )
        elif kind == "preflight_passed":
            self.preflight_done = True
        elif kind == "run_resumed":  # running again, whatever it ended as before
            self.status, self.exit_code, self.message, self.finished_at = "running", None, "", None
        elif kind == "rollback_started":
            self.rollback_started = True
            self.undo = bool(d.get("undo"))
        elif kind == "stop_condition":
            self.stopped_by = {"at": e.at, **d}
        elif kind == "run_interrupted":
            self.interrupted = str(d.get("signal"))
        elif kind == "run_finished":
            self.status = str(d.get("status"))
            self.exit_code = _count(d.get("exit_code"), 1)
            self.message = str(d.get("message", ""))
            self.finished_at = e.at
            failures = d.get("best_effort_failures")
            self.best_effort_failures = [str(f) for f in failures] if isinstance(failures, list) else []

    def _step_event(self, e: Event) -> None:
        assert e.step is not None
        rec = self.step(e.step)
        d, kind = e.data, e.kind
        allowed, then = STEP_MACHINE[kind]
        if kind == "step_started" and "before" in d:  # journals before apply_started existed
            rec.has_snapshot, rec.before = True, d.get("before")
            then = "applying"
        if rec.state not in allowed:
            self._misfit(e, f"step {e.step} is {rec.state}")
        if then is not None:
            rec.state = then
        rec.since = e.at
        if kind in ("approval_granted", "approval_denied"):
            self.approvals.append({"step": e.step, "granted": kind == "approval_granted", "at": e.at, **d})
            if kind == "approval_granted":
                rec.approved_by = str(d.get("by"))
        elif kind == "approval_requested":
            rec.waiting_on = "approval"
        elif kind == "step_started":
            rec.started_at = rec.started_at or e.at
            rec.error, rec.finished_at, rec.in_doubt = None, None, False
            rec.waiting_on = str(d.get("waiting_on") or "read")
        elif kind == "apply_started":
            rec.has_snapshot, rec.before = True, d.get("before")
            rec.waiting_on = f"apply, attempt {rec.attempts + 1}"
        elif kind == "attempt_failed":
            rec.attempts += 1
            rec.error = str(d.get("error"))
            rec.waiting_on = f"apply, attempt {rec.attempts + 1} (after {rec.error})"
        elif kind in ("step_succeeded", "step_failed"):
            rec.attempts = _count(d.get("attempts"), rec.attempts + 1)
            rec.finished_at = e.at
            rec.started_at = rec.started_at or e.at
            rec.waiting_on = None
            rec.in_doubt = bool(d.get("in_doubt"))
            if kind == "step_failed":
                rec.error = str(d.get("error"))
                rec.best_effort = bool(d.get("best_effort"))
        elif kind == "step_skipped":
            rec.finished_at = e.at
            rec.waiting_on = None
        elif kind == "compensation_started":
            rec.waiting_on = "compensation"
        elif kind == "compensation_failed":
            rec.error = str(d.get("error"))
        elif kind == "step_compensated":
            rec.compensated_at = e.at
            rec.waiting_on = None
