"""Rollback: which steps are compensated, in which order, each once and each within its step's
timeout; and when a rollback is refused.

Nothing unsafe is undone: no rollback once a pivot's change may have begun, none over a later
run on the same services (it would overwrite what that run did), and the undo of a run that
succeeded only when every step it completed can be compensated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from pydantic import JsonValue

from failover.engine.attempt import retrying
from failover.engine.calls import Call
from failover.engine.contexts import Contexts
from failover.engine.interrupt import Interrupt
from failover.engine.options import EXIT_FAILED, Options
from failover.engine.recorder import MutedError, Recorder, StoppedError, Task
from failover.engine.workers import Workers
from failover.errors import LeaseLostError
from failover.plan import Plan, PlannedStep
from failover.providers.base import Registry, active
from failover.state.events import RunState, StepRecord
from failover.state.store import StateStore

Ending = tuple[str, int, str]
"""How the run ends: (status, exit code, message)."""
TOLERATED = "tolerated"  # a best-effort step's compensation failed: the rollback goes on


def resources(plan: Plan) -> tuple[str, ...]:
    """What a run of ``plan`` locks: the cloud resources its steps change (by identity, whatever
    the runbook is called), or the runbook itself when no step changes anything."""
    found = {r for step in plan.steps if step.kind == "action" for r in step.resources}
    return tuple(sorted(found)) or (f"runbook:{plan.runbook.name}",)


def pivots_begun(plan: Plan, state: RunState) -> list[str]:
    """Pivots whose change may have begun (their snapshot is journaled): no rollback past them."""
    return [s.id for s in plan.steps if s.pivot and state.step(s.id).has_snapshot]


def refusal(journal: StateStore, run_id: str, plan: Plan, state: RunState) -> str | None:
    """Why rolling back run ``run_id`` now would be unsafe, or None."""
    begun = pivots_begun(plan, state)
    if begun:
        return (
            f"run {run_id} began pivot {', '.join(begun)}: it cannot be rolled back (the old "
            "primary would act beside the new one); resume it forward (`failover resume "
            f"{run_id}`), or fail back with the reverse plan (--from and --to swapped)"
        )
    if state.status == "succeeded":
        stuck = [
            s.id
            for s in plan.steps
            if s.kind == "action" and state.step(s.id).state == "succeeded" and not s.reversible
        ]
        if stuck:
            return (
                f"run {run_id} cannot be undone: {', '.join(stuck)} cannot be compensated "
                "(irreversible, or rollback: none); fail back with the reverse plan"
            )
    mine = set(resources(plan))
    runs = [r[0] for r in journal.runs()]
    for later in runs[runs.index(run_id) + 1 :]:
        shared = sorted(mine & set(resources(journal.run_plan(later))))
        if shared:
            return (
                f"run {run_id} cannot be rolled back: run {later}, started after it, acted on "
                f"{', '.join(shared)}; rolling back would overwrite what it did"
            )
    return None


@dataclass
class Rollback:
    """Compensates a run's completed reversible steps in reverse dependency order."""

    run_id: str
    plan: Plan
    registry: Registry
    recorder: Recorder
    contexts: Contexts
    options: Options
    interrupt: Interrupt
    guard: Callable[[Task], Callable[[], None]]

    def run(self, state: RunState, done: str, code: int) -> Ending | None:
        """Compensate what needs it; the ending, or None when an interruption stopped it."""
        workers = Workers("failover-undo")
        tolerated: list[str] = []  # best-effort steps whose compensation failed
        try:
            for step_id in self.plan.rollback:
                if self.interrupt.requested:
                    return None
                step, rec = self.plan.steps_by_id[step_id], state.step(step_id)
                if not rec.has_snapshot or rec.state in ("skipped", "compensated"):
                    continue  # its change never began, or is undone already
                ended = self._one(workers, step, rec)
                if isinstance(ended, tuple):
                    return ended
                if ended == TOLERATED:
                    tolerated.append(step_id)
        finally:
            workers.close()
        if tolerated:
            done += f"; best-effort steps not compensated (their site may be down): {', '.join(tolerated)}"
        return "rolled_back", code, done

    def _one(self, workers: Workers, step: PlannedStep, rec: StepRecord) -> Ending | str | None:
        """Compensate one step: None when done (or interrupted), TOLERATED when a best-effort
        step's compensation failed, else the run's ending (halted)."""
        task = self.recorder.task(step.id)
        deadline = self.options.clock() + step.timeout_s
        call = Call(workers, lambda: self._compensate(step, rec, task, deadline))
        ended = call.wait(deadline, self.options.clock, lambda: self.interrupt.abandon)
        if ended == "done" and call.error is None:
            return None
        if isinstance(call.error, LeaseLostError):
            self.recorder.fail(call.error)
        if isinstance(call.error, StoppedError | MutedError | LeaseLostError):
            raise StoppedError from call.error
        if ended == "done":
            error = f"{type(call.error).__name__}: {call.error}"
        else:
            why = "timed out" if ended == "timeout" else f"given up on ({self.interrupt.signal})"
            error = f"TimeoutError: {why} after {step.timeout_s:g}s; it may still take effect"
        if not task.give_up("compensation_failed", error, in_doubt=ended != "done"):
            return None  # it ended just now, on its own
        if ended == "interrupted":
            return None
        if step.best_effort:  # its site may be down: journaled, and the rollback goes on
            return TOLERATED
        message = f"rollback halted: compensating {step.id} failed: {error}"
        self.recorder.emit("run_halted", reason=message, step=step.id)
        return "halted", EXIT_FAILED, message

    def _compensate(self, step: PlannedStep, rec: StepRecord, task: Task, deadline: float) -> None:
        action = self.registry.action(step.action)
        ctx = self.contexts.make(self.run_id, step.id, step.site, action.cloud, deadline, self.guard(task))
        with active(ctx):
            params = action.parse(self.contexts.live(ctx, step.params))
            if rec.state != "succeeded":  # did its change happen, or was it undone before a crash?
                if action.verifiable and action.read(ctx, params) == rec.before:
                    if rec.state == "compensating":
                        task.emit("step_compensated", recovered=True)
                    return
                if not action.verifiable and rec.state == "failed" and not rec.in_doubt:
                    return  # a hook whose call failed: there is nothing to undo
            if rec.state != "compensating":
                task.emit("compensation_started")
            for attempt in retrying(step.retries + 1, ctx, self.options.sleep):
                with attempt:
                    ctx.check_call()
                    action.compensate(ctx, params, cast(JsonValue, rec.before))
        task.emit("step_compensated")
