"""The run loop: preflight, then every step as soon as it may start, then an ending that the
journal records, whatever happened.

Worker threads run steps; a worker that finishes one takes the next ready step itself. This
thread watches: at a step's deadline it journals the step as failed (in doubt if its change was
under way), frees its slot and goes on; it honours interruptions (the first stops starting
steps, the second gives up on those in flight) and stops everything when the lease is lost or
the journal cannot be written. Every way out ends in a journaled state with the next command.
"""

from __future__ import annotations

import contextlib
import threading
from functools import partial
from pathlib import Path

import structlog

from failover.engine.approvals import decide
from failover.engine.attempt import Outcome, StepRunner, timed_out
from failover.engine.checks import ask, ask_all
from failover.engine.checks import timed_out as check_timed_out
from failover.engine.contexts import Contexts
from failover.engine.interrupt import Interrupt
from failover.engine.lease import LeaseKeeper
from failover.engine.options import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, Options, RunResult
from failover.engine.recorder import MutedError, Recorder, StoppedError, Task
from failover.engine.rollback import Ending, Rollback, pivots_begun
from failover.engine.scheduler import Scheduler, slot_of
from failover.engine.scheduler import Task as Work
from failover.engine.workers import Workers
from failover.errors import FailoverError, JournalWriteError, LeaseLostError
from failover.journal import Journal, Lease
from failover.plan import Plan, PlannedCheck, PlannedStep
from failover.providers.base import CheckResult, Context, Registry
from failover.state.events import RunState, StepRecord

log = structlog.get_logger("failover.engine")
_LIVE: set[str] = set()  # runs this process is running now
_LIVE_LOCK = threading.Lock()
TICK_S = 0.25  # how often the loop looks at interruptions when nothing else wakes it


def running_here(run_id: str) -> bool:
    """Whether this process runs ``run_id`` now (a lease it left behind is not a live run)."""
    with _LIVE_LOCK:
        return run_id in _LIVE


class EngineFaultError(FailoverError):
    """The engine itself failed; the run stops as it would for a lost journal."""


def _done(rec: StepRecord) -> bool:
    return rec.state in ("succeeded", "skipped") or (rec.state == "failed" and rec.best_effort)


class Run:
    """One process's hold on one run."""

    def __init__(
        self,
        plan: Plan,
        journal: Journal,
        lease: Lease,
        options: Options,
        registry: Registry,
        state_dir: Path,
    ) -> None:
        self.plan = plan
        self.journal = journal
        self.options = options
        self.registry = registry
        self.run_id = lease.run_id
        self.interrupt = options.interrupt or Interrupt()
        self.keeper = LeaseKeeper(journal, lease, options.lease_ttl)
        self.log = log.bind(run_id=lease.run_id, runbook=plan.runbook.name)
        self.recorder = Recorder(journal, self.keeper, plan.steps_by_id, self.log, options.on_event)
        self.contexts = Contexts(plan, options, state_dir)
        self.wake = threading.Event()
        self.lock = threading.Lock()
        self.runner = StepRunner(self.run_id, registry, self.recorder, self.contexts, options, self.keeper)

    # --- start and end -------------------------------------------------------------------------

    def start(self, resumed: RunState | None = None, rollback: bool = False) -> RunResult:
        with _LIVE_LOCK:
            _LIVE.add(self.run_id)
        self.keeper.start()
        try:
            return self._run(resumed, rollback)
        except StoppedError:
            return self._stopped()
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(self.run_id)
            self.keeper.stop()
            try:
                self.keeper.release()
            except JournalWriteError as exc:  # it expires by itself
                self.log.warning("lease_not_released", error=str(exc))

    def _run(self, resumed: RunState | None, rollback: bool) -> RunResult:
        if resumed is None:
            self.recorder.emit(
                "run_started",
                fingerprint=self.plan.fingerprint,
                runbook=self.plan.runbook.name,
                scenario=self.plan.scenario.model_dump(mode="json", by_alias=True),
                **self.options.journaled(),
            )
            state = self._state()
        else:
            self.recorder.emit("run_resumed", owner=self.keeper.lease.owner, rollback=rollback)
            state = resumed
        if rollback or state.rollback_started:
            if state.status == "succeeded" or state.undo:  # undoing a failover that succeeded
                return self._roll_back(state, "undo of the failover requested", EXIT_OK, undo=True)
            return self._roll_back(state, "requested" if rollback else "resumed", EXIT_FAILED)
        if not state.preflight_done:
            failed = self._preflight()
            if failed is None:
                return self._interrupted("during preflight")
            if failed:
                message = "preflight failed, nothing was changed: " + "; ".join(failed)
                return self._finish("refused", EXIT_REFUSED, message)
            self.recorder.emit("preflight_passed")
        failure = self._forward(self._state())
        if self.interrupt.requested:
            return self._interrupted("")
        if failure is None:
            return self._succeeded()
        return self._on_failure(*failure)

    def _state(self) -> RunState:
        try:
            self.journal.flush()  # what was queued is part of the story
        except JournalWriteError as exc:
            self.recorder.fail(exc)
            raise StoppedError from exc
        return RunState.replay(self.run_id, self.journal.events(self.run_id))

    def _finish(
        self,
        status: str,
        code: int,
        message: str,
        failures: list[str] | None = None,
        state: RunState | None = None,
    ) -> RunResult:
        """Journal how the run ended; ``state``: the run as replayed just now, if it was."""
        state = state or self._state()
        ending = {
            "status": status,
            "exit_code": code,
            "message": message,
            "best_effort_failures": failures or [],
        }
        event = self.recorder.emit("run_finished", **ending)
        assert event is not None  # the run's end is durable before it is told
        state.apply(event)
        return RunResult(self.run_id, state.status, state.exit_code or 0, state.message, state)

    def _succeeded(self) -> RunResult:
        state = self._state()
        failed = [c for c, rec in state.checks.items() if not rec.ok and rec.best_effort]
        failed += [s.id for s in self.plan.steps if state.step(s.id).state == "failed"]
        if not failed:
            return self._finish("succeeded", EXIT_OK, "every step succeeded", state=state)
        count = f"{len(failed)} best-effort failure{'s' if len(failed) != 1 else ''}"
        strict = " (--strict: exit 1)" if self.options.strict else ""
        code = EXIT_FAILED if self.options.strict else EXIT_OK
        message = f"succeeded with {count}: {', '.join(failed)}{strict}"
        return self._finish("succeeded", code, message, failed, state)

    def _next(self, state: RunState) -> str:
        """The commands that take this run up again."""
        if self.options.sandbox:
            return "a sandbox drill is not taken up again (its clouds end with it): drill again"
        resume = f"`failover resume {self.run_id}`"
        if pivots_begun(self.plan, state):
            return f"continue with {resume} (a pivot began: no rollback)"
        return f"continue with {resume}, or undo what it did with `failover rollback {self.run_id}`"

    def _interrupted(self, during: str) -> RunResult:
        signal = self.interrupt.signal or "an interruption"
        self.recorder.emit("run_interrupted", signal=signal, by=self.options.who)
        state = self._state()
        doubt = [s for s, rec in state.steps.items() if rec.in_doubt and rec.state == "failed"]
        where = f" {during}" if during else ""
        note = f"; in doubt (their change may still happen): {', '.join(doubt)}" if doubt else ""
        message = f"interrupted by {signal}{where}{note}: {self._next(state)}"
        return self._finish("interrupted", self.interrupt.exit_code, message)

    def _stopped(self) -> RunResult:
        """The lease was lost or the journal cannot be written: no ending can be journaled by
        this process (a write is tried when only the journal failed); the run is left for resume."""
        why = self.recorder.failure or self.keeper.lost
        message = (
            f"run {self.run_id} stopped, nothing more was started: {why}. When that is fixed: "
            f"`failover status {self.run_id}`, then `failover resume {self.run_id}` "
            "(steps in flight are verified before anything runs again)"
        )
        self.log.error("run_stopped", reason=str(why))
        if isinstance(why, JournalWriteError):
            with contextlib.suppress(JournalWriteError, LeaseLostError):  # it cannot be written either
                ending = {"status": "stopped", "exit_code": 3, "message": message}
                self.journal.append(self.keeper.lease, "run_finished", None, ending)
        try:
            state = RunState.replay(self.run_id, self.journal.events(self.run_id))
        except Exception:  # the journal may be unreadable too: say what is known
            state = RunState(self.run_id, status="stopped", exit_code=EXIT_REFUSED, message=message)
        return RunResult(self.run_id, "stopped", EXIT_REFUSED, message, state)

    # --- preflight -----------------------------------------------------------------------------

    def _preflight(self) -> list[str] | None:
        """Every preflight check at once, each within its timeout; what failed, or None when an
        interruption ended it (nothing was changed either way)."""
        failed: list[str] = []
        asked = []
        for check in self.plan.preflight:
            reason = self.options.skip_checks.get(check.id)
            if check.skipped or reason is not None:
                self.recorder.emit("check_skipped", check=check.id, reason=reason or check.skip_reason or "")
            else:
                asked.append(check)

        def one(check: PlannedCheck, deadline: float) -> CheckResult:
            return ask(self.registry, lambda cloud: self._check_context(check, cloud, deadline), check)

        def answered(check: PlannedCheck, seen: CheckResult | None) -> None:
            seen = seen or check_timed_out(check)
            kind = "check_passed" if seen.ok else "check_failed"
            self.recorder.emit(
                kind,
                check=check.id,
                observed=seen.observed,
                message=seen.message,
                best_effort=check.best_effort,
            )
            if not seen.ok and not check.best_effort:
                failed.append(f"{check.id} at {check.site}: {seen.message} (observed {seen.observed!r})")

        clock = self.options.clock
        if not ask_all(asked, lambda c: c.timeout_s, one, clock, lambda: self.interrupt.requested, answered):
            return None
        return sorted(failed)

    def _check_context(self, check: PlannedCheck, cloud: str | None, deadline: float) -> Context:
        return self.contexts.make(self.run_id, check.id, check.site, cloud, deadline, self.keeper.check)

    # --- the steps -----------------------------------------------------------------------------

    def _late(self, running: dict[int, Task]) -> tuple[list[tuple[int, str]], float]:
        """Running steps the run stops waiting for now, and why; and how long to wait before
        looking again (at most a tick, for interruptions)."""
        steps, now = self.plan.steps, self.options.clock()
        if self.interrupt.abandon:
            why = f"abandoned: interrupted twice ({self.interrupt.signal})"
            return [(i, why) for i in running], TICK_S
        late, wait = [], TICK_S
        for i, task in running.items():
            if task.deadline is None:
                continue
            if task.deadline <= now:
                late.append((i, f"{timed_out(steps[i])}; the engine stopped waiting for it"))
            else:
                wait = min(wait, task.deadline - now)
        return late, wait

    def _publish(self) -> None:
        """Commit what is queued (steps that started, say), so that `failover status` sees a
        step waiting on a hung read within a tick."""
        try:
            self.journal.flush_queued()
        except JournalWriteError as exc:
            self.recorder.fail(exc)

    def _limit_of(self, step: PlannedStep) -> int | None:
        provider, site = slot_of(step)
        spec = self.plan.sites_by_name.get(site)
        own = (spec.concurrency or {}).get(provider) if spec is not None else None
        return own if own is not None else self.options.provider_limits.get(provider)

    def _forward(self, state: RunState) -> tuple[str, str] | None:
        """Run every step not yet done; (step id, why) of the first failure, or None."""
        steps = self.plan.steps
        sched = Scheduler(
            steps,
            done=lambda i: _done(state.step(steps[i].id)),
            needs_approval=lambda i: (
                steps[i].approval and not steps[i].skipped and state.step(steps[i].id).approved_by is None
            ),
            limit=self.options.concurrency or len(steps) or 1,
            limit_of=self._limit_of,
        )
        workers = Workers("failover-step")
        failure: list[tuple[str, str]] = []
        tasks: dict[int, Task] = {}  # the running steps' hold on the journal

        def settle(i: int, outcome: Outcome | None) -> None:  # under self.lock
            if i not in sched.running:
                return  # the loop gave up on it first
            tasks.pop(i, None)
            ok, why = outcome if outcome is not None else (False, "")
            sched.finished(i, ok)
            if not ok:
                sched.stop()
                if outcome is not None and not failure:
                    failure.append((steps[i].id, why))

        def dispatch() -> Work | None:  # under self.lock: one task for the caller, others to workers
            if self.recorder.failure is not None or self.interrupt.requested:
                sched.stop()
            mine = sched.take()
            while (more := sched.take()) is not None:
                workers.submit(partial(work, more))
            if mine is None and sched.idle:
                self.wake.set()  # nothing runs and nothing more will start: the loop may end
            return mine

        def work(first: Work) -> None:
            try:
                run_tasks(first)
            except Exception as exc:  # a fault of the engine itself: stop the run, say why
                self.log.exception("engine_fault")
                self.recorder.fail(EngineFaultError(f"internal error: {type(exc).__name__}: {exc}"))
                with self.lock:
                    sched.stop()
                    for i in list(sched.running | sched.asking):
                        sched.finished(i, False)
                        sched.denied(i)
                self.wake.set()

        def run_tasks(first: Work) -> None:
            current: Work | None = first
            while current is not None:
                kind, i = current
                if kind == "ask":
                    granted = self._ask(steps[i])
                    with self.lock:
                        if granted:
                            sched.approved(i)
                        else:
                            sched.denied(i)
                            sched.stop()
                            if not failure and self.recorder.failure is None:
                                failure.append((steps[i].id, "approval denied"))
                        current = dispatch()
                    continue
                task = self.recorder.task(steps[i].id)
                with self.lock:
                    tasks[i] = task
                outcome = self._step(steps[i], state.step(steps[i].id), task)
                with self.lock:
                    settle(i, outcome)
                    current = dispatch()

        with self.lock:
            first = dispatch()
        if first is not None:
            workers.submit(partial(work, first))
        wait = 0.0
        try:
            while True:
                self.wake.wait(wait)
                self.wake.clear()
                with self.lock:
                    if self.interrupt.requested or self.recorder.failure is not None:
                        sched.stop()
                    if sched.idle:
                        break
                    late, wait = self._late({i: tasks[i] for i in sched.running if i in tasks})
                    held = {i: tasks[i] for i, _ in late}
                self._publish()
                for i, why in late:
                    if self._give_up(steps[i], held[i], why):
                        with self.lock:
                            settle(i, (steps[i].best_effort, why))
                            more = dispatch()
                        if more is not None:
                            workers.submit(partial(work, more))
        finally:
            workers.close()
        if self.recorder.failure is not None:
            raise StoppedError
        return failure[0] if failure else None

    def _give_up(self, step: PlannedStep, task: Task, why: str) -> bool:
        """Journal a step the run stops waiting for; in doubt if its change was under way."""
        doubt = self.runner.in_doubt(step.id)
        error = why + ("; its change was under way and may still happen (in doubt)" if doubt else "")
        extra = {"in_doubt": True} if doubt else {}
        return self.recorder.give_up(
            task, "step_failed", error=error, best_effort=step.best_effort, abandoned=True, **extra
        )

    def _step(self, step: PlannedStep, record: StepRecord, task: Task) -> Outcome | None:
        """A step's outcome; None when the run took it out of the worker's hands."""
        try:
            return self.runner.run(step, record, task)
        except (MutedError, StoppedError):
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
            )
            kind = "approval_granted" if answer.granted else "approval_denied"
            self.recorder.emit(kind, step.id, by=answer.by, reason=answer.reason)
        except StoppedError:
            return False
        return answer.granted

    # --- failure -------------------------------------------------------------------------------

    def _on_failure(self, step_id: str, why: str) -> RunResult:
        state = self._state()
        begun = pivots_begun(self.plan, state)
        code = EXIT_REFUSED if why == "approval denied" else EXIT_FAILED
        if begun:
            message = (
                f"{step_id} failed ({why}) after pivot {begun[0]} began: no rollback past a pivot; "
                f"fix forward, then `failover resume {self.run_id}`"
            )
            self.recorder.emit("run_halted", reason=message, step=step_id)
            return self._finish("halted", code, message)
        if self.options.on_failure == "halt":
            message = f"{step_id} failed ({why}); halted: {self._next(state)}"
            self.recorder.emit("run_halted", reason=message, step=step_id)
            return self._finish("halted", code, message)
        return self._roll_back(state, f"{step_id} failed: {why}", code)

    def _roll_back(self, state: RunState, reason: str, code: int, undo: bool = False) -> RunResult:
        if not state.rollback_started:
            self.recorder.emit("rollback_started", reason=reason, **({"undo": True} if undo else {}))
        rollback = Rollback(
            self.run_id,
            self.plan,
            self.registry,
            self.recorder,
            self.contexts,
            self.options,
            self.interrupt,
            self.runner.guard,
        )
        ending: Ending | None = rollback.run(state, f"rolled back ({reason})", code)
        if ending is None:
            return self._interrupted("while rolling back")
        return self._finish(*ending)
