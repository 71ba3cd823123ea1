"""The executor: runs a reviewed plan exactly, as fast as its dependencies allow, and safely.

- Preflight: every preflight check runs (in parallel) before the first mutation; one failure
  means zero mutations and a refusal.
- Scheduling: a step starts as soon as every step it waits for is done; no waves or barriers.
  A global concurrency limit and per-provider limits bound how many run at once.
- Approvals before pivots and ``approval: true`` steps; no answer in time means no.
- Retries of transient errors with exponential backoff and jitter, bounded by retries and the
  step's timeout; a timed-out attempt is abandoned.
- Failure: ``rollback`` compensates completed reversible steps in reverse dependency order, each
  once; after a pivot, or with ``halt``, the run halts for a person.
- The journal is written before and after every side effect; a killed run resumes where it was.
"""

from __future__ import annotations

import hashlib
import heapq
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import structlog
from pydantic import JsonValue
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_random,
)

from failover.errors import (
    FailoverError,
    LeaseLostError,
    PlanError,
    RefusedError,
    TransientProviderError,
)
from failover.journal import Event, Journal, Lease, RunState, StepRecord
from failover.plan import Plan, PlannedCheck, PlannedStep
from failover.providers import default_registry
from failover.providers.base import CheckResult, ClientCache, Context, Permission, Placement, Registry
from failover.redact import redact

log = structlog.get_logger("failover.executor")

OnFailure = Literal["rollback", "halt"]
EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 3
DEFAULT_LEASE_TTL = 30.0
DEFAULT_PROVIDER_LIMITS: Mapping[str, int] = {"aws": 10, "gcp": 10}
MAX_WORKERS = 512
FIRST_BACKOFF_S = 1.0  # before the second attempt, plus up to 1 s of jitter; doubling after


@dataclass(frozen=True, slots=True)
class Approval:
    """An answer to an approval request: granted or not, by whom, and why."""

    granted: bool
    by: str
    reason: str = ""


Approver = Callable[[PlannedStep, float], Approval]
"""Asked for an approval of a step, with the seconds it may take to answer."""


@dataclass(frozen=True)
class RunResult:
    """How a run ended."""

    run_id: str
    status: str
    exit_code: int
    message: str
    state: RunState

    @property
    def ok(self) -> bool:
        return self.exit_code == EXIT_OK


@dataclass(frozen=True)
class Options:
    """How to run: failure policy, approvals, limits, skipped checks, and injected time."""

    on_failure: OnFailure = "rollback"
    auto_approve: bool = False
    approve_steps: frozenset[str] = frozenset()
    approver: Approver | None = None
    concurrency: int | None = None
    provider_limits: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PROVIDER_LIMITS))
    skip_checks: Mapping[str, str] = field(default_factory=dict)
    on_event: Callable[[Event], None] | None = None
    lease_ttl: float = DEFAULT_LEASE_TTL
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    who: str = "failover"
    sim_speed: float = 1.0  # simulated latencies run this many times faster (drills and demos)
    overrides: Mapping[str, Mapping[str, JsonValue]] = field(default_factory=dict)
    """Per cloud, settings that replace the sites' own (``{"aws": {"endpoint_url": ...}}``)."""
    clients: ClientCache | None = None  # cloud clients to share (tests stub them); default: one per run

    def journaled(self) -> dict[str, object]:
        """The options worth recording in run_started (and reused on resume)."""
        return {
            "on_failure": self.on_failure,
            "auto_approve": self.auto_approve,
            "approve_steps": sorted(self.approve_steps),
            "concurrency": self.concurrency,
            "skip_checks": dict(self.skip_checks),
            "by": self.who,
        }


def execute(
    plan: Plan,
    state_dir: str | Path,
    options: Options | None = None,
    *,
    registry: Registry | None = None,
    run_id: str | None = None,
) -> RunResult:
    """Run ``plan``; refuse (raise RefusedError) if it was already applied, its runbook changed since,
    or another run holds an overlapping lock."""
    options = options or Options()
    journal = Journal(Path(state_dir))
    _refuse_stale(plan, journal)
    unknown = sorted(set(options.skip_checks) - {c.id for c in plan.preflight})
    if unknown:
        raise PlanError(f"--skip-check: no preflight check {unknown[0]!r} in this plan")
    run_id = run_id or _new_run_id()
    lease = journal.acquire(run_id, _resources(plan), options.lease_ttl)
    journal.create_run(run_id, plan)
    run = _Run(plan, journal, lease, options, registry or default_registry(), Path(state_dir))
    return run.start()


def resume(
    run_id: str,
    state_dir: str | Path,
    options: Options | None = None,
    *,
    registry: Registry | None = None,
    rollback: bool = False,
    on_failure: OnFailure | None = None,
) -> RunResult:
    """Continue a run whose process died, or that halted, from what its journal says: forward
    (a failed step is tried again), or with ``rollback`` by compensating what it completed. With
    ``rollback``, a run that succeeded is undone too, unless it went past a pivot (refused). A
    run that ended otherwise is left as it is. ``on_failure`` replaces the recorded policy.
    """
    journal = Journal(Path(state_dir))
    plan = journal.run_plan(run_id)
    state = RunState.replay(run_id, journal.events(run_id))
    if rollback and state.status == "succeeded":
        _refuse_undo(journal, run_id, plan, state)
    if state.finished and state.status != "halted" and not (rollback and state.status == "succeeded"):
        return RunResult(run_id, state.status, state.exit_code or 0, state.message, state)
    merged = _with_recorded(options, state.options or {})
    if on_failure is not None:
        merged = replace(merged, on_failure=on_failure)
    lease = _take_over(journal, run_id, _resources(plan), merged)
    run = _Run(plan, journal, lease, merged, registry or default_registry(), Path(state_dir))
    return run.start(resumed=state, rollback=rollback)


def _refuse_undo(journal: Journal, run_id: str, plan: Plan, state: RunState) -> None:
    """Undoing a run that succeeded puts back what its steps changed, so it must be able to
    (no pivot passed, every completed step reversible) and nothing may have changed it since
    (no later run on the same services, whose changes it would overwrite)."""
    done = [s for s in plan.steps if s.kind == "action" and state.step(s.id).state == "succeeded"]
    passed = [s.id for s in done if s.pivot]
    if passed:
        raise RefusedError(
            f"run {run_id} went past pivot {', '.join(passed)}: it cannot be undone; "
            "fail back with the reverse plan (failover drill/plan --from and --to swapped)"
        )
    stuck = [s.id for s in done if not s.reversible]
    if stuck:
        raise RefusedError(
            f"run {run_id} cannot be undone: {', '.join(stuck)} cannot be compensated "
            "(irreversible, or rollback: none); fail back with the reverse plan"
        )
    mine = set(_resources(plan))
    runs = [r[0] for r in journal.runs()]
    for later in runs[runs.index(run_id) + 1 :]:
        shared = sorted(mine & set(_resources(journal.run_plan(later))))
        if shared:
            raise RefusedError(
                f"run {run_id} cannot be undone: run {later}, started after it, acted on "
                f"{', '.join(shared)}; undoing would overwrite what it did"
            )


def _with_recorded(given: Options | None, recorded: Mapping[str, object]) -> Options:
    """Options for a resumed run: its recorded policy and approvals, plus what is given now
    (more approvals, callbacks, limits, injected time)."""
    base = given or Options()
    steps = recorded.get("approve_steps")
    skips = recorded.get("skip_checks")
    return replace(
        base,
        on_failure="halt" if recorded.get("on_failure") == "halt" else "rollback",
        auto_approve=base.auto_approve or bool(recorded.get("auto_approve")),
        approve_steps=base.approve_steps
        | (frozenset(str(s) for s in steps) if isinstance(steps, list) else frozenset()),
        skip_checks={
            **({str(k): str(v) for k, v in skips.items()} if isinstance(skips, dict) else {}),
            **base.skip_checks,
        },
    )


def _attempt_count(retrying: Retrying) -> int:
    return int(retrying.statistics.get("attempt_number", 1))


def _provider(step: PlannedStep) -> str:
    return step.action.split(".", 1)[0]


def _new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


def _resources(plan: Plan) -> tuple[str, ...]:
    return tuple(sorted(f"{plan.runbook.name}/{s.name}" for s in plan.services)) or (plan.runbook.name,)


def _refuse_stale(plan: Plan, journal: Journal) -> None:
    if plan.runbook.path:
        path = Path(plan.runbook.path)
        if path.exists():
            now = hashlib.sha256(path.read_bytes()).hexdigest()
            if now != plan.runbook.sha256:
                raise RefusedError(
                    f"runbook {path} changed since the plan was made (sha256 {plan.runbook.sha256[:12]}... "
                    f"then, {now[:12]}... now): make and review a new plan"
                )
    for run_id, *_ in journal.runs(plan.fingerprint):
        state = RunState.replay(run_id, journal.events(run_id))
        if state.status == "succeeded":
            raise RefusedError(f"plan {plan.fingerprint[:12]}... was already applied by run {run_id}")
        if not state.finished or state.status == "halted":
            raise RefusedError(
                f"plan {plan.fingerprint[:12]}... has a run that did not finish, {run_id} "
                f"({state.status}): `failover resume {run_id}` or `failover rollback {run_id}`"
            )


def _take_over(journal: Journal, run_id: str, resources: tuple[str, ...], options: Options) -> Lease:
    """Take the dead run's lease: at once if its process is known dead here, else once it expires."""
    deadline = time.monotonic() + options.lease_ttl + 1
    while True:
        try:
            return journal.acquire(run_id, resources, options.lease_ttl, take_over=True)
        except RefusedError:
            holder = journal.holder(resources)
            if holder is None or holder[0] != run_id or time.monotonic() > deadline:
                raise
            time.sleep(min(1.0, max(0.05, holder[2] - time.time())))


class _StopError(Exception):
    """Internal: the run must stop (lease lost)."""


class _AbandonedError(Exception):
    """Internal: a step's worker outlived its timeout; what it does next is not journaled."""


_SETTLING = frozenset({"step_succeeded", "step_failed", "step_skipped"})
# Events written (durably, with everything before them) before emit returns: those that a side
# effect, or the end of the run, waits for. The others are queued and become durable with the
# next of these, in order.
_BEFORE_SIDE_EFFECTS = frozenset(
    {
        "run_started",
        "run_resumed",
        "preflight_passed",
        "approval_requested",  # a person may take a while: let `failover status` see all before
        "step_started",
        "compensation_started",
        "run_finished",
    }
)


class _Contexts:
    """Makes the Context of each step and check of a plan: its site's placement (with the run's
    overrides), the clients shared by the run, and what the plan needs at that site."""

    def __init__(self, plan: Plan, options: Options, state_dir: Path) -> None:
        self.plan = plan
        self.options = options
        self.state_dir = state_dir
        self.clients = options.clients or ClientCache()
        self.needs: dict[tuple[str, str], tuple[Permission, ...]] = {}  # permissions per site, cloud

    def make(
        self, run_id: str, step_id: str, site: str, cloud: str | None, deadline: float | None = None
    ) -> Context:
        settings = self.settings(site, cloud)
        region, project = settings.get("region"), settings.get("project")
        return Context(
            run_id=run_id,
            step_id=step_id,
            placement=Placement(
                site=site,
                cloud=cloud,
                region=region if isinstance(region, str) else None,
                project=project if isinstance(project, str) else None,
            ),
            state_dir=self.state_dir,
            sleep=self.options.sleep,
            clock=self.options.clock,
            extras={"sim_speed": self.options.sim_speed},
            settings=settings,
            clients=self.clients,
            permissions=self.permissions(site, cloud),
            deadline=deadline,
        )

    def settings(self, site: str, cloud: str | None) -> dict[str, JsonValue]:
        """The site's placement for ``cloud``, from the plan's own description of its sites, with
        the run's overrides."""
        spec = self.plan.sites_by_name.get(site)
        where = getattr(spec, cloud, None) if spec is not None and cloud in ("aws", "gcp") else None
        if not isinstance(where, dict) or cloud is None:
            return {}
        return {**where, **self.options.overrides.get(cloud, {})}

    def permissions(self, site: str, cloud: str | None) -> tuple[Permission, ...]:
        """What the plan's steps and checks at ``site`` need in ``cloud``."""
        if cloud is None:
            return ()
        found = self.needs.get((site, cloud))
        if found is None:
            needed = self.plan.permissions(cloud, site)
            found = self.needs[(site, cloud)] = tuple(
                Permission(p.cloud, p.action, p.resource) for p in needed
            )
        return found


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


def _ask(registry: Registry, ctx: Callable[[str | None], Context], check: PlannedCheck) -> CheckResult:
    """Run one check; a check that cannot answer (an error, a bad parameter) has not passed."""
    try:
        impl = registry.check(check.check)
        return impl.run(ctx(impl.cloud), impl.parse(check.params))
    except (_StopError, _AbandonedError):
        raise
    except Exception as exc:
        return CheckResult(False, None, f"{type(exc).__name__}: {exc}")


def readiness(
    plan: Plan, state_dir: str | Path, options: Options | None = None, *, registry: Registry | None = None
) -> list[Readiness]:
    """Every preflight check of the plan, asked now, in parallel, in the plan's order. Read-only:
    nothing is journaled, nothing is locked. Checks skipped by the plan or by
    ``options.skip_checks`` are reported as skipped."""
    registry = registry or default_registry()
    options = options or Options()
    contexts = _Contexts(plan, options, Path(state_dir))

    def one(check: PlannedCheck) -> Readiness:
        reason = options.skip_checks.get(check.id) or (
            check.skip_reason or "skipped" if check.skipped else None
        )
        if reason is not None:
            return Readiness(check.id, check.check, check.site, True, None, "", reason, check.best_effort)
        seen = _ask(registry, lambda cloud: contexts.make("check", check.id, check.site, cloud), check)
        return Readiness(
            check.id, check.check, check.site, seen.ok, seen.observed, seen.message, None, check.best_effort
        )

    checks = list(plan.preflight)
    with ThreadPoolExecutor(
        max_workers=max(1, min(32, len(checks))), thread_name_prefix="failover-check"
    ) as pool:
        return list(pool.map(one, checks))


def live_reads(
    plan: Plan, state_dir: str | Path, options: Options | None = None, *, registry: Registry | None = None
) -> dict[str, JsonValue]:
    """What each step of the plan that runs would change looks like now (its action's ``read``),
    by step id; a read that fails gives its error as text. Read-only: nothing is journaled."""
    registry = registry or default_registry()
    contexts = _Contexts(plan, options or Options(), Path(state_dir))
    seen: dict[str, JsonValue] = {}
    for step in plan.steps:
        if step.skipped or step.kind != "action":
            continue
        action = registry.action(step.action)
        try:
            ctx = contexts.make("plan", step.id, step.site, action.cloud)
            seen[step.id] = action.read(ctx, action.parse(step.params))
        except Exception as exc:  # a read that cannot answer is shown, not raised
            seen[step.id] = f"cannot read: {type(exc).__name__}: {exc}"
    return seen


class _Run:
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
        self.lease = lease
        self.options = options
        self.registry = registry
        self.state_dir = state_dir
        self.steps = plan.steps_by_id
        self.lock = threading.Lock()
        self.lost: LeaseLostError | None = None
        self.stop_heartbeat = threading.Event()
        self.log = log.bind(run_id=lease.run_id, runbook=plan.runbook.name)
        self.wake = threading.Event()  # the scheduling thread has a deadline or an ending to look at
        self.deadlines: list[tuple[float, str]] = []  # heap of (when it times out, running step)
        self.settled: set[str] = set()  # steps whose outcome is journaled
        self.abandoned: set[str] = set()  # steps given up on after their timeout; workers muted
        self.retryers: dict[tuple[int, float], Retrying] = {}
        self.contexts = _Contexts(plan, options, state_dir)

    # --- journal -------------------------------------------------------------------------------

    def emit(self, kind: str, step: str | None = None, /, **data: object) -> None:
        if self.lost is not None:
            raise _StopError
        if step is not None:
            with self.lock:
                if step in self.abandoned or (kind in _SETTLING and step in self.settled):
                    raise _AbandonedError(step)  # it timed out and was abandoned: stay silent
                if kind in _SETTLING:
                    self.settled.add(step)
        if kind not in _BEFORE_SIDE_EFFECTS:  # durable with the next event a side effect waits for
            self.journal.post(self.lease, kind, step, redact(data), self._posted)
            return
        try:
            event = self.journal.append(self.lease, kind, step, redact(data))
        except LeaseLostError as exc:
            self.lost = exc
            raise _StopError from exc
        self._written(event)

    def _posted(self, event: Event | None, error: BaseException | None) -> None:
        if isinstance(error, LeaseLostError):
            self.lost = error
        elif event is not None:
            self._written(event)

    def _written(self, event: Event) -> None:
        site = self.steps[event.step].site if event.step in self.steps else None
        data = {k: v for k, v in event.data.items() if k != "before"}
        self.log.info(event.kind, step=event.step, site=site, **data)
        if self.options.on_event is not None:
            self.options.on_event(event)

    def _heartbeat(self) -> None:
        interval = max(0.05, self.options.lease_ttl / 3)
        while not self.stop_heartbeat.wait(interval) and self.lost is None:
            try:
                self.lease = self.journal.renew(self.lease, self.options.lease_ttl)  # and commits the queue
            except LeaseLostError as exc:
                self.lost = exc

    # --- the run -------------------------------------------------------------------------------

    def start(self, resumed: RunState | None = None, rollback: bool = False) -> RunResult:
        beat = threading.Thread(target=self._heartbeat, name="failover-heartbeat", daemon=True)
        beat.start()
        try:
            return self._run(resumed, rollback)
        except _StopError:
            message = f"run {self.lease.run_id} stopped: {self.lost}"
            self.log.error("run_stopped", reason=str(self.lost))
            return self._result(override=("lost", EXIT_REFUSED, message))
        finally:
            self.stop_heartbeat.set()
            beat.join()
            if self.lost is None:
                self.journal.release(self.lease)

    def _run(self, resumed: RunState | None, rollback: bool) -> RunResult:
        if resumed is None:
            self.emit(
                "run_started",
                fingerprint=self.plan.fingerprint,
                runbook=self.plan.runbook.name,
                scenario=self.plan.scenario.model_dump(mode="json", by_alias=True),
                **self.options.journaled(),
            )
            state = self._state()
        else:
            self.emit("run_resumed", owner=self.lease.owner, rollback=rollback)
            state = resumed
        if rollback or state.rollback_started:
            if state.status == "succeeded" or state.undo:  # undoing a failover that succeeded
                return self._rollback(state, "undo of the failover requested", EXIT_OK, undo=True)
            return self._rollback(state, "requested" if rollback else "resumed")
        if not state.preflight_done:
            failed = self._preflight()
            if failed:
                message = "preflight failed, nothing was changed: " + "; ".join(failed)
                return self._finish("refused", EXIT_REFUSED, message)
            self.emit("preflight_passed")
        failure = self._schedule(self._state())
        if failure is None:
            return self._finish("succeeded", EXIT_OK, "every step succeeded")
        return self._on_failure(*failure)

    def _state(self) -> RunState:
        self.journal.flush()  # what was queued is part of the story
        return RunState.replay(self.lease.run_id, self.journal.events(self.lease.run_id))

    def _finish(self, status: str, code: int, message: str) -> RunResult:
        self.emit("run_finished", status=status, exit_code=code, message=message)
        return self._result()

    def _result(self, override: tuple[str, int, str] | None = None) -> RunResult:
        state = self._state()
        status, code, message = override or (state.status, state.exit_code or 0, state.message)
        return RunResult(self.lease.run_id, status, code, message, state)

    def _context(
        self, step_id: str, site: str, action_cloud: str | None, timeout_s: float | None = None
    ) -> Context:
        deadline = None if timeout_s is None else self.options.clock() + timeout_s
        return self.contexts.make(self.lease.run_id, step_id, site, action_cloud, deadline)

    # --- preflight -----------------------------------------------------------------------------

    def _preflight(self) -> list[str]:
        """Run every preflight check in parallel; return what failed (empty when all passed)."""
        checks = list(self.plan.preflight)
        failed: list[str] = []
        with ThreadPoolExecutor(
            max_workers=max(1, min(32, len(checks))), thread_name_prefix="failover-check"
        ) as pool:
            futures = {pool.submit(self._one_check, c): c for c in checks}
            for future in futures:
                outcome = future.result()
                if outcome:
                    failed.append(outcome)
        return sorted(failed)

    def _one_check(self, check: PlannedCheck) -> str | None:
        reason = self.options.skip_checks.get(check.id)
        if check.skipped or reason is not None:
            self.emit("check_skipped", check=check.id, reason=reason or check.skip_reason or "")
            return None
        result = _ask(self.registry, lambda cloud: self._context(check.id, check.site, cloud), check)
        ok, observed, message = result.ok, result.observed, result.message
        kind = "check_passed" if ok else "check_failed"
        self.emit(kind, check=check.id, observed=observed, message=message, best_effort=check.best_effort)
        if ok or check.best_effort:
            return None
        return f"{check.id} at {check.site}: {message} (observed {observed!r})"

    # --- scheduling ----------------------------------------------------------------------------

    def _schedule(self, state: RunState) -> tuple[str, str] | None:
        """Run every step not yet done; return (step id, why) of the first failure, or None.

        A worker that finishes a step starts what became ready itself: the first ready step in
        the same thread (no hand-off on a chain), the others in new workers. This thread only
        watches deadlines: a step still running at its deadline is journaled as failed and
        abandoned (its worker is muted: nothing it does later reaches the journal).
        """
        steps = self.plan.steps
        index = {s.id: i for i, s in enumerate(steps)}
        waiting = [len(s.after) for s in steps]
        dependents: list[list[int]] = [[] for _ in steps]
        for i, s in enumerate(steps):
            for dep in s.after:
                dependents[index[dep]].append(i)
        ready: list[int] = []

        def finish(i: int) -> None:
            for d in dependents[i]:
                waiting[d] -= 1
                if waiting[d] == 0:
                    heapq.heappush(ready, d)

        for i, s in enumerate(steps):
            if self._already_done(state.step(s.id)):
                finish(i)
        ready = [
            i for i, s in enumerate(steps) if waiting[i] == 0 and not self._already_done(state.step(s.id))
        ]
        heapq.heapify(ready)
        limit = self.options.concurrency or len(steps) or 1
        caps = self.options.provider_limits
        busy: dict[str, int] = {}
        held: list[int] = []  # ready, but their provider is at its limit
        running: set[int] = set()
        failure: list[tuple[str, str]] = []
        crashed: list[BaseException] = []
        sched = threading.Lock()
        pool = ThreadPoolExecutor(max_workers=min(limit, MAX_WORKERS), thread_name_prefix="failover-step")

        def take() -> int | None:
            """The next step to start, if the limits and the run's health allow one (under sched)."""
            while not failure and not crashed and ready and len(running) < limit:
                i = heapq.heappop(ready)
                provider = _provider(steps[i])
                if provider in caps and busy.get(provider, 0) >= caps[provider]:
                    held.append(i)
                    continue
                busy[provider] = busy.get(provider, 0) + 1
                running.add(i)
                return i
            return None

        def settle(i: int, outcome: tuple[bool, str] | BaseException) -> None:
            """Record how a step ended (under sched); a muted worker's late word is ignored."""
            if i not in running:
                return
            running.discard(i)
            busy[_provider(steps[i])] -= 1
            for h in held:
                heapq.heappush(ready, h)
            held.clear()
            if isinstance(outcome, BaseException):
                crashed.append(outcome)
            elif outcome[0]:
                finish(i)
            elif not failure:
                failure.append((steps[i].id, outcome[1]))

        def dispatch() -> None:
            """Start every step that may start now in a new worker (under sched)."""
            while (i := take()) is not None:
                pool.submit(work, i)
            if not running:
                self.wake.set()  # nothing runs and nothing more will start: the schedule is over

        def work(first: int) -> None:
            i: int | None = first
            while i is not None:
                try:
                    outcome: tuple[bool, str] | BaseException = self._step(steps[i], state.step(steps[i].id))
                except BaseException as exc:  # handed to the scheduling thread, which decides
                    outcome = exc
                with sched:
                    settle(i, outcome)
                    i = take()  # go on with the next ready step in this thread
                    dispatch()

        gave_up = False
        try:
            with sched:
                dispatch()
            while True:
                self.wake.wait(self._next_deadline())
                self.wake.clear()
                with sched:
                    if not running:
                        break
                    late = self._overdue(running, index)
                if late is None:
                    continue
                outcome = self._abandon(steps[late])
                if isinstance(outcome, _AbandonedError):
                    continue  # its worker settled it first
                gave_up = True
                with sched:
                    settle(late, outcome)
                    dispatch()
        finally:
            pool.shutdown(wait=not gave_up, cancel_futures=True)  # never wait for an abandoned step
        if crashed:
            raise crashed[0]
        return failure[0] if failure else None

    def _next_deadline(self) -> float | None:
        """Seconds until the earliest deadline of a running step, or None if there is none."""
        with self.lock:
            while self.deadlines and self.deadlines[0][1] in self.settled:
                heapq.heappop(self.deadlines)
            first = self.deadlines[0][0] if self.deadlines else None
        return None if first is None else max(0.0, first - self.options.clock())

    def _overdue(self, running: set[int], index: Mapping[str, int]) -> int | None:
        """A running step past its deadline, if any."""
        now = self.options.clock()
        with self.lock:
            for deadline, step_id in self.deadlines:
                if deadline <= now and step_id not in self.settled and index[step_id] in running:
                    return index[step_id]
        return None

    def _abandon(self, step: PlannedStep) -> tuple[bool, str] | BaseException:
        """Journal a timed-out step as failed and mute its worker."""
        error = f"TimeoutError: timed out after {step.timeout_s:g}s; the attempt was abandoned"
        try:
            self.emit("step_failed", step.id, error=error, best_effort=step.best_effort, abandoned=True)
        except _AbandonedError as exc:  # its worker settled it first: that report is on its way
            return exc
        with self.lock:
            self.abandoned.add(step.id)
        return step.best_effort, error

    @staticmethod
    def _already_done(rec: StepRecord) -> bool:
        return rec.state in ("succeeded", "skipped") or (rec.state == "failed" and rec.best_effort)

    # --- one step ------------------------------------------------------------------------------

    def _step(self, step: PlannedStep, record: StepRecord) -> tuple[bool, str]:
        if step.skipped:
            self.emit("step_skipped", step.id, reason=step.skip_reason or "")
            return True, ""
        if step.approval and record.approved_by is None and not self._approved(step):
            return False, "approval denied"
        try:
            apply, verify = self._prepare(step, record)
        except (_StopError, _AbandonedError):
            raise
        except Exception as exc:  # reading the state before the change failed: nothing changed
            return self._failed(step, f"{type(exc).__name__}: {exc}", attempts=0)
        if apply is None:
            return True, ""
        return self._attempts(step, apply, verify)

    def _prepare(
        self, step: PlannedStep, record: StepRecord
    ) -> tuple[Callable[[], JsonValue] | None, Callable[[], bool] | None]:
        """What one attempt of the step does, and how to verify it; (None, None) when the journal
        shows it already took effect. Journals step_started with the rollback snapshot."""
        if step.kind == "verify":
            check = self.registry.check(step.action)
            ctx = self._context(step.id, step.site, check.cloud, step.timeout_s)
            params = check.parse(step.params)
            self.emit("step_started", step.id, before=None)

            def attempt() -> JsonValue:
                result = check.run(ctx, params)
                if not result.ok:
                    raise TransientProviderError(f"{result.message} (observed {result.observed!r})")
                return result.observed

            return attempt, None
        action = self.registry.action(step.action)
        ctx = self._context(step.id, step.site, action.cloud, step.timeout_s)
        params = action.parse(step.params)
        if record.state == "started":  # in flight when the last process died
            if action.verifiable and action.verify(ctx, params):
                self.emit("step_succeeded", step.id, recovered=True)
                return None, None
        elif record.state == "failed":  # a halted run resumed: retry, keeping the first snapshot
            self.emit("step_started", step.id, before=record.before, retry=True)
        else:
            self.emit("step_started", step.id, before=action.read(ctx, params))
        verify = (lambda: action.verify(ctx, params)) if action.verifiable else None
        return (lambda: action.apply(ctx, params)), verify

    def _failed(self, step: PlannedStep, error: str, attempts: int) -> tuple[bool, str]:
        self.emit("step_failed", step.id, error=error, attempts=attempts, best_effort=step.best_effort)
        return step.best_effort, error

    def _approved(self, step: PlannedStep) -> bool:
        opts = self.options
        self.emit("approval_requested", step.id, timeout_s=step.approval_timeout_s, pivot=step.pivot)
        if opts.auto_approve or step.id in opts.approve_steps:
            answer = Approval(True, opts.who, "--auto-approve" if opts.auto_approve else "--approve")
        elif opts.approver is not None:
            answer = self._ask(opts.approver, step)
        else:
            answer = Approval(False, opts.who, "no approval given (use --approve STEP or --auto-approve)")
        kind = "approval_granted" if answer.granted else "approval_denied"
        self.emit(kind, step.id, by=answer.by, reason=answer.reason)
        return answer.granted

    @staticmethod
    def _ask(approver: Approver, step: PlannedStep) -> Approval:
        """The approver's answer, or a denial when it does not answer within the step's timeout."""
        answers: list[Approval] = []
        asking = threading.Thread(
            target=lambda: answers.append(approver(step, step.approval_timeout_s)),
            name=f"failover-approval-{step.id}",
            daemon=True,
        )
        asking.start()
        asking.join(step.approval_timeout_s)
        if answers:
            return answers[0]
        return Approval(False, "timeout", f"no answer within {step.approval_timeout_s:g}s")

    def _attempts(
        self, step: PlannedStep, apply: Callable[[], JsonValue], verify: Callable[[], bool] | None
    ) -> tuple[bool, str]:
        deadline = self.options.clock() + step.timeout_s
        with self.lock:
            earliest = not self.deadlines or deadline < self.deadlines[0][0]
            heapq.heappush(self.deadlines, (deadline, step.id))
        if earliest:
            self.wake.set()  # the scheduling thread must now wake up sooner
        attempts = 1
        try:
            try:  # the first attempt needs no retry machinery
                result = self._once(step, apply, verify, deadline)
            except TransientProviderError as exc:
                if step.retries == 0:
                    raise
                self._journal_attempt(step, 1, exc)
                self.options.sleep(FIRST_BACKOFF_S + random.uniform(0, 1))
                retrying = self._retrying(step)
                try:
                    result = retrying(self._once, step, apply, verify, deadline)
                finally:
                    attempts = 1 + _attempt_count(retrying)
        except (_StopError, _AbandonedError):
            raise
        except (FailoverError, TimeoutError, RetryError) as exc:
            return self._failed(step, f"{type(exc).__name__}: {exc}", attempts)
        except Exception as exc:  # a provider bug must not leave the journal silent
            return self._failed(step, f"unexpected {type(exc).__name__}: {exc}", attempts)
        self.emit("step_succeeded", step.id, attempts=attempts, result=result)
        return True, ""

    def _retrying(self, step: PlannedStep) -> Retrying:
        """The retries after a first failed attempt: exponential backoff with jitter (2 s, 4 s,
        8 s... up to 30 s, continuing the first backoff), bounded by the step's retries and
        timeout. One policy object per bound; tenacity keeps each call's state per thread."""
        key = (step.retries, step.timeout_s)
        with self.lock:
            if key not in self.retryers:
                self.retryers[key] = Retrying(
                    stop=stop_after_attempt(step.retries) | stop_after_delay(step.timeout_s),
                    wait=wait_exponential(multiplier=2 * FIRST_BACKOFF_S, max=30) + wait_random(0, 1),
                    retry=retry_if_exception_type(TransientProviderError),
                    sleep=self.options.sleep,
                    before_sleep=self._record_failure,
                    reraise=True,
                )
            return self.retryers[key]

    def _once(
        self,
        step: PlannedStep,
        apply: Callable[[], JsonValue],
        verify: Callable[[], bool] | None,
        deadline: float,
    ) -> JsonValue:
        """One attempt: apply, then verify that the desired state was reached."""
        if self.options.clock() >= deadline:
            raise TimeoutError(f"timed out after {step.timeout_s:g}s")
        result = apply()
        if verify is not None and not verify():
            raise TransientProviderError("applied, but the desired state is not reached yet")
        return result

    def _record_failure(self, retry_state: RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        self._journal_attempt(retry_state.args[0], 1 + retry_state.attempt_number, exc)

    def _journal_attempt(self, step: PlannedStep, attempt: int, exc: BaseException | None) -> None:
        self.emit(
            "attempt_failed",
            step.id,
            attempt=attempt,
            error=f"{type(exc).__name__}: {exc}",
            transient=isinstance(exc, TransientProviderError),
        )

    # --- failure -------------------------------------------------------------------------------

    def _on_failure(self, step_id: str, why: str) -> RunResult:
        state = self._state()
        pivots = [s.id for s in self.plan.steps if s.pivot and state.step(s.id).state == "succeeded"]
        refused = why == "approval denied"
        code = EXIT_REFUSED if refused else EXIT_FAILED
        if pivots:
            message = (
                f"{step_id} failed ({why}) after pivot {pivots[0]} succeeded: no rollback past a pivot; "
                f"fix forward, then `failover resume {self.lease.run_id}`"
            )
            self.emit("run_halted", step_id, reason=message)
            return self._finish("halted", code, message)
        if self.options.on_failure == "halt":
            message = (
                f"{step_id} failed ({why}); halted: `failover resume {self.lease.run_id}` or "
                f"`failover rollback {self.lease.run_id}`"
            )
            self.emit("run_halted", step_id, reason=message)
            return self._finish("halted", code, message)
        return self._rollback(state, f"{step_id} failed: {why}", code)

    def _rollback(
        self, state: RunState, reason: str, code: int = EXIT_FAILED, undo: bool = False
    ) -> RunResult:
        if not state.rollback_started:
            self.emit("rollback_started", reason=reason, **({"undo": True} if undo else {}))
        for step_id in self.plan.rollback:
            step = self.steps[step_id]
            rec = state.step(step_id)
            if rec.state not in ("succeeded", "started", "compensating"):
                continue
            action = self.registry.action(step.action)
            ctx = self._context(step_id, step.site, action.cloud)
            try:
                params = action.parse(step.params)
                if rec.state == "started" and action.verifiable and not action.verify(ctx, params):
                    continue  # in flight when the process died, and never took effect
                if (
                    rec.state == "compensating"
                    and action.verifiable
                    and action.read(ctx, params) == rec.before
                ):
                    self.emit("step_compensated", step_id, recovered=True)  # done before a crash
                    continue
                if rec.state != "compensating":
                    self.emit("compensation_started", step_id)
                for attempt in Retrying(
                    stop=stop_after_attempt(step.retries + 1),
                    wait=wait_exponential(multiplier=FIRST_BACKOFF_S, max=30) + wait_random(0, 1),
                    retry=retry_if_exception_type(TransientProviderError),
                    sleep=self.options.sleep,
                    reraise=True,
                ):
                    with attempt:
                        action.compensate(ctx, params, rec.before)  # type: ignore[arg-type]
            except (_StopError, _AbandonedError):
                raise
            except Exception as exc:
                message = f"rollback halted: compensating {step_id} failed: {type(exc).__name__}: {exc}"
                self.emit("compensation_failed", step_id, error=str(exc))
                self.emit("run_halted", step_id, reason=message)
                return self._finish("halted", EXIT_FAILED, message)
            self.emit("step_compensated", step_id)
        message = f"rolled back ({reason})"
        return self._finish("rolled_back", code, message)


def run_ids(state_dir: str | Path) -> list[str]:
    """Every run in the state directory, oldest first."""
    return [r[0] for r in Journal(Path(state_dir)).runs()]


def run_state(state_dir: str | Path, run_id: str) -> RunState:
    journal = Journal(Path(state_dir))
    journal.fingerprint_of(run_id)  # JournalError for an unknown run
    return RunState.replay(run_id, journal.events(run_id))


__all__ = [
    "Approval",
    "Approver",
    "Options",
    "RunResult",
    "execute",
    "live_reads",
    "resume",
    "run_ids",
    "run_state",
]
