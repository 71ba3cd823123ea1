"""What a terminal shows of a run, from the events it is told: each step's state and times, the
preflight checks' answers, the run's phase. Pure: no I/O, and the clock is the caller's.

Times are the journal's own (each event's ``at``), never when an event reached the screen: events
that no side effect waits for (a step's start and end, a check's answer) are committed in batches,
and reach the screen with their batch, so the moment they arrive says nothing of when they
happened. Batches are committed by different threads, so an event may also arrive after a later
one of the same step: a step's state follows its latest event, by journal sequence.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from failover.plan import Plan
from failover.redact import redact
from failover.state.events import Event

STATE_OF = {
    "approval_requested": "waiting approval",
    "approval_granted": "pending",
    "approval_denied": "denied",
    "step_started": "running",
    "apply_started": "running",
    "step_succeeded": "succeeded",
    "step_skipped": "skipped",
    "step_failed": "failed",
    "compensation_started": "compensating",
    "step_compensated": "compensated",
}
ENDING = frozenset({"step_succeeded", "step_failed", "step_skipped"})
ACTIVE = frozenset({"waiting approval", "running", "failed", "denied", "compensating"})
"""States worth a row whatever else there is to show."""
CHECK_EVENTS = frozenset({"check_passed", "check_failed", "check_skipped"})
OBSERVED_WIDTH = 60  # characters of a check's observed value shown on its line


@dataclass
class StepView:
    """One step as the screen knows it."""

    state: str = "pending"
    started_at: float | None = None  # journaled: its first step_started in this run
    finished_at: float | None = None  # journaled: the event that ended it
    seq: int = 0  # the journal sequence of the latest event that set its state


@dataclass(frozen=True)
class Row:
    """A line of the steps' table."""

    step: str
    state: str
    elapsed: float | None  # seconds, from the journal's times; None before it started
    estimate: float


class RunView:
    """A run told event by event (``apply``), asked what to show at a given wall-clock time."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.steps = {s.id: StepView() for s in plan.steps}
        self.sites = {c.id: c.site for c in plan.preflight}
        self.checks: Counter[str] = Counter()  # check events seen, by kind
        self.phase = "preflight checks" if plan.preflight else "starting"
        self.began: float | None = None  # the journaled start of this process's part of the run
        self.ended: float | None = None

    def apply(self, event: Event) -> str | None:
        """Take ``event`` in; for a preflight check's answer, the line that tells it."""
        kind = event.kind
        if kind in ("run_started", "run_resumed"):
            self.began = event.at if self.began is None else min(self.began, event.at)
            self.phase = "resumed" if kind == "run_resumed" else self.phase
        elif kind == "preflight_passed":
            self.phase = "running"
        elif kind == "rollback_started":
            self.phase = "rolling back"
        elif kind == "run_finished":
            self.phase, self.ended = str(event.data.get("status")), event.at
        elif kind in CHECK_EVENTS:
            self.checks[kind] += 1
            self.phase = "preflight checks"
            return self._check_line(kind, redact(dict(event.data)))
        elif event.step in self.steps and kind in STATE_OF:
            self._step(self.steps[event.step], event)
            if self.phase in ("starting", "resumed", "preflight checks"):
                self.phase = "running"
        return None

    def _step(self, view: StepView, event: Event) -> None:
        if event.kind == "step_started":
            known = view.started_at
            view.started_at = event.at if known is None else min(known, event.at)
        if event.seq < view.seq:  # arrived after a later event of the step: its time only
            return
        view.seq, view.state = event.seq, STATE_OF[event.kind]
        if event.kind == "step_started":
            view.finished_at = None  # started again (a resumed run's retry)
        elif event.kind in ENDING:
            view.finished_at = event.at

    def _check_line(self, kind: str, data: Mapping[str, object]) -> str:
        check = str(data.get("check"))
        where = f"preflight {check} at {self.sites.get(check, '?')}: "
        if kind == "check_skipped":
            return where + f"skipped: {data.get('reason') or 'no reason given'}"
        verdict = "ok" if kind == "check_passed" else "FAILED"
        if kind == "check_failed" and data.get("best_effort"):
            verdict = "failed (best effort: the run goes on)"
        said = " ".join(str(data.get("message") or "").split())
        observed = data.get("observed")
        if observed is None:
            return where + verdict + (f": {said}" if said else "")
        seen = json.dumps(observed, default=str, ensure_ascii=False)
        seen = seen if len(seen) <= OBSERVED_WIDTH else seen[: OBSERVED_WIDTH - 3] + "..."
        return where + verdict + (f": {said}" if said else "") + f" (observed {seen})"

    # --- what to show --------------------------------------------------------------------------

    def elapsed(self, now: float) -> float:
        """Seconds since the run (or its resumption) started, by the journal: to its end once it ended."""
        if self.began is None:
            return 0.0
        return max(0.0, (self.ended if self.ended is not None else now) - self.began)

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(v.state for v in self.steps.values()).items()))

    def rows(self, now: float, most: int | None = None) -> tuple[list[Row], int]:
        """The steps that are under way or done, in the plan's order, and how many more there are
        that did not fit in ``most`` rows: those in ``ACTIVE`` states first, then the latest."""
        shown = [s for s in self.plan.steps if self.steps[s.id].state != "pending"]
        if most is not None and len(shown) > most:
            rank = sorted(
                shown,
                key=lambda s: (self.steps[s.id].state not in ACTIVE, -self.steps[s.id].seq),
            )
            keep = {s.id for s in rank[: max(0, most)]}
            left = len(shown) - len(keep)
            shown = [s for s in shown if s.id in keep]
        else:
            left = 0
        rows = []
        for step in shown:
            view = self.steps[step.id]
            took = None
            if view.started_at is not None:
                end = view.finished_at if view.finished_at is not None else now
                took = max(0.0, end - view.started_at)
            rows.append(Row(step.id, view.state, took, step.estimate_s))
        return rows, left
