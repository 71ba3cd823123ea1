"""A run, from its start to an ending the journal records, whatever happened: preflight (see
``checks``), the forward pass (``forward``), and on failure a halt or a rollback (``rollback``).

Every way out ends in a journaled state with the next command: succeeded (with its best-effort
failures named), refused, rolled back, halted, interrupted, or stopped when the lease was lost
or the journal could not be written (then the ending is written if it still can be).
"""

from __future__ import annotations

import contextlib
import threading

import structlog

from failover.engine.attempt import StepRunner
from failover.engine.checks import preflight
from failover.engine.contexts import Contexts
from failover.engine.forward import Forward, done
from failover.engine.identity import cloud_callers
from failover.engine.interrupt import Interrupt
from failover.engine.lease import LeaseKeeper
from failover.engine.options import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, Options, RunResult
from failover.engine.recorder import Recorder, StoppedError
from failover.engine.rollback import Ending, Rollback, pivots_begun
from failover.engine.stopping import StopWatch
from failover.errors import JournalWriteError, LeaseLostError
from failover.plan import Plan
from failover.providers.base import Registry
from failover.redact import register_secret, secret_values_in
from failover.state.events import RunState
from failover.state.store import Lease, StateStore

log = structlog.get_logger("failover.engine")
_LIVE: set[str] = set()  # runs this process is running now
_LIVE_LOCK = threading.Lock()


def running_here(run_id: str) -> bool:
    """Whether this process runs ``run_id`` now (a lease it left behind is not a live run)."""
    with _LIVE_LOCK:
        return run_id in _LIVE


class Run:
    """One process's hold on one run."""

    def __init__(
        self,
        plan: Plan,
        journal: StateStore,
        lease: Lease,
        options: Options,
        registry: Registry,
    ) -> None:
        self.plan = plan
        literal = [c.params for c in plan.preflight] + [s.params for s in plan.steps]
        for value in secret_values_in(literal):  # a plan file's literal secrets: never shown
            register_secret(value)
        self.journal = journal
        self.options = options
        self.registry = registry
        self.run_id = lease.run_id
        self.interrupt = options.interrupt or Interrupt()
        self.keeper = LeaseKeeper(journal, lease, options.lease_ttl)
        self.log = log.bind(run_id=lease.run_id, runbook=plan.runbook.name)
        self.recorder = Recorder(journal, self.keeper, plan, self.log, options.on_event)
        self.contexts = Contexts(plan, options, journal.work_dir)
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
        clouds = cloud_callers(self.plan, self.registry, self.contexts, self.run_id, self.options.clock())
        if clouds:
            self.recorder.identity["clouds"] = clouds
        if resumed is None:
            self.recorder.emit(
                "run_started",
                fingerprint=self.plan.fingerprint,
                runbook=self.plan.runbook.name,
                scenario=self.plan.scenario.model_dump(mode="json", by_alias=True),
                state=self.journal.url,
                **self.recorder.identity,
                **self.options.journaled(),
            )
            state = self._state()
        else:
            self.recorder.emit("run_resumed", rollback=rollback, **self.recorder.identity)
            state = resumed
        if rollback or state.rollback_started:
            if state.status == "succeeded" or state.undo:  # undoing a failover that succeeded
                return self._roll_back(state, "undo of the failover requested", EXIT_OK, undo=True)
            return self._roll_back(state, "requested" if rollback else "resumed", EXIT_FAILED)
        if not state.preflight_done:
            failed = preflight(
                self.plan,
                self.options,
                self.registry,
                self.recorder,
                self.contexts,
                self.keeper,
                self.interrupt,
            )
            if failed is None:
                return self._interrupted("during preflight")
            if failed:
                message = "preflight failed, nothing was changed: " + "; ".join(failed)
                return self._finish("refused", EXIT_REFUSED, message)
            self.recorder.emit("preflight_passed")
        forward = Forward(
            self.plan,
            self._state(),
            self.options,
            self.recorder,
            self.runner,
            self.interrupt,
            self.log,
        )
        with StopWatch(
            self.plan, self.options, self.registry, self.recorder, self.contexts, self.keeper, forward.stop
        ):
            failure = forward.run()
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
        undone = [s.id for s in self.plan.steps if not done(state.step(s.id))]
        if undone:  # the forward pass says all went well, the journal does not: believe the journal
            message = f"halted: steps not done: {', '.join(undone)}; {self._next(state)}"
            self.recorder.emit("run_halted", reason=message)
            return self._finish("halted", EXIT_FAILED, message, state=None)
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

    # --- failure -------------------------------------------------------------------------------

    def _on_failure(self, step_id: str, why: str) -> RunResult:
        state = self._state()
        begun = pivots_begun(self.plan, state)
        code = EXIT_REFUSED if why == "approval denied" else EXIT_FAILED
        if begun:
            message = (
                f"{step_id} failed ({why}) after pivot {begun[0]} began: no rollback past a pivot; "
                f"fix forward, then {self._next(state)}"
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
