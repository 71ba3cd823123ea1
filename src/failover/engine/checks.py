"""Read-only questions, asked at once and each within its own timeout: a run's preflight, the
readiness of ``failover check``, and the live reads of ``plan --sandbox``.

A check that does not answer in time has failed; a best-effort one (on a source site that is
down) is recorded as such and never holds the plan past its own timeout.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from pydantic import JsonValue

from failover.engine.calls import TICK_S, Call
from failover.engine.contexts import Contexts
from failover.engine.interrupt import Interrupt
from failover.engine.lease import LeaseKeeper
from failover.engine.options import Options
from failover.engine.recorder import Recorder, StoppedError
from failover.engine.workers import Workers
from failover.errors import LeaseLostError
from failover.plan import Plan, PlannedCheck
from failover.providers import default_registry
from failover.providers.base import CheckResult, Context, Registry, active

I = TypeVar("I")  # noqa: E741
R = TypeVar("R")
READ_TIMEOUT_S = 30.0  # a live read of plan --sandbox, at most


def ask(
    registry: Registry, contexts: Contexts, make: Callable[[str | None], Context], check: PlannedCheck
) -> CheckResult:
    """Run one check; a check that cannot answer (an error, a bad parameter, a secret it needs
    that cannot be read) has not passed."""
    try:
        impl = registry.check(check.check)
        ctx = make(impl.cloud)
        with active(ctx):
            return impl.run(ctx, impl.parse(contexts.live(ctx, check.params)))
    except LeaseLostError:  # not the check's answer: the run may not go on
        raise
    except Exception as exc:
        return CheckResult(False, None, f"{type(exc).__name__}: {exc}")


def ask_in_run(
    registry: Registry, contexts: Contexts, keeper: LeaseKeeper, check: PlannedCheck, deadline: float
) -> CheckResult:
    """Run one check of a run (preflight or stop condition), guarded by the run's lease."""

    def make(cloud: str | None) -> Context:
        return contexts.make(keeper.run_id, check.id, check.site, cloud, deadline, keeper.check)

    return ask(registry, contexts, make, check)


def preflight(
    plan: Plan,
    options: Options,
    registry: Registry,
    recorder: Recorder,
    contexts: Contexts,
    keeper: LeaseKeeper,
    interrupt: Interrupt,
) -> list[str] | None:
    """A run's preflight: every check at once, each within its timeout, each answer journaled.
    What failed (and is not best-effort), or None when an interruption ended it; nothing is
    changed either way."""
    failed: list[str] = []
    asked = []
    for check in plan.preflight:
        reason = options.skip_checks.get(check.id)
        if check.skipped or reason is not None:
            recorder.emit("check_skipped", check=check.id, reason=reason or check.skip_reason or "")
        else:
            asked.append(check)

    def one(check: PlannedCheck, deadline: float) -> CheckResult:
        return ask_in_run(registry, contexts, keeper, check, deadline)

    def answered(check: PlannedCheck, seen: CheckResult | None) -> None:
        seen = seen or timed_out(check)
        kind = "check_passed" if seen.ok else "check_failed"
        recorder.emit(
            kind, check=check.id, observed=seen.observed, message=seen.message, best_effort=check.best_effort
        )
        if not seen.ok and not check.best_effort:
            failed.append(f"{check.id} at {check.site}: {seen.message} (observed {seen.observed!r})")

    try:
        if not ask_all(
            asked,
            lambda c: c.timeout_s,
            one,
            options.clock,
            lambda: interrupt.requested,
            answered,
            recorder.publish,  # each answer is shown as it comes, not with the last
        ):
            return None
    except LeaseLostError as exc:
        recorder.fail(exc)
        raise StoppedError from exc
    return sorted(failed)


def timed_out(check: PlannedCheck) -> CheckResult:
    return CheckResult(False, None, f"TimeoutError: no answer within {check.timeout_s:g}s")


def ask_all(
    items: Sequence[I],
    timeout_of: Callable[[I], float],
    ask_one: Callable[[I, float], R],
    clock: Callable[[], float],
    give_up: Callable[[], bool],
    answered: Callable[[I, R | None], None],
    between: Callable[[], None] = lambda: None,
) -> bool:
    """Ask ``ask_one(item, deadline)`` of every item at once; ``answered(item, result)`` as each
    answers, with None for one that ran out of time (it is not waited for any longer), and
    ``between()`` after each look at them. False when ``give_up()`` ended the wait first."""
    workers = Workers("failover-check")
    wake = threading.Event()
    pending: list[tuple[I, Call[R], float]] = []
    for item in items:
        deadline = clock() + timeout_of(item)
        pending.append((item, Call(workers, partial(ask_one, item, deadline), wake), deadline))
    try:
        while pending:
            still = []
            for item, call, deadline in pending:
                if call.done.is_set():
                    answered(item, call.result())
                elif clock() >= deadline:
                    answered(item, None)
                else:
                    still.append((item, call, deadline))
            pending = still
            between()
            if pending and give_up():
                return False
            if pending:
                nearest = min(deadline for _, _, deadline in pending) - clock()
                wake.wait(max(0.0, min(nearest, TICK_S)))
                wake.clear()
    finally:
        workers.close()
    return True


@dataclass(frozen=True)
class Readiness:
    """What one preflight check saw when asked outside a run (``failover check``)."""

    id: str
    check: str
    site: str
    ok: bool
    observed: JsonValue
    message: str
    skipped: str | None = None  # why it was not asked
    best_effort: bool = False  # a failure does not make the plan not ready (its site may be down)

    @property
    def blocking(self) -> bool:
        """Whether this makes the plan not ready."""
        return not self.ok and not self.best_effort and self.skipped is None


def readiness(
    plan: Plan, state_dir: str | Path, options: Options | None = None, *, registry: Registry | None = None
) -> list[Readiness]:
    """Every preflight check of the plan, asked now, at once, each within its timeout, in the
    plan's order. Read-only: nothing is journaled, nothing is locked. Checks skipped by the plan
    or by ``options.skip_checks`` are reported as skipped."""
    registry = registry or default_registry()
    options = options or Options()
    contexts = Contexts(plan, options, Path(state_dir))
    found: dict[str, Readiness] = {}
    asked = []
    for check in plan.preflight:
        reason = options.skip_checks.get(check.id) or (
            check.skip_reason or "skipped" if check.skipped else None
        )
        if reason is None:
            asked.append(check)
        else:
            found[check.id] = Readiness(
                check.id, check.check, check.site, True, None, "", reason, check.best_effort
            )

    def one(check: PlannedCheck, deadline: float) -> CheckResult:
        return ask(
            registry,
            contexts,
            lambda cloud: contexts.make("check", check.id, check.site, cloud, deadline),
            check,
        )

    def answered(check: PlannedCheck, seen: CheckResult | None) -> None:
        seen = seen or timed_out(check)
        found[check.id] = Readiness(
            check.id, check.check, check.site, seen.ok, seen.observed, seen.message, None, check.best_effort
        )

    ask_all(asked, lambda c: c.timeout_s, one, options.clock, lambda: False, answered)
    return [found[c.id] for c in plan.preflight]


def live_reads(
    plan: Plan, state_dir: str | Path, options: Options | None = None, *, registry: Registry | None = None
) -> dict[str, JsonValue]:
    """What each step of the plan that runs would change looks like now (its action's ``read``),
    by step id; a read that fails or does not answer in time gives that as text. Read-only."""
    registry = registry or default_registry()
    options = options or Options()
    contexts = Contexts(plan, options, Path(state_dir))
    steps = [s for s in plan.steps if not s.skipped and s.kind == "action"]
    seen: dict[str, JsonValue] = {}

    def one(step_index: int, deadline: float) -> tuple[JsonValue]:
        step = steps[step_index]
        try:
            action = registry.action(step.action)
            ctx = contexts.make("plan", step.id, step.site, action.cloud, deadline)
            with active(ctx):
                return (action.read(ctx, action.parse(contexts.live(ctx, step.params))),)
        except Exception as exc:  # a read that cannot answer is shown, not raised
            return (f"cannot read: {type(exc).__name__}: {exc}",)

    def answered(step_index: int, value: tuple[JsonValue] | None) -> None:
        step = steps[step_index]
        seen[step.id] = (
            value[0] if value is not None else f"cannot read: no answer within {READ_TIMEOUT_S:g}s"
        )

    timeout = lambda i: min(steps[i].timeout_s, READ_TIMEOUT_S)  # noqa: E731
    ask_all(range(len(steps)), timeout, one, options.clock, lambda: False, answered)
    return {s.id: seen[s.id] for s in steps}
