"""The day a region burns: a source site whose endpoints hang, a step that times out after a
pivot, a rollback that would hurt, best-effort failures that must not be hidden. Real AWS
clients against a hung TCP server and moto; the sim provider where the cloud does not matter."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import boto3
import pytest
import yaml
from click.testing import CliRunner

from failover.cli import main
from failover.engine import Options, RunResult, execute, resume, run_state
from failover.errors import JournalError, RefusedError
from failover.plan import Plan
from failover.planner import make_plan
from failover.providers.base import Check, CheckResult, Context, Params, Placement, Provider, Registry
from failover.providers.sim import PROVIDER as SIM
from failover.providers.sim import SimStep, SimWorld, StepParams
from failover.report import render_report, report_data
from failover.runbook import parse_runbook
from failover.sandbox.aws import MotoSandbox
from failover.state.events import Event, RunState
from failover.state.local import DirectoryStore
from tests.executor_helpers import FakeTime, chain, events, kinds, plan_from, quick, run
from tests.servers import HungServer

SANDBOX_KEYS = {"aws": {"credentials": "sandbox"}}  # static keys; endpoints come from the sites


def aws_sites(source: str, target: str) -> str:
    return f"""version: 1
name: outage
sites:
  east: {{aws: {{region: us-east-1, endpoint_url: "{source}"}}}}
  west: {{aws: {{region: us-west-2, endpoint_url: "{target}"}}}}
"""


def ecs(step_id: str, service: str, site: str, extra: str = "") -> str:
    return (
        f"{{id: {step_id}, action: aws.ecs.set_desired_count, site: '{site}'{extra}, "
        f"with: {{cluster: shop, service: {service}, count: 0}}}}"
    )


def hung_step(hung: HungServer, timeout: str) -> Plan:
    """One ECS step at the source site, whose endpoint never answers."""
    step = ecs("stop", "a", "${from}", f", timeout: {timeout}, retries: 0")
    return outage_plan(
        aws_sites(hung.url, hung.url) + f"services:\n  a:\n    steps: [{step}]\n", mode="graceful"
    )


def outage_plan(text: str, mode: str = "ungraceful") -> Plan:
    return make_plan(parse_runbook(text, "outage.yaml"), from_="east", to="west", mode=mode)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    """A live target region: moto, with an ECS cluster whose services run nothing yet."""
    with MotoSandbox() as box:
        client = boto3.client(
            "ecs",
            region_name="us-west-2",
            endpoint_url=box.endpoint_url,
            aws_access_key_id="sandbox",
            aws_secret_access_key="sandbox",
        )
        client.create_cluster(clusterName="shop")
        for name in [*(f"s{i}" for i in range(6)), "standby"]:
            client.create_service(cluster="shop", serviceName=name, desiredCount=0)
        yield box.endpoint_url


# --- deadlines -------------------------------------------------------------------------------------


def test_a_step_at_a_hung_endpoint_costs_its_own_timeout_not_the_sdks(
    tmp_path: Path, hung: HungServer
) -> None:
    plan = hung_step(hung, "2s")
    started = time.monotonic()
    result = execute(plan, tmp_path, Options(overrides=SANDBOX_KEYS))
    assert time.monotonic() - started < 2 + 3  # botocore alone: 60 s x 3 attempts
    assert (result.status, result.exit_code) == ("rolled_back", 1)
    record = result.state.step("a.stop")
    assert record.state == "failed"
    assert not record.has_snapshot  # it never got past reading the state: nothing to undo


def test_a_best_effort_check_at_a_hung_source_holds_preflight_only_its_timeout(
    tmp_path: Path, hung: HungServer
) -> None:
    plan = outage_plan(
        aws_sites(hung.url, hung.url)
        + """services:
  a:
    preflight: [{id: alarms, check: aws.cloudwatch.alarms_ok, site: "${from}", ungraceful: best_effort,
                 timeout: 1s, with: {names: [errors]}}]
    steps: [{id: go, action: sim.step, site: "${to}"}]
"""
    )
    started = time.monotonic()
    result = execute(plan, tmp_path, Options(overrides=SANDBOX_KEYS))
    assert time.monotonic() - started < 1 + 3
    assert (result.status, result.exit_code) == ("succeeded", 0)
    assert result.best_effort_failures == ["a.alarms"]
    assert result.state.checks["a.alarms"].best_effort and not result.state.checks["a.alarms"].ok


def test_a_running_step_is_journaled_with_what_it_waits_on_before_its_first_call(
    tmp_path: Path, hung: HungServer
) -> None:
    plan = hung_step(hung, "3s")
    done = threading.Thread(target=execute, args=(plan, tmp_path, Options(overrides=SANDBOX_KEYS)))
    done.start()
    seen = None
    for _ in range(50):
        time.sleep(0.05)
        with contextlib.suppress(JournalError):  # not there yet, or being created
            runs = DirectoryStore(tmp_path, read_only=True).runs()
            seen = run_state(tmp_path, runs[0][0]).step("a.stop") if runs else None
            if seen is not None and seen.state == "started":
                break
    done.join()
    assert seen is not None and seen.state == "started"
    assert seen.waiting_on == "read"  # `failover status` shows it while the read hangs


def test_an_ungraceful_run_with_a_hung_source_ends_within_the_dead_sides_timeouts(
    tmp_path: Path, hung: HungServer, moto: str
) -> None:
    services = "services:\n"
    for i in range(6):
        source = ecs("stop", f"s{i}", "${from}", ", ungraceful: best_effort, timeout: 2s, retries: 0")
        services += f"  s{i}:\n    steps:\n      - {source}\n      - {ecs('start', f's{i}', '${to}')}\n"
    services += f"  standby:\n    steps: [{ecs('start', 'standby', '${to}')}]\n"
    text = aws_sites(hung.url, moto).replace(
        "east: {aws: {region: us-east-1,", "east: {concurrency: {aws: 2}, aws: {region: us-east-1,"
    )
    plan = outage_plan(text + services)
    started = time.monotonic()
    result = execute(plan, tmp_path, Options(overrides=SANDBOX_KEYS))
    took = time.monotonic() - started
    dead_side = sum(s.timeout_s for s in plan.steps if s.site == "east")  # 12 s, one after another
    assert took < dead_side  # two at a time at the dead site: about 6 s
    assert (result.status, result.exit_code) == ("succeeded", 0)
    assert result.message.startswith("succeeded with 6 best-effort failures: ")
    assert sorted(result.best_effort_failures) == [f"s{i}.stop" for i in range(6)]
    first = {e.step: e.at for e in reversed(events(tmp_path, result.run_id)) if e.kind == "step_started"}
    run_start = next(e.at for e in events(tmp_path, result.run_id) if e.kind == "run_started")
    assert first["standby.start"] - run_start < 1.5  # the dead site's slots are its own
    assert all(result.state.step(f"s{i}.start").state == "succeeded" for i in range(6))


def test_the_dead_sites_slots_are_its_own(tmp_path: Path) -> None:
    plan = plan_from(
        yaml.safe_dump(
            {
                "services": {
                    **{
                        f"s{i}": {
                            "steps": [
                                {
                                    "id": "x",
                                    "action": "sim.step",
                                    "site": "east",
                                    "with": {"duration": "400ms"},
                                }
                            ]
                        }
                        for i in range(4)
                    },
                    "standby": {"steps": [{"id": "x", "action": "sim.step", "site": "west"}]},
                }
            }
        )
    )
    result = execute(plan, tmp_path, Options(provider_limits={"sim": 2}))
    assert result.ok
    at = {(e.kind, e.step): e.at for e in events(tmp_path, result.run_id)}
    first_end = min(at[("step_succeeded", f"s{i}.x")] for i in range(4))
    assert at[("step_started", "standby.x")] < first_end  # not behind the east site's queue
    east = sorted((at[("step_started", f"s{i}.x")], at[("step_succeeded", f"s{i}.x")]) for i in range(4))
    assert max(sum(1 for s, e in east if s <= t < e) for t, _ in east) == 2  # east: two at a time


# --- failure after a pivot, at every position -------------------------------------------------------


@pytest.mark.parametrize("how", ["times out", "fails"])
@pytest.mark.parametrize("position", range(5))
def test_a_step_failing_at_any_position_ends_in_a_journaled_state(
    tmp_path: Path, position: int, how: str
) -> None:
    pivot = 2
    if how == "fails":
        plan = chain(5, pivot_at=pivot, fail_at=position)
    else:
        plan = chain(5, pivot_at=pivot, hang_at=position)
    result = execute(plan, tmp_path, Options(auto_approve=True))
    expected = "rolled_back" if position < pivot else "halted"
    assert (result.status, result.exit_code) == (expected, 1)
    state = RunState.replay(result.run_id, events(tmp_path, result.run_id))
    assert state.finished and state.status == expected
    if position >= pivot:
        assert f"after pivot s{pivot}.move began" in result.message
        assert f"failover resume {result.run_id}" in result.message
        assert "step_compensated" not in kinds(tmp_path, result.run_id)
    if how == "times out":
        assert "timed out after 0.2s" in str(state.step(f"s{position}.move").error)
        assert state.step(f"s{position}.move").in_doubt  # its change was under way
    assert render_report(report_data(plan, state, events(tmp_path, result.run_id)), "markdown")


# --- rollback that cannot hurt ----------------------------------------------------------------------


def test_a_run_halted_after_its_pivot_is_never_rolled_back(tmp_path: Path) -> None:
    plan = chain(4, pivot_at=2, fail_at=3, extra="")
    halted = run(plan, tmp_path, auto_approve=True)
    assert halted.status == "halted"
    before = SimWorld(tmp_path).values()
    with pytest.raises(RefusedError, match=r"began pivot s2\.move: it cannot be rolled back"):
        resume(halted.run_id, tmp_path, quick(), rollback=True)
    assert SimWorld(tmp_path).values() == before  # the old primary's workers stay stopped
    assert [e for e in SimWorld(tmp_path).events() if e.op == "compensate"] == []


def test_a_pivot_given_up_on_in_doubt_counts_as_begun(tmp_path: Path) -> None:
    plan = plan_from(
        """
        services:
          db: {steps: [{id: promote, action: sim.step, site: "${to}", pivot: true, timeout: 200ms,
                        with: {duration: 30s}}]}
        """
    )
    result = execute(plan, tmp_path, Options(auto_approve=True, on_failure="halt"))
    assert result.status == "halted"
    assert result.state.step("db.promote").in_doubt
    with pytest.raises(RefusedError, match=r"began pivot db\.promote"):
        resume(result.run_id, tmp_path, quick(), rollback=True)


def test_a_run_held_by_a_live_process_is_not_rolled_back_or_resumed(tmp_path: Path) -> None:
    gate = threading.Event()
    result: list[RunResult] = []

    def on_event(event: Event) -> None:
        if event.kind == "apply_started":
            gate.set()

    options = Options(on_event=on_event, sleep=lambda _s: time.sleep(1))
    plan = plan_from(
        """
        services:
          a: {steps: [{id: x, action: sim.step, site: "${to}", with: {duration: 2s}}]}
        """
    )
    live = threading.Thread(target=lambda: result.append(execute(plan, tmp_path, options)))
    live.start()
    assert gate.wait(10)
    run_id = DirectoryStore(tmp_path, read_only=True).runs()[0][0]
    started = time.monotonic()
    for rollback in (True, False):
        with pytest.raises(
            RefusedError, match=f"run {run_id} is held by process .*: it may still be running"
        ):
            resume(run_id, tmp_path, quick(), rollback=rollback)
    assert time.monotonic() - started < 2  # refused at once, not after waiting out the lease
    live.join()
    assert result[0].status == "succeeded"
    assert [e for e in SimWorld(tmp_path).events() if e.op == "compensate"] == []


# --- honest outcomes ---------------------------------------------------------------------------------

BEST_EFFORT = """
services:
  db:
    preflight:
      - {id: old-alarms, check: sim.check, site: "${from}", ungraceful: best_effort, with: {ok: false}}
    steps:
      - {id: fence, action: sim.step, site: "${from}", ungraceful: best_effort,
         with: {fail: true, target: fence}}
      - {id: promote, action: sim.step, site: "${to}", with: {target: db}}
"""


def test_best_effort_failures_are_in_the_headline_the_report_and_junit(tmp_path: Path) -> None:
    plan = plan_from(BEST_EFFORT, mode="ungraceful")
    result = run(plan, tmp_path)
    assert (result.status, result.exit_code) == ("succeeded", 0)
    assert result.message == "succeeded with 2 best-effort failures: db.old-alarms, db.fence"
    data = report_data(plan, result.state, events(tmp_path, result.run_id))
    assert data["best_effort_failures"] == ["db.old-alarms", "db.fence"]
    assert "**2 best-effort failures**" in render_report(data, "markdown")
    junit = render_report(data, "junit")
    assert 'name="db.fence"' in junit and 'failure message="best-effort: ProviderError' in junit
    assert 'failure message="best-effort: simulated check failed' in junit


def test_strict_makes_best_effort_failures_exit_1(tmp_path: Path, write_runbook) -> None:  # type: ignore[no-untyped-def]
    path = write_runbook(BEST_EFFORT)
    for strict, code in ((False, 0), (True, 1)):
        plan_file = tmp_path / f"plan-{strict}.json"
        runner = CliRunner()
        made = runner.invoke(
            main,
            [
                "plan",
                str(path),
                "--from",
                "east",
                "--to",
                "west",
                "--mode",
                "ungraceful",
                "--format",
                "json",
                "-o",
                str(plan_file),
            ],
        )
        assert made.exit_code == 0, made.output
        args = ["apply", str(plan_file), "--state", str(tmp_path / f"state-{strict}"), "--format", "json"]
        result = runner.invoke(main, [*args, *(["--strict"] if strict else [])])
        assert result.exit_code == code, result.output
        doc = json.loads(result.stdout.strip().splitlines()[-1])
        assert doc["status"] == "succeeded"
        assert doc["best_effort_failures"] == ["db.old-alarms", "db.fence"]


# --- sandbox runs stay in the sandbox ------------------------------------------------------------------


def test_a_sandbox_run_is_never_taken_up_outside_its_sandbox(tmp_path: Path) -> None:
    plan = chain(3, fail_at=2)
    halted = run(plan, tmp_path, on_failure="halt", sandbox="AWS (moto) on http://127.0.0.1:1")
    assert halted.status == "halted"
    assert "drill again" in halted.message and "failover resume" not in halted.message
    for rollback in (False, True):
        with pytest.raises(RefusedError, match="was a sandbox drill"):
            resume(halted.run_id, tmp_path, quick(), rollback=rollback)
    refused = CliRunner().invoke(main, ["rollback", halted.run_id, "--state", str(tmp_path)])
    assert refused.exit_code == 3
    assert "sandbox drill" in refused.output
    assert SimWorld(tmp_path).value("t1") == "west"  # nothing was compensated


# --- verify checks wait like people do ------------------------------------------------------------


class After(Check[Params]):
    """Pass once the run's clock reaches a moment (a load balancer whose targets turn healthy)."""

    name = "test.after"
    params_model = Params
    at: ClassVar[float] = 0.0
    asked: ClassVar[list[float]] = []

    def describe(self, params: Params, where: Placement) -> str:
        return "Wait for a moment"

    def run(self, ctx: Context, params: Params) -> CheckResult:
        After.asked.append(ctx.clock())
        return CheckResult(
            ctx.clock() >= After.at, ctx.clock(), "healthy" if ctx.clock() >= After.at else "not yet"
        )


def test_a_verify_check_asks_at_its_interval_until_its_timeout(tmp_path: Path) -> None:
    registry = Registry([SIM, Provider("test", checks=(After(),))])
    text = """services:
  lb:
    steps: [{id: open, action: sim.step, site: "${to}"}]
    verify: [{id: healthy, check: test.after, site: "${to}", interval: 2s, timeout: 1m}]
"""
    from tests.conftest import SITES

    plan = make_plan(
        parse_runbook(SITES + text, "r.yaml", registry), from_="east", to="west", registry=registry
    )
    time_ = FakeTime()
    After.at, After.asked = time_.now + 20, []  # healthy 20 s in: beyond 4 tries of backoff
    result = execute(plan, tmp_path, Options(sleep=time_.sleep, clock=time_.clock), registry=registry)
    assert result.ok, result.message
    assert len(After.asked) == 11  # at 0, 2, 4 ... 20 s
    assert time_.slept == [2.0] * 10
    assert result.state.step("lb.healthy").attempts == 11
    After.at, After.asked = time_.now + 3600, []
    late = Options(sleep=time_.sleep, clock=time_.clock)
    failed = execute(plan, tmp_path / "late", late, registry=registry)
    assert failed.status == "rolled_back"
    assert "not passed after 60s, asked 30 times every 2s" in str(failed.state.step("lb.healthy").error)


def test_checks_and_verify_checks_get_their_own_default_timeouts() -> None:
    plan = plan_from(
        """
        services:
          a:
            preflight: [{id: ready, check: sim.check, site: "${to}"}]
            steps: [{id: x, action: sim.step, site: "${to}"}]
            verify: [{id: up, check: sim.check, site: "${to}"}]
          b:
            preflight: [{id: only-graceful, check: sim.check, site: "${to}", modes: [graceful]}]
        """,
        mode="ungraceful",
    )
    assert plan.preflight[0].timeout_s == 30.0
    verify = plan.steps_by_id["a.up"]
    assert (verify.timeout_s, verify.interval_s) == (300.0, 2.0)
    assert plan.preflight[1].skipped and plan.preflight[1].skip_reason == "runs only in graceful mode"


def test_a_drill_fails_back_gracefully_unless_told_otherwise(tmp_path: Path) -> None:
    from tests.conftest import SIM_SHOP

    for extra, back in (((), "graceful"), (("--failback-mode", "ungraceful"), "ungraceful")):
        report = tmp_path / f"{back}.md"
        drill = [
            "drill",
            str(SIM_SHOP),
            "--from",
            "east",
            "--to",
            "west",
            "--mode",
            "ungraceful",
            "--failback",
        ]
        args = [*drill, "--auto-approve", "--sim-speed", "1000", "--state", str(tmp_path / back)]
        result = CliRunner().invoke(main, [*args, "--report", str(report), *extra])
        assert result.exit_code == 0, result.output
        text = report.read_text()
        assert "## Leg 1: east -> west (ungraceful)" in text
        assert f"## Leg 2: west -> east ({back})" in text


class Counted(SimStep):
    """A sim step that counts how often it is verified."""

    name = "test.counted"
    verified: ClassVar[int] = 0

    def verify(self, ctx: Context, params: StepParams) -> bool:
        Counted.verified += 1
        return super().verify(ctx, params)


@pytest.mark.parametrize("waits", [True, False])
def test_an_action_whose_apply_waits_for_its_condition_is_not_verified_again(
    tmp_path: Path, waits: bool
) -> None:
    action = type("Waits" if waits else "Plain", (Counted,), {"apply_verifies": waits})()
    registry = Registry([SIM, Provider("test", actions=(action,))])
    plan = chain(1)
    plan = dataclasses.replace(plan, steps=(plan.steps[0]._replace(action="test.counted"),))
    Counted.verified = 0
    assert execute(plan, tmp_path, quick(), registry=registry).ok
    assert Counted.verified == (0 if waits else 1)


def test_a_step_retried_on_a_resume_that_died_is_still_compensated(tmp_path: Path) -> None:
    from failover.engine.rollback import resources

    plan = chain(3, fail_at=2)
    halted = run(plan, tmp_path, on_failure="halt")
    journal = DirectoryStore(tmp_path)
    lease = journal.acquire(halted.run_id, resources(plan), 30, take_over=True)
    journal.append(lease, "run_resumed", None, {"rollback": False})
    journal.append(lease, "step_started", "s2.move", {"retry": True})  # then that process died
    journal.release(lease)
    state = RunState.replay(halted.run_id, journal.events(halted.run_id))
    assert (state.step("s2.move").state, state.step("s2.move").has_snapshot) == ("started", True)
    SimWorld(tmp_path).set(
        "apply", "t2", "west", Context(halted.run_id, "s2.move", Placement("west"), tmp_path)
    )
    back = resume(halted.run_id, tmp_path, quick(), rollback=True)
    assert back.status == "rolled_back"
    assert SimWorld(tmp_path).values() == {"t0": None, "t1": None, "t2": None}  # its change too


def test_resuming_an_interrupted_rollback_is_refused_over_a_later_run(tmp_path: Path, write_runbook) -> None:  # type: ignore[no-untyped-def]
    from failover.engine import Interrupt
    from failover.runbook import load_runbook

    path = write_runbook(
        'services:\n  a: {steps: [{id: x, action: sim.step, site: "${to}", with: {target: a}}]}\n'
        '  b: {depends_on: [a], steps: [{id: y, action: sim.step, site: "${to}", with: {fail: true}}]}\n'
    )
    runbook = load_runbook(path)
    halted = run(make_plan(runbook, from_="east", to="west"), tmp_path, on_failure="halt")
    stop = Interrupt()
    stop.request("SIGINT")
    interrupted = resume(halted.run_id, tmp_path, quick(interrupt=stop), rollback=True)
    assert (interrupted.status, interrupted.state.rollback_started) == ("interrupted", True)
    later = make_plan(runbook, from_="west", to="east", scope=["a"])
    assert run(later, tmp_path).ok
    with pytest.raises(RefusedError, match="started after it, acted on"):
        resume(halted.run_id, tmp_path, quick())  # not asked to roll back, but it would
