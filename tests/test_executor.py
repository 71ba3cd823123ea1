"""The executor's semantics, with the sim provider and an injected sleep."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failover.engine import Approval, Options, execute, resume
from failover.engine.approvals import LOGIN_HINT
from failover.errors import PlanError, RefusedError
from failover.plan import Plan, PlannedStep
from failover.providers.sim import SimWorld
from failover.state.events import Event
from failover.state.store import this_owner
from tests.executor_helpers import chain, events, kinds, plan_from, quick, run


def test_a_plan_runs_every_step_and_the_world_moves(tmp_path: Path) -> None:
    result = run(chain(3), tmp_path)
    assert (result.status, result.exit_code) == ("succeeded", 0)
    assert SimWorld(tmp_path).values() == {"t0": "west", "t1": "west", "t2": "west"}
    assert kinds(tmp_path, result.run_id)[0] == "run_started"
    assert kinds(tmp_path, result.run_id)[-1] == "run_finished"


@st.composite
def dags(draw: st.DrawFn) -> str:
    n = draw(st.integers(2, 8))
    services = {}
    for i in range(n):
        deps = draw(st.lists(st.integers(0, i - 1), unique=True, max_size=3)) if i else []
        ms = draw(st.integers(0, 15))
        services[f"s{i}"] = {
            "depends_on": [f"s{d}" for d in deps],
            "steps": [{"id": "x", "action": "sim.step", "site": "${to}", "with": {"duration": f"{ms}ms"}}],
        }
    return yaml.safe_dump({"services": services})


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(dags())
def test_no_step_starts_before_its_dependencies_succeeded(
    tmp_path_factory: pytest.TempPathFactory, doc: str
) -> None:
    state = tmp_path_factory.mktemp("run")
    plan = plan_from(doc)
    result = execute(plan, state, Options(sleep=time.sleep))  # real, short latencies
    assert result.ok
    seq = {(e.kind, e.step): e.seq for e in events(state, result.run_id)}
    for step in plan.steps:
        for dep in step.after:
            assert seq[("step_succeeded", dep)] < seq[("step_started", step.id)]


def test_independent_steps_overlap(tmp_path: Path) -> None:
    plan = plan_from(
        """
        services:
          a: {steps: [{id: x, action: sim.step, site: "${to}", with: {duration: 300ms}}]}
          b: {steps: [{id: x, action: sim.step, site: "${to}", with: {duration: 300ms}}]}
        """
    )
    started = time.monotonic()
    result = execute(plan, tmp_path, Options(sleep=time.sleep))
    elapsed = time.monotonic() - started
    ev = {(e.kind, e.step): e.at for e in events(tmp_path, result.run_id)}
    assert ev[("step_started", "b.x")] < ev[("step_succeeded", "a.x")]
    assert ev[("step_started", "a.x")] < ev[("step_succeeded", "b.x")]
    assert elapsed < 0.6 + 0.25  # not one after the other


def independent(n: int) -> Plan:
    services = {f"s{i}": {"steps": [{"id": "x", "action": "sim.step", "site": "${to}"}]} for i in range(n)}
    return plan_from(yaml.safe_dump({"services": services}))


class Peak:
    """Counts steps running at once, from the run's events (each start lingers 20 ms)."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self.lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self.lock:
            if event.kind == "step_started":
                self.running += 1
                self.peak = max(self.peak, self.running)
            elif event.kind == "step_succeeded":
                self.running -= 1
        if event.kind == "step_started":
            time.sleep(0.02)


def test_concurrency_limit_is_respected(tmp_path: Path) -> None:
    peak = Peak()
    result = execute(independent(6), tmp_path, Options(concurrency=2, sleep=lambda _s: None, on_event=peak))
    assert result.ok
    assert peak.peak == 2


def test_preflight_failure_changes_nothing_and_names_the_check(tmp_path: Path) -> None:
    plan = plan_from(
        """
        services:
          db:
            preflight:
              - {id: lag, check: sim.check, site: "${to}", with: {ok: false, observed: {lag_s: 42}}}
              - {id: fine, check: sim.check, site: "${to}"}
            steps: [{id: promote, action: sim.step, site: "${to}", with: {target: db}}]
        """
    )
    result = run(plan, tmp_path)
    assert (result.status, result.exit_code) == ("refused", 3)
    assert "db.lag" in result.message
    assert "lag_s" in result.message
    assert [e for e in SimWorld(tmp_path).events() if e.op == "apply"] == []
    assert "step_started" not in kinds(tmp_path, result.run_id)


def test_a_skipped_check_needs_its_id_and_is_journaled_with_the_reason(tmp_path: Path) -> None:
    plan = plan_from(
        """
        services:
          db:
            preflight: [{id: lag, check: sim.check, site: "${to}", with: {ok: false}}]
            steps: [{id: promote, action: sim.step, site: "${to}"}]
        """
    )
    with pytest.raises(PlanError, match=r"no preflight check 'db\.nope'"):
        run(plan, tmp_path, skip_checks={"db.nope": "x"})
    result = run(plan, tmp_path, skip_checks={"db.lag": "replica rebuilt, lag metric stale"})
    assert result.ok
    skipped = [e for e in events(tmp_path, result.run_id) if e.kind == "check_skipped"]
    assert skipped[0].data == {"check": "db.lag", "reason": "replica rebuilt, lag metric stale"}


def test_transient_errors_are_retried_with_backoff_and_fatal_ones_are_not(tmp_path: Path) -> None:
    plan = plan_from(
        """
        services:
          a: {steps: [{id: x, action: sim.step, site: "${to}", retries: 3, with: {fail_attempts: 2}}]}
        """
    )
    slept: list[float] = []
    result = execute(plan, tmp_path, Options(sleep=slept.append))
    assert result.ok
    assert kinds(tmp_path, result.run_id, "a.x").count("attempt_failed") == 2
    assert len(slept) == 2
    assert 1 <= slept[0] <= slept[1] + 1  # exponential with jitter
    fatal = plan_from(
        'services:\n  a: {steps: [{id: y, action: sim.step, site: "${to}", with: {fail: true}}]}\n'
    )
    result = run(fatal, tmp_path / "f")
    assert result.exit_code == 1
    assert kinds(tmp_path / "f", result.run_id, "a.y").count("attempt_failed") == 0


def test_retries_are_bounded(tmp_path: Path) -> None:
    plan = plan_from(
        """
        services:
          a: {steps: [{id: x, action: sim.step, site: "${to}", retries: 1, with: {fail_attempts: 5}}]}
        """
    )
    result = run(plan, tmp_path)
    assert result.status == "rolled_back"
    assert kinds(tmp_path, result.run_id, "a.x").count("attempt_failed") == 1
    failed = next(e for e in events(tmp_path, result.run_id) if e.kind == "step_failed")
    assert "TransientProviderError" in str(failed.data["error"])


def test_a_step_over_its_timeout_is_abandoned_and_fails(tmp_path: Path) -> None:
    plan = plan_from(
        """
        services:
          a: {steps: [{id: slow, action: sim.step, site: "${to}", timeout: 200ms, with: {duration: 5s}}]}
        """
    )
    started = time.monotonic()
    result = execute(plan, tmp_path, Options(sleep=time.sleep))
    assert time.monotonic() - started < 3
    assert result.exit_code == 1
    failed = next(e for e in events(tmp_path, result.run_id) if e.kind == "step_failed")
    assert failed.data["abandoned"] is True
    assert "timed out after 0.2s" in str(failed.data["error"])


def test_rollback_compensates_completed_steps_in_reverse_order_once_each(tmp_path: Path) -> None:
    plan = chain(4, fail_at=3)
    result = run(plan, tmp_path)
    assert (result.status, result.exit_code) == ("rolled_back", 1)
    compensated = [e.step for e in events(tmp_path, result.run_id) if e.kind == "step_compensated"]
    assert compensated == ["s2.move", "s1.move", "s0.move"]
    world = SimWorld(tmp_path)
    assert world.values() == {"t0": None, "t1": None, "t2": None}
    assert [e.target for e in world.events() if e.op == "compensate"] == ["t2", "t1", "t0"]


@pytest.mark.parametrize("fail_at", [0, 1, 2])
def test_failure_at_each_step_before_the_pivot_restores_the_initial_state(
    tmp_path: Path, fail_at: int
) -> None:
    plan = chain(4, pivot_at=3, fail_at=fail_at)
    result = run(plan, tmp_path, auto_approve=True)
    assert result.status == "rolled_back"
    assert all(value is None for value in SimWorld(tmp_path).values().values())
    compensated = [e.step for e in events(tmp_path, result.run_id) if e.kind == "step_compensated"]
    assert compensated == [f"s{i}.move" for i in reversed(range(fail_at))]


def test_after_a_pivot_there_is_no_rollback_only_a_halt(tmp_path: Path) -> None:
    plan = chain(3, pivot_at=1, fail_at=2)
    result = run(plan, tmp_path, auto_approve=True)
    assert (result.status, result.exit_code) == ("halted", 1)
    assert "after pivot s1.move" in result.message
    assert "step_compensated" not in kinds(tmp_path, result.run_id)
    assert SimWorld(tmp_path).value("t1") == "west"


def test_halt_policy_leaves_it_to_resume_or_rollback(tmp_path: Path) -> None:
    plan = chain(3, fail_at=2)
    result = run(plan, tmp_path, on_failure="halt")
    assert result.status == "halted"
    assert SimWorld(tmp_path).value("t1") == "west"
    back = resume(result.run_id, tmp_path, quick(), rollback=True)
    assert back.status == "rolled_back"
    assert SimWorld(tmp_path).values() == {"t0": None, "t1": None}


def test_approvals_by_flag_by_callback_and_denial(tmp_path: Path) -> None:
    plan = chain(2, pivot_at=1)
    denied = run(plan, tmp_path / "a")
    assert (denied.status, denied.exit_code) == ("rolled_back", 3)
    assert "approval denied" in denied.message
    by_flag = run(plan, tmp_path / "b", approve_steps=frozenset({"s1.move"}))
    assert by_flag.ok
    asked: list[str] = []

    def approver(step: PlannedStep, timeout: float) -> Approval:
        asked.append(step.id)
        return Approval(True, "alice", "change 42")

    by_callback = run(plan, tmp_path / "c", approver=approver)
    assert by_callback.ok
    assert asked == ["s1.move"]
    granted = [e for e in events(tmp_path / "c", by_callback.run_id) if e.kind == "approval_granted"]
    assert granted[0].data == {
        "by": "alice",
        "by_is": LOGIN_HINT,
        "reason": "change 42",
        "owner": this_owner(),
    }


def test_no_answer_before_the_approval_timeout_is_a_denial(tmp_path: Path) -> None:
    plan = chain(2, pivot_at=1, extra="defaults: {approval_timeout: 200ms}\n")

    def never(step: PlannedStep, timeout: float) -> Approval:
        time.sleep(5)
        return Approval(True, "late", "")

    started = time.monotonic()
    result = run(plan, tmp_path, approver=never)
    assert time.monotonic() - started < 3
    assert result.exit_code == 3
    denied = next(e for e in events(tmp_path, result.run_id) if e.kind == "approval_denied")
    assert denied.data["by"] == "timeout"


def test_an_approver_that_can_take_its_question_back_is_told_when_the_run_stops_waiting(
    tmp_path: Path,
) -> None:
    plan = chain(2, pivot_at=1, extra="defaults: {approval_timeout: 200ms}\n")

    class Prompt:
        def __init__(self) -> None:
            self.withdrawn: list[tuple[str, str]] = []
            self.gone = threading.Event()

        def __call__(self, step: PlannedStep, timeout: float) -> Approval:
            self.gone.wait(5)
            return Approval(True, "late", "")

        def withdraw(self, step: PlannedStep, reason: str) -> None:
            self.withdrawn.append((step.id, reason))
            self.gone.set()

    prompt = Prompt()
    result = run(plan, tmp_path, approver=prompt)
    assert result.exit_code == 3
    assert prompt.withdrawn == [("s1.move", "no answer within 0.2s")]


def test_ungraceful_mode_skips_the_source_and_tolerates_best_effort_failures(tmp_path: Path) -> None:
    plan = plan_from(
        """
        services:
          db:
            steps:
              - {id: fence, action: sim.step, site: "${from}", ungraceful: best_effort, with: {fail: true}}
              - {id: drain, action: sim.step, site: "${from}"}
              - {id: promote, action: sim.step, site: "${to}", with: {target: db}}
        """,
        mode="ungraceful",
    )
    result = run(plan, tmp_path)
    assert result.ok
    assert kinds(tmp_path, result.run_id, "db.fence")[-1] == "step_failed"
    assert kinds(tmp_path, result.run_id, "db.drain") == ["step_skipped"]
    assert SimWorld(tmp_path).value("db") == "west"


def test_a_plan_is_applied_once(tmp_path: Path) -> None:
    plan = chain(2)
    assert run(plan, tmp_path).ok
    with pytest.raises(RefusedError, match="already applied"):
        run(plan, tmp_path)


def test_a_plan_whose_runbook_changed_is_refused(tmp_path: Path, write_runbook) -> None:  # type: ignore[no-untyped-def]
    from failover.planner import make_plan
    from failover.runbook import load_runbook

    path = write_runbook('services:\n  a: {steps: [{id: x, action: sim.step, site: "${to}"}]}\n')
    plan = make_plan(load_runbook(path), from_="east", to="west")
    path.write_text(path.read_text() + "\n# edited\n")
    with pytest.raises(RefusedError, match="changed since the plan was made"):
        run(plan, tmp_path / "state")


def test_per_provider_limits_hold_back_steps_of_a_busy_provider(tmp_path: Path) -> None:
    peak = Peak()
    options = Options(provider_limits={"sim": 1}, sleep=lambda _s: None, on_event=peak)
    assert execute(independent(4), tmp_path, options).ok
    assert peak.peak == 1
    unlimited = Peak()
    assert execute(independent(4), tmp_path / "u", Options(sleep=lambda _s: None, on_event=unlimited)).ok
    assert unlimited.peak > 1


def test_report_of_a_rolled_back_run_shows_the_failure_and_the_compensations(tmp_path: Path) -> None:
    from xml.etree import ElementTree as ET

    from failover.report import render_report, report_data
    from failover.state.events import RunState
    from failover.state.local import DirectoryStore

    plan = chain(3, fail_at=2)
    result = run(plan, tmp_path)
    journal = DirectoryStore(tmp_path)
    data = report_data(
        plan, RunState.replay(result.run_id, journal.events(result.run_id)), journal.events(result.run_id)
    )
    assert data["status"] == "rolled_back"
    assert data["rollback"] == ["s0.move", "s1.move"]
    assert [s["state"] for s in data["steps"]] == ["compensated", "compensated", "failed"]
    assert data["rto"]["measured_s"] is None
    suite = ET.fromstring(render_report(data, "junit")).find("testsuite")
    assert suite is not None
    assert suite.get("failures") == "1"
    assert "simulated failure" in render_report(data, "markdown")


def test_a_step_whose_state_cannot_be_read_fails_cleanly_and_rolls_back(tmp_path: Path) -> None:
    from failover.errors import ProviderError
    from failover.providers.base import Provider, Registry
    from failover.providers.sim import PROVIDER as SIM
    from failover.providers.sim import SimStep

    class Unreadable(SimStep):
        """A step whose current state cannot be read."""

        name = "test.unreadable"

        def read(self, ctx, params):  # type: ignore[no-untyped-def]
            raise ProviderError("AccessDenied reading the target")

    registry = Registry([SIM, Provider("test", actions=(Unreadable(),))])
    plan = chain(2)
    broken = plan.steps[1]._replace(action="test.unreadable")
    plan = dataclasses.replace(plan, steps=(plan.steps[0], broken))
    result = execute(plan, tmp_path, quick(), registry=registry)
    assert result.status == "rolled_back"
    failed = next(e for e in events(tmp_path, result.run_id) if e.kind == "step_failed")
    assert failed.step == "s1.move"
    assert "AccessDenied" in str(failed.data["error"])
    assert SimWorld(tmp_path).value("t0") is None


def test_a_compensation_done_just_before_a_crash_is_not_done_again(tmp_path: Path) -> None:
    from failover.providers.base import Context, Placement
    from failover.state.local import DirectoryStore

    plan = chain(3, fail_at=2)
    halted = run(plan, tmp_path, on_failure="halt")
    journal = DirectoryStore(tmp_path)
    resources = tuple(sorted(f"{plan.runbook.name}/{s.name}" for s in plan.services))
    lease = journal.acquire(halted.run_id, resources, 30, take_over=True)
    journal.append(lease, "run_resumed", None, {"rollback": True})
    journal.append(lease, "rollback_started", None, {"reason": "by hand"})
    journal.append(lease, "compensation_started", "s1.move")
    ctx = Context(halted.run_id, "s1.move", Placement("west"), tmp_path)
    SimWorld(tmp_path).set("compensate", "t1", None, ctx)  # the side effect happened; then the crash
    journal.release(lease)
    result = resume(halted.run_id, tmp_path, quick(), rollback=True)
    assert result.status == "rolled_back"
    recovered = [e for e in events(tmp_path, halted.run_id) if e.kind == "step_compensated"]
    assert [(e.step, e.data.get("recovered")) for e in recovered] == [("s1.move", True), ("s0.move", None)]
    compensations = [e.target for e in SimWorld(tmp_path).events() if e.op == "compensate"]
    assert compensations == ["t1", "t0"]


def test_a_halted_run_resumes_forward_once_the_cause_is_fixed(tmp_path: Path) -> None:
    plan = plan_from(
        """
        services:
          a: {steps: [{id: x, action: sim.step, site: "${to}", with: {target: a}}]}
          b:
            depends_on: [a]
            steps: [{id: y, action: sim.step, site: "${to}", retries: 0, with: {target: b, fail_attempts: 1}}]
        """
    )
    halted = run(plan, tmp_path, on_failure="halt")
    assert halted.status == "halted"
    with pytest.raises(RefusedError, match="did not finish"):
        run(plan, tmp_path)
    resumed = resume(halted.run_id, tmp_path, quick())
    assert (resumed.status, resumed.exit_code) == ("succeeded", 0)
    assert SimWorld(tmp_path).values() == {"a": "west", "b": "west"}
    assert kinds(tmp_path, halted.run_id, "a.x").count("step_started") == 1  # not run again
    assert resume(halted.run_id, tmp_path, quick()).status == "succeeded"  # a finished run stays so


def test_actions_run_in_the_placement_the_plan_describes(tmp_path: Path) -> None:
    from failover.planner import make_plan
    from failover.providers.base import Check, CheckResult, Context, Params, Placement, Provider, Registry
    from failover.providers.sim import PROVIDER as SIM
    from failover.runbook import parse_runbook
    from tests.conftest import SITES

    class Where(Check[Params]):
        """Report the region the check runs in."""

        name = "aws.test.where"
        params_model = Params
        cloud = "aws"

        def describe(self, params: Params, where: Placement) -> str:
            return f"Say where {where.phrase()}"

        def run(self, ctx: Context, params: Params) -> CheckResult:
            return CheckResult(True, ctx.placement.region, "here")

    registry = Registry([SIM, Provider("test", checks=(Where(),))])
    text = SITES + 'services:\n  a:\n    preflight: [{id: where, check: aws.test.where, site: "${to}"}]\n'
    plan = make_plan(parse_runbook(text, "r.yaml", registry), from_="east", to="west", registry=registry)
    result = execute(plan, tmp_path, quick(), registry=registry)
    assert result.ok
    seen = next(e for e in events(tmp_path, result.run_id) if e.kind == "check_passed")
    assert seen.data["observed"] == "us-west-2"


def test_a_throttled_read_is_read_again_within_the_steps_retries(tmp_path: Path) -> None:
    from failover.errors import TransientProviderError
    from failover.providers.base import Provider, Registry
    from failover.providers.sim import PROVIDER as SIM
    from failover.providers.sim import SimStep

    reads: list[int] = []

    class Throttled(SimStep):
        """A step whose first read is throttled."""

        name = "test.throttled"

        def read(self, ctx, params):  # type: ignore[no-untyped-def]
            reads.append(1)
            if len(reads) == 1:
                raise TransientProviderError("Throttling: Rate exceeded")
            return super().read(ctx, params)

    registry = Registry([SIM, Provider("test", actions=(Throttled(),))])
    plan = chain(1)
    for retries, status in ((1, "succeeded"), (0, "rolled_back")):
        reads.clear()
        step = plan.steps[0]._replace(action="test.throttled", retries=retries)
        result = execute(
            dataclasses.replace(plan, steps=(step,)), tmp_path / str(retries), quick(), registry=registry
        )
        assert result.status == status
        assert len(reads) == (2 if retries else 1)
