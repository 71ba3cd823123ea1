"""The forward pass: every step not done yet, each as soon as it may start, watched.

Worker threads run steps; a worker that finishes one takes the next ready step itself, so a
chain runs without hand-offs. The calling thread watches: at a step's deadline it journals the
step as failed (in doubt if its change was under way), frees its slot and goes on; it honours
interruptions (the first stops starting steps, the second gives up on those in flight); and it
stops starting anything once the lease is lost or the journal cannot be written.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from failover.engine.approvals import LOGIN_HINT, decide, signers
from failover.engine.attempt import Outcome, StepRunner, timed_out
from failover.engine.interrupt import Interrupt
from failover.engine.options import Options
from failover.engine.recorder import MutedError, Recorder, StoppedError, Task
from failover.engine.scheduler import Scheduler, slot_of
from failover.engine.scheduler import Task as Work
from failover.engine.workers import Workers
from failover.errors import FailoverError
from failover.plan import Plan, PlannedStep
from failover.state.events import RunState, StepRecord

TICK_S = 0.25  # how often the watch looks at interruptions when nothing else wakes it


class EngineFaultError(FailoverError):
    """The engine itself failed; the run stops as it would for a lost journal."""


def done(rec: StepRecord) -> bool:
    """Whether the steps after this one may go on: it succeeded, was skipped, or failed best-effort."""
    return rec.state in ("succeeded", "skipped") or (rec.state == "failed" and rec.best_effort)


@dataclass
class Forward:
    """One forward pass of a run over ``state`` (the run as journaled when the pass begins)."""

    plan: Plan
    state: RunState
    options: Options
    recorder: Recorder
    runner: StepRunner
    interrupt: Interrupt
    log: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    wake: threading.Event = field(default_factory=threading.Event)
    failure: list[tuple[str, str]] = field(default_factory=list)  # the first step that failed
    tasks: dict[int, Task] = field(default_factory=dict)  # the running steps' hold on the journal

    def __post_init__(self) -> None:
        steps, state = self.plan.steps, self.state
        self.sched = Scheduler(
            steps,
            done=lambda i: done(state.step(steps[i].id)),
            needs_approval=lambda i: (
                steps[i].approval and not steps[i].skipped and state.step(steps[i].id).approved_by is None
            ),
            limit=self.options.concurrency or len(steps) or 1,
            limit_of=self._limit_of,
        )
        self.workers = Workers("failover-step")

    def stop(self, what: str, why: str) -> None:
        """Stop starting steps, as a failed step would (a stop condition went bad): the run
        ends with ``what`` as its failure once the steps in flight end."""
        with self.lock:
            if not self.failure:
                self.failure.append((what, why))
            self.sched.stop()
        self.wake.set()

    def run(self) -> tuple[str, str] | None:
        """Run every step not yet done; (step id, why) of the first failure, or None."""
        with self.lock:
            first = self._dispatch()
        if first is not None:
            self.workers.submit(partial(self._work, first))
        wait = 0.0
        try:
            while True:
                self.wake.wait(wait)
                self.wake.clear()
                with self.lock:
                    if self.interrupt.requested or self.recorder.failure is not None:
                        self.sched.stop()
                    if self.sched.idle:
                        break
                    late, wait = self._late()
                self.recorder.publish()  # `failover status` sees a step on a hung read
                for i, task, why in late:
                    if self._give_up(self.plan.steps[i], task, why):
                        outcome = None if why is None else (self.plan.steps[i].best_effort, why)
                        with self.lock:
                            self._settle(i, outcome)
                            more = self._dispatch()
                        if more is not None:
                            self.workers.submit(partial(self._work, more))
        finally:
            self.workers.close()
        if self.recorder.failure is not None:
            raise StoppedError
        return self.failure[0] if self.failure else None

    # --- the workers (what runs under self.lock says so) --------------------------------------

    def _settle(self, i: int, outcome: Outcome | None) -> None:
        """Record how step i ended (under self.lock); None: it ended without an outcome of its
        own (the run is stopping, or the step was called off before it started)."""
        if i not in self.sched.running:
            return  # the watch gave up on it first
        self.tasks.pop(i, None)
        ok, why = outcome if outcome is not None else (False, "")
        self.sched.finished(i, ok)
        if not ok:
            self.sched.stop()
            if outcome is not None and not self.failure:
                self.failure.append((self.plan.steps[i].id, why))

    def _dispatch(self) -> Work | None:
        """One task for the calling worker, the others to new ones (under self.lock)."""
        if self.recorder.failure is not None or self.interrupt.requested:
            self.sched.stop()
        mine = self.sched.take()
        while (more := self.sched.take()) is not None:
            self.workers.submit(partial(self._work, more))
        if mine is None and self.sched.idle:
            self.wake.set()  # nothing runs and nothing more will start: the watch may end
        return mine

    def _work(self, first: Work) -> None:
        try:
            self._run_tasks(first)
        except Exception as exc:  # a fault of the engine itself: stop the run, say why
            try:
                self.recorder.fail(EngineFaultError(f"internal error: {type(exc).__name__}: {exc}"))
                with self.lock:
                    self.sched.stop()
                    for i in list(self.sched.running | self.sched.asking):
                        self.sched.finished(i, False)
                        self.sched.denied(i)
                self.log.exception("engine_fault")  # last: an embedder's logger may fail too
            finally:
                self.wake.set()  # the watch sees the run stopped, whatever failed here

    def _run_tasks(self, first: Work) -> None:
        steps = self.plan.steps
        current: Work | None = first
        while current is not None:
            kind, i = current
            if kind == "ask":
                granted = self._ask(steps[i])
                with self.lock:
                    if granted:
                        self.sched.approved(i)
                    else:
                        self.sched.denied(i)
                        self.sched.stop()
                        if not self.failure and self.recorder.failure is None:
                            self.failure.append((steps[i].id, "approval denied"))
                    current = self._dispatch()
                continue
            task = self.recorder.task(steps[i].id)
            with self.lock:
                self.tasks[i] = task
            try:
                outcome = self._step(steps[i], self.state.step(steps[i].id), task)
            except MutedError:  # the watch gave up on it, and settles it
                with self.lock:
                    current = self._dispatch()
                continue
            with self.lock:
                self._settle(i, outcome)
                current = self._dispatch()

    def _step(self, step: PlannedStep, record: StepRecord, task: Task) -> Outcome | None:
        """A step's outcome; None when the run is stopping; MutedError when the watch gave up
        on it."""
        try:
            return self.runner.run(step, record, task)
        except StoppedError:
            return None
        except Exception as exc:  # before it could start (an unknown action, bad parameters)
            self.log.error("step_not_run", step=step.id, error=f"{type(exc).__name__}: {exc}")
            return False, f"could not run: {type(exc).__name__}: {exc}"

    def _ask(self, step: PlannedStep) -> bool:
        opts = self.options
        try:
            self.recorder.emit(
                "approval_requested",
                step.id,
                timeout_s=step.approval_timeout_s,
                pivot=step.pivot,
                site=step.site,
            )
            answer = decide(
                step,
                opts.who,
                auto=opts.auto_approve,
                approved=opts.approve_steps,
                approver=opts.approver,
                interrupted=lambda: self.interrupt.signal if self.interrupt.requested else None,
                signed_by=signers(opts.signatures) if opts.signers_approve else None,
                stopping=lambda: bool(self.failure) or self.recorder.failure is not None,
            )
            kind = "approval_granted" if answer.granted else "approval_denied"
            signed = opts.signers_approve and answer.granted and answer.by.startswith("signed by")
            self.recorder.emit(
                kind,
                step.id,
                by=answer.by,
                by_is="the plan's verified signers" if signed else LOGIN_HINT,
                reason=answer.reason,
                **self.recorder.identity,
            )
        except StoppedError:
            return False
        return answer.granted

    def _limit_of(self, step: PlannedStep) -> int | None:
        provider, site = slot_of(step)
        spec = self.plan.sites_by_name.get(site)
        own = (spec.concurrency or {}).get(provider) if spec is not None else None
        return own if own is not None else self.options.provider_limits.get(provider)

    # --- the watch -------------------------------------------------------------------------------

    def _late(self) -> tuple[list[tuple[int, Task, str | None]], float]:
        """Running steps the run stops waiting for now, and why (None: it had not started, and
        is called off quietly); and how long to wait before looking again (at most a tick, for
        interruptions). Under self.lock."""
        steps, now = self.plan.steps, self.options.clock()
        running = {i: self.tasks[i] for i in self.sched.running if i in self.tasks}
        if self.interrupt.abandon:
            why = f"abandoned: interrupted twice ({self.interrupt.signal})"
            return [
                (i, task, why if task.deadline is not None else None) for i, task in running.items()
            ], TICK_S
        late: list[tuple[int, Task, str | None]] = []
        wait = TICK_S
        for i, task in running.items():
            if task.deadline is None:
                continue
            if task.deadline <= now:
                late.append((i, task, f"{timed_out(steps[i])}; the engine stopped waiting for it"))
            else:
                wait = min(wait, task.deadline - now)
        return late, wait

    def _give_up(self, step: PlannedStep, task: Task, why: str | None) -> bool:
        """Journal a step the run stops waiting for (in doubt if its change was under way), or
        call off one that had not started (nothing to journal)."""
        if why is None:
            return task.give_up(None)
        return task.give_up("step_failed", why, best_effort=step.best_effort, abandoned=True)
