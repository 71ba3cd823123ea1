"""One step, in a worker thread: journaled start, snapshot, apply with retries, verify; or a
verify check asked until it passes. Every cloud call runs under the step's deadline.

The order of the journal is the safety argument: ``step_started`` before the first call (so a
hung read is visible), ``apply_started`` with the rollback snapshot before the first change (so
a resumer or a rollback knows the change may have happened), the outcome after.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from pydantic import JsonValue
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)
from tenacity.stop import stop_base

from failover.engine.contexts import Contexts
from failover.engine.lease import LeaseKeeper
from failover.engine.options import Options
from failover.engine.recorder import MutedError, Recorder, StoppedError, Task
from failover.errors import DeadlineError, FailoverError, LeaseLostError, TransientProviderError
from failover.plan import PlannedStep
from failover.providers.base import Context, Registry, active
from failover.state.events import StepRecord

FIRST_BACKOFF_S = 1.0  # before the second attempt, plus up to 1 s of jitter; doubling after
BACKOFF = wait_exponential(multiplier=2 * FIRST_BACKOFF_S, max=30) + wait_random(0, 1)
Outcome = tuple[bool, str]
"""(whether the steps after it may go on, why not)."""


def timed_out(step: PlannedStep) -> str:
    return f"TimeoutError: timed out after {step.timeout_s:g}s"


def bounded(ctx: Context, sleep: Callable[[float], None]) -> Callable[[float], None]:
    """``sleep``, never past the context's deadline."""

    def nap(seconds: float) -> None:
        left = ctx.remaining()
        sleep(seconds if left is None else min(seconds, left))

    return nap


class _NoTimeLeft(stop_base):
    """Stop retrying when the next attempt would start past the context's deadline."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def __call__(self, state: RetryCallState) -> bool:
        deadline = self.ctx.deadline
        return deadline is not None and self.ctx.clock() + (state.upcoming_sleep or 0) >= deadline


def retrying(
    retries: int,
    ctx: Context,
    sleep: Callable[[float], None],
    before_sleep: Callable[[RetryCallState], None] | None = None,
) -> Retrying:
    """Retries of transient errors after a failed first attempt: exponential backoff with jitter
    (2 s, 4 s... up to 30 s), at most ``retries``, and none that would start past the deadline."""
    return Retrying(
        stop=stop_after_attempt(retries) | _NoTimeLeft(ctx),
        wait=BACKOFF,
        retry=retry_if_exception_type(TransientProviderError),
        sleep=bounded(ctx, sleep),
        before_sleep=before_sleep,
        reraise=True,
    )


class StepRunner:
    """Runs steps for one run; shared by its worker threads."""

    def __init__(
        self,
        run_id: str,
        registry: Registry,
        recorder: Recorder,
        contexts: Contexts,
        options: Options,
        keeper: LeaseKeeper,
    ) -> None:
        self.run_id = run_id
        self.registry = registry
        self.recorder = recorder
        self.contexts = contexts
        self.options = options
        self.keeper = keeper

    def run(self, step: PlannedStep, record: StepRecord, task: Task) -> Outcome:
        """Run one step to its end; MutedError or StoppedError when the run took it out of its hands."""
        if step.skipped:
            task.emit("step_skipped", reason=step.skip_reason or "")
            return True, ""
        try:
            if step.kind == "verify":
                return self._poll(step, record, task)
            return self._action(step, record, task)
        except LeaseLostError as exc:
            self.recorder.fail(exc)
            raise StoppedError from exc

    # --- the parts of a step -------------------------------------------------------------------

    def _begin(
        self, step: PlannedStep, record: StepRecord, task: Task, cloud: str | None, waiting_on: str
    ) -> Context:
        """Journal the start (unless a resumed step had started) and make its context."""
        deadline = self.options.clock() + step.timeout_s
        if record.state not in ("started", "applying"):  # else: a resumed step, started already
            retry = {"retry": True} if record.state == "failed" else {}
            task.emit("step_started", waiting_on=waiting_on, **retry)
        task.deadline = deadline  # where the run loop stops waiting for it
        return self.contexts.make(self.run_id, step.id, step.site, cloud, deadline, self.guard(task))

    def guard(self, task: Task) -> Callable[[], None]:
        """What a step's cloud calls check first: the lease, and that the run still waits for it."""

        def check() -> None:
            self.keeper.check()
            if task.cancelled:
                raise DeadlineError(f"{task.step}: the run gave up on it; no further cloud call is made")
            if self.recorder.failure is not None:  # a journal write failed: nothing more goes out
                raise StoppedError

        return check

    def _action(self, step: PlannedStep, record: StepRecord, task: Task) -> Outcome:
        action = self.registry.action(step.action)
        task.applying = record.has_snapshot  # a resumed step whose change may have happened
        ctx = self._begin(step, record, task, action.cloud, "read")
        try:
            with active(ctx):
                params = action.parse(self.contexts.live(ctx, step.params))  # secrets: now, in memory
                if record.has_snapshot:  # its change may have happened (a crash, a timeout)
                    if action.verifiable and action.verify(ctx, params):
                        task.emit("step_succeeded", attempts=record.attempts, recovered=True)
                        return True, ""
                    before = record.before
                else:
                    for attempt in retrying(step.retries + 1, ctx, self.options.sleep):
                        with attempt:  # a throttled or timed-out read is read again, in time
                            ctx.check_call()
                            before = action.read(ctx, params)
        except (MutedError, StoppedError, LeaseLostError):
            raise
        except DeadlineError:
            error = timed_out(step) + " while reading the current state"
            return self._failed(task, step, error, record.attempts, record.has_snapshot)
        except Exception as exc:  # reading the state before the change failed: nothing changed
            error = f"{type(exc).__name__}: {exc}"
            return self._failed(task, step, error, record.attempts, record.has_snapshot)
        self.keeper.check()
        task.emit("apply_started", before=before, attempt=record.attempts + 1)
        return self._attempts(step, task, action, params, ctx, record.attempts)

    def _attempts(
        self, step: PlannedStep, task: Task, action: Any, params: Any, ctx: Context, before: int
    ) -> Outcome:
        verify = None if action.apply_verifies or not action.verifiable else action.verify

        def once() -> JsonValue:
            ctx.check_call()  # the deadline and the lease, before the change
            with active(ctx):
                result: JsonValue = action.apply(ctx, params)
                if verify is not None and not verify(ctx, params):
                    raise TransientProviderError("applied, but the desired state is not reached yet")
            return result

        attempts = 1
        try:
            try:  # the first attempt needs no retry machinery
                result = once()
            except TransientProviderError as exc:
                if step.retries == 0:
                    raise
                self._attempt_failed(task, before + 1, exc)
                retrying = self._retrying(step, task, ctx, before)
                self._sleep(ctx, FIRST_BACKOFF_S + random.uniform(0, 1))
                try:
                    result = retrying(once)
                finally:
                    attempts = 1 + int(retrying.statistics.get("attempt_number", 1))
        except (MutedError, StoppedError, LeaseLostError):
            raise
        except DeadlineError:
            return self._failed(task, step, timed_out(step), before + attempts, True)
        except TransientProviderError as exc:  # out of retries or of time: it may have happened
            return self._failed(task, step, f"{type(exc).__name__}: {exc}", before + attempts, True)
        except FailoverError as exc:
            return self._failed(task, step, f"{type(exc).__name__}: {exc}", before + attempts, False)
        except Exception as exc:  # a provider bug must not leave the journal silent
            error = f"unexpected {type(exc).__name__}: {exc}"
            return self._failed(task, step, error, before + attempts, True)
        task.emit("step_succeeded", attempts=before + attempts, result=result)
        return True, ""

    def _retrying(self, step: PlannedStep, task: Task, ctx: Context, before: int) -> Retrying:
        def journal(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self._attempt_failed(task, before + 1 + state.attempt_number, exc)

        return retrying(step.retries, ctx, self.options.sleep, journal)

    def _sleep(self, ctx: Context, seconds: float) -> None:
        bounded(ctx, self.options.sleep)(seconds)

    def _attempt_failed(self, task: Task, attempt: int, exc: BaseException | None) -> None:
        task.emit(
            "attempt_failed",
            attempt=attempt,
            error=f"{type(exc).__name__}: {exc}",
            transient=isinstance(exc, TransientProviderError),
        )

    def _poll(self, step: PlannedStep, record: StepRecord, task: Task) -> Outcome:
        """A verify check: asked every ``interval`` until it passes or its timeout runs out."""
        check = self.registry.check(step.action)
        ctx = self._begin(step, record, task, check.cloud, "check")
        try:
            with active(ctx):
                params = check.parse(self.contexts.live(ctx, step.params))
        except (MutedError, StoppedError, LeaseLostError):
            raise
        except Exception as exc:  # a secret it needs cannot be read, or a parameter is wrong
            return self._failed(task, step, f"{type(exc).__name__}: {exc}", record.attempts, False)
        interval = step.interval_s or 2.0
        asked, last = 0, "never answered"
        while True:
            try:
                ctx.check_call()
                asked += 1
                with active(ctx):
                    seen = check.run(ctx, params)
                if seen.ok:
                    task.emit("step_succeeded", attempts=asked, result=seen.observed)
                    return True, ""
                last = f"{seen.message} (observed {seen.observed!r})"
            except (MutedError, StoppedError, LeaseLostError):
                raise
            except DeadlineError:
                break
            except TransientProviderError as exc:
                last = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # denied, invalid, missing: asking again will not help
                return self._failed(task, step, f"{type(exc).__name__}: {exc}", asked, False)
            left = ctx.remaining() or 0.0
            if left <= 0:
                break
            self.options.sleep(min(interval, left))
        why = f"not passed after {step.timeout_s:g}s, asked {asked} times every {interval:g}s: {last}"
        return self._failed(task, step, f"TimeoutError: {why}", asked, False)

    def _failed(self, task: Task, step: PlannedStep, error: str, attempts: int, in_doubt: bool) -> Outcome:
        task.emit(
            "step_failed",
            error=error,
            attempts=attempts,
            best_effort=step.best_effort,
            **({"in_doubt": True} if in_doubt else {}),
        )
        return step.best_effort, error
