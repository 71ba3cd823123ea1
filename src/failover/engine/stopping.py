"""Stop conditions (a runbook's ``stop_when:``): checks asked again and again while the steps run.
The first that fails is journaled (``stop_condition``: which check, what it saw) and stops the
forward pass as a failed step would: before a pivot the run rolls back, after one it halts."""

from __future__ import annotations

import threading
from collections.abc import Callable

from failover.engine.checks import ask_all, ask_in_run, timed_out
from failover.engine.contexts import Contexts
from failover.engine.lease import LeaseKeeper
from failover.engine.options import Options
from failover.engine.recorder import Recorder
from failover.plan import Plan, PlannedCheck
from failover.providers.base import CheckResult, Registry


class StopWatch:
    """Asks ``plan.stop_when`` every ``options.stop_every`` seconds in a thread of its own until
    it exits; on the first failure, journals it and calls ``stop(check id, why)``."""

    def __init__(
        self,
        plan: Plan,
        options: Options,
        registry: Registry,
        recorder: Recorder,
        contexts: Contexts,
        keeper: LeaseKeeper,
        stop: Callable[[str, str], None],
    ) -> None:
        self.plan, self.options, self.registry = plan, options, registry
        self.recorder, self.contexts, self.keeper = recorder, contexts, keeper
        self.stop, self.every = stop, options.stop_every
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="failover-stop-when", daemon=True)

    def __enter__(self) -> StopWatch:
        if self.plan.stop_when:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed.set()
        if self.thread.is_alive():
            self.thread.join(timeout=max(c.timeout_s for c in self.plan.stop_when) + 1)

    def _watch(self) -> None:
        while not self.closed.is_set():
            bad = self._ask()
            if bad is not None:
                check, seen = bad
                why = (
                    f"stop condition {check.id} at {check.site}: {seen.message} (observed {seen.observed!r})"
                )
                self.recorder.emit(
                    "stop_condition",
                    check=check.id,
                    site=check.site,
                    observed=seen.observed,
                    message=seen.message,
                )
                self.stop(f"stop_when {check.id}", why)
                return
            self.closed.wait(self.every)

    def _ask(self) -> tuple[PlannedCheck, CheckResult] | None:
        failed: list[tuple[PlannedCheck, CheckResult]] = []

        def one(check: PlannedCheck, deadline: float) -> CheckResult:
            return ask_in_run(self.registry, self.contexts, self.keeper, check, deadline)

        def answered(check: PlannedCheck, seen: CheckResult | None) -> None:
            seen = seen or timed_out(check)
            if not seen.ok:
                failed.append((check, seen))

        ask_all(
            self.plan.stop_when, lambda c: c.timeout_s, one, self.options.clock, self.closed.is_set, answered
        )
        return failed[0] if failed and not self.closed.is_set() else None
