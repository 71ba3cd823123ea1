"""The watcher: evaluates a runbook's triggers at their intervals, decides with the state store
(one firing however many watchers), acts (notify, or run a plan made in advance), and follows each
incident to its cutover and recovery.

Each trigger's signals and guard are checks of small read-only plans (:func:`failover.planner.
trigger_plans`), asked as ``failover check`` asks a plan's preflight: at once, each within its
timeout. A signal that fails, or cannot answer, is bad.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import structlog

from failover.engine.checks import Readiness, readiness
from failover.engine.options import Options
from failover.engine.start import new_run_id
from failover.plan import Plan
from failover.planner import trigger_plans
from failover.report.data import iso
from failover.runbook import Runbook
from failover.state.store import StateStore
from failover.watch.notify import Firing, pagerduty_body, send, webhook_body
from failover.watch.records import TriggerRecord, record_name, update
from failover.watch.state import Condition, Timing, Verdict, wants_guard
from failover.watch.state import evaluate as decide

log = structlog.get_logger("failover.watch")


@dataclass(frozen=True)
class Target:
    """Where a firing is told: a chat webhook's URL, or PagerDuty's Events API and a routing key."""

    kind: Literal["webhook", "pagerduty"]
    url: str
    routing_key: str | None = None


@dataclass(frozen=True)
class Watched:
    """A trigger, ready to evaluate."""

    name: str
    from_: str
    to: str
    action: Literal["notify", "failover"]
    condition: Condition
    timing: Timing
    signals: Plan  # its signals, as the preflight checks of a read-only plan
    guard: Plan  # the target's health, the same way
    targets: tuple[Target, ...] = ()
    plan_file: str | None = None

    @classmethod
    def of(cls, runbook: Runbook, name: str, speed: float = 1.0) -> Watched:
        """``runbook``'s trigger ``name``, ready to evaluate; in a sandbox running ``speed`` times
        faster than the clouds, its durations are that many times shorter too."""
        spec = runbook.triggers[name]
        signals, guard = trigger_plans(runbook, name)
        return cls(
            name=name,
            from_=spec.from_,
            to=spec.to,
            action=spec.action,
            condition=Condition.parse(spec.when, len(spec.signals)),
            timing=Timing(
                spec.every / speed, spec.for_ / speed, spec.clear_for / speed, spec.cooldown / speed
            ),
            signals=signals,
            guard=guard,
            targets=tuple(
                Target("webhook", n.webhook)
                if n.webhook
                else Target("pagerduty", n.pagerduty_url, n.pagerduty)
                for n in spec.notify
            ),
            plan_file=spec.plan,
        )


Starter = Callable[[Watched, str], None]
"""Runs a trigger's failover plan as the given run id (the command line checks the plan first:
its runbook unchanged, its signatures, the active site); raises when it refuses."""
Follower = Callable[[str], dict[str, Any] | None]
"""A run's figures once it finished: ``{"status", "started_at", "cutover_at"}`` (epoch seconds)."""


@dataclass
class Evaluation:
    """One evaluation of one trigger: what its signals (and guard) said, and what it decided."""

    trigger: str
    at: float
    state: str
    why: str
    signals: list[Readiness]
    guard: list[Readiness] | None = None
    firing: Firing | None = None
    problems: list[str] = field(default_factory=list)  # notifications not delivered, a run refused


class Watcher:
    """Evaluates ``triggers`` of ``runbook`` against the clouds, deciding in ``store``."""

    def __init__(
        self,
        runbook: str,
        triggers: Sequence[Watched],
        store: StateStore,
        options: Options,
        *,
        start: Starter,
        follow: Follower,
        clock: Callable[[], float] = time.time,
        deliver: Callable[[str, dict[str, Any]], str | None] = send,
    ) -> None:
        self.runbook = runbook
        self.triggers = list(triggers)
        self.store = store
        self.options = options
        self.start = start
        self.follow = follow
        self.clock = clock
        self.deliver = deliver  # a sandbox tells no one: it says what it would have sent
        self.next_at: dict[str, float] = {}
        self.last: dict[str, Evaluation] = {}

    def due(self, now: float) -> list[Watched]:
        return [w for w in self.triggers if self.next_at.get(w.name, now) <= now]

    def evaluate_due(self) -> list[Evaluation]:
        """Evaluate every trigger whose interval came round."""
        found = []
        for watched in self.due(self.clock()):
            found.append(self.evaluate(watched))
            self.next_at[watched.name] = self.clock() + watched.timing.every
        return found

    def evaluate(self, w: Watched) -> Evaluation:
        seen = readiness(w.signals, self.store.work_dir, self.options)
        now = self.clock()  # when the signals were seen: what the decision is made on
        bad = sum(1 for r in seen if not r.ok and r.skipped is None)
        name = record_name(self.runbook, w.name)
        record = TriggerRecord.read(self.store, name)
        guard: list[Readiness] | None = None
        if wants_guard(record.memory, now, bad, w.condition, w.timing, record.armed):
            guard = readiness(w.guard, self.store.work_dir, self.options)
        guard_ok = None if guard is None else all(r.ok for r in guard)
        verdicts: list[Verdict] = []

        def change(rec: TriggerRecord) -> TriggerRecord:
            verdict = decide(rec.memory, now, bad, w.condition, w.timing, guard_ok=guard_ok, armed=rec.armed)
            verdicts.append(verdict)
            rec.memory, rec.state, rec.evaluated_at = verdict.memory, verdict.state, now
            if verdict.state == "firing":
                rec.incidents.append(_incident(w, verdict))
            return rec

        update(self.store, name, change)
        verdict = verdicts[-1]
        evaluation = Evaluation(w.name, now, verdict.state, verdict.why, seen, guard)
        log.info(
            "trigger_evaluated",
            trigger=w.name,
            state=verdict.state,
            why=verdict.why,
            bad=bad,
            signals={r.id: r.ok for r in seen},
            guard=None if guard is None else {r.id: r.ok for r in guard},
        )
        if verdict.state == "firing":
            self._act(w, evaluation)
        else:
            self._follow(w)
        self.last[w.name] = evaluation
        return evaluation

    def _act(self, w: Watched, evaluation: Evaluation) -> None:
        firing = Firing(
            runbook=self.runbook,
            trigger=w.name,
            from_=w.from_,
            to=w.to,
            action=w.action,
            fired_at=iso(evaluation.at) or "",
            signals=[_signal(r) for r in evaluation.signals],
            next_step=(
                f"failover apply {w.plan_file}"
                if w.plan_file and w.action == "notify"
                else f"failover status --state {self.store.url}"
            ),
        )
        evaluation.firing = firing
        log.warning("trigger_fired", trigger=w.name, action=w.action, why=evaluation.why)
        run_id = new_run_id() if w.action == "failover" else None
        told = (
            firing
            if run_id is None
            else replace(firing, run_id=run_id, next_step=f"failover status {run_id}")
        )
        evaluation.firing = told
        for target in w.targets:  # before the run: people hear of it while it goes on
            body = (
                webhook_body(told)
                if target.kind == "webhook"
                else pagerduty_body(told, target.routing_key or "")
            )
            problem = self.deliver(target.url, body)
            if problem:
                evaluation.problems.append(f"notification not delivered: {problem}")
        self._note(w, run_id=run_id, notified=len(w.targets), problems=list(evaluation.problems))
        if run_id is not None:
            try:
                self.start(w, run_id)
            except Exception as exc:  # refused (stale plan, signatures, active site): said, recorded
                evaluation.problems.append(f"failover not started: {exc}")
                self._note(w, run_id=None, closed=True, problems=evaluation.problems)
            else:
                self._follow(w)
        for problem in evaluation.problems:
            log.error("trigger_action_failed", trigger=w.name, problem=problem)

    def _note(self, w: Watched, **fields: Any) -> None:
        """Add ``fields`` to the trigger's incident in hand."""

        def change(rec: TriggerRecord) -> TriggerRecord | None:
            incident = rec.open_incident()
            if incident is None:
                return None
            incident.update(fields)
            return rec

        update(self.store, record_name(self.runbook, w.name), change)

    def _follow(self, w: Watched) -> None:
        """Take the incident in hand one step further: its run, its cutover, the target's health."""
        record = TriggerRecord.read(self.store, record_name(self.runbook, w.name))
        incident = record.open_incident()
        if incident is None:
            return
        if incident.get("run_id") is None and w.action == "notify":
            run_id = self._run_since(w, float(incident["fired_at"]))
            if run_id is not None:
                self._note(w, run_id=run_id)
                incident["run_id"] = run_id
        if incident.get("run_id") and incident.get("cutover_at") is None:
            figures = self.follow(str(incident["run_id"]))
            if figures is not None:
                if figures["status"] == "succeeded":
                    self._note(w, run_started_at=figures["started_at"], cutover_at=figures["cutover_at"])
                    incident["cutover_at"] = figures["cutover_at"]
                else:
                    self._note(
                        w,
                        run_status=figures["status"],
                        **({"closed": True} if w.action == "failover" else {"run_id": None}),
                    )
        if incident.get("cutover_at") is not None:
            guard = readiness(w.guard, self.store.work_dir, self.options) if w.guard.preflight else []
            if all(r.ok for r in guard):
                self._note(w, recovered_at=self.clock())
                log.info("incident_recovered", trigger=w.name, run_id=incident.get("run_id"))

    def _run_since(self, w: Watched, since: float) -> str | None:
        """The first run of this runbook from ``w.from_`` to ``w.to`` started after ``since``:
        the one a person started on being told."""
        for row in self.store.runs():
            if row.runbook != self.runbook or row.created_at < since:
                continue
            scenario = self.store.run_plan(row.run_id).scenario
            if (scenario.from_, scenario.to) == (w.from_, w.to):
                return row.run_id
        return None


def _incident(w: Watched, verdict: Verdict) -> dict[str, Any]:
    return {
        "trigger": w.name,
        "from": w.from_,
        "to": w.to,
        "action": w.action,
        "first_bad_at": verdict.memory.first_bad_at,
        "fired_at": verdict.memory.fired_at,
        "run_id": None,
        "run_started_at": None,
        "cutover_at": None,
        "recovered_at": None,
    }


def _signal(r: Readiness) -> dict[str, Any]:
    return {"id": r.id, "site": r.site, "ok": r.ok, "observed": r.observed, "message": r.message}
