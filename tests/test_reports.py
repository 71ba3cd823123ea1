"""Reports a postmortem can use: UTC times of everything, the RTO from the run's start to each
service's cutover, drains after it, the DNS TTL beside it, approvals' waits, the achieved RPO."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from typing import Any

from failover.engine.approvals import Approval
from failover.plan import Plan, PlannedStep
from failover.report import render_report, report_data
from failover.report.data import iso
from failover.state.events import Event, RunState
from tests.executor_helpers import events, plan_from, run

REAL_TIME = {"sleep": time.sleep, "clock": time.monotonic}  # steps take the wall-clock time they say


def services(text: str) -> Plan:
    return plan_from("services:\n" + textwrap.indent(textwrap.dedent(text), "  "))


def report_of(plan: Plan, state: Path, run_id: str, **kwargs: Any) -> tuple[dict[str, Any], list[Event]]:
    found = events(state, run_id)
    return report_data(plan, RunState.replay(run_id, found), found, **kwargs), found


def at(found: list[Event], kind: str, step: str | None = None) -> float:
    return next(e.at for e in found if e.kind == kind and (step is None or e.step == step))


def test_the_rto_runs_from_the_runs_start_to_the_cutover_and_drains_come_after(tmp_path: Path) -> None:
    plan = services(
        """
  db:
    rto: 1m
    preflight: [{id: slow, check: sim.check, site: "${to}", with: {duration: 0.3}}]
    steps:
      - {id: promote, action: sim.step, site: "${to}", with: {target: db, duration: 0.1}}
      - {id: drain, action: sim.step, site: "${from}", with: {target: old-db, duration: 0.3}}
"""
    )
    assert plan.services[0].cutover == ("db.promote",)
    assert (plan.predicted_rto_s, plan.predicted_done_s) == (0.1, 0.4)  # the drain is not in the RTO
    result = run(plan, tmp_path, **REAL_TIME)
    assert result.ok, result.message
    data, found = report_of(plan, tmp_path, result.run_id)
    t0 = at(found, "run_started")
    cutover = at(found, "step_succeeded", "db.promote")
    assert data["rto"]["measured_s"] == round(cutover - t0, 3)
    assert data["rto"]["measured_s"] >= 0.3  # the preflight's wait is in it: the outage's clock ran
    assert data["rto"]["cutover_at"] == iso(t0 + data["rto"]["measured_s"])
    assert data["rto"]["done_s"] == round(at(found, "step_succeeded", "db.drain") - t0, 3)
    assert data["rto"]["done_s"] > data["rto"]["measured_s"]
    service = data["services"][0]
    assert (service["measured_s"], service["done_s"]) == (data["rto"]["measured_s"], data["rto"]["done_s"])
    steps = {s["id"]: s for s in data["steps"]}
    assert steps["db.promote"]["cutover"] and not steps["db.promote"]["after_cutover"]
    assert steps["db.drain"]["after_cutover"] and not steps["db.drain"]["cutover"]
    assert steps["db.drain"]["started_at"] == iso(at(found, "step_started", "db.drain"))
    assert data["preflight"][0]["at"] == iso(at(found, "check_passed"))
    md = render_report(data, "markdown")
    assert f"**RTO {_dur(data['rto']['measured_s'])}** (cutover at {data['rto']['cutover_at']})" in md
    assert "what ran after the cutover does not count in the RTO" in md
    assert "| after cutover |" in md


def test_a_step_marked_cutover_ends_its_services_rto(tmp_path: Path) -> None:
    plan = services(
        """
  app:
    steps:
      - {id: open, action: sim.step, site: "${to}", cutover: true, with: {target: lb, duration: 0.05}}
      - {id: warm, action: sim.step, site: "${to}", with: {target: cache, duration: 0.3}}
"""
    )
    assert plan.services[0].cutover == ("app.open",)
    result = run(plan, tmp_path, **REAL_TIME)
    data, found = report_of(plan, tmp_path, result.run_id)
    assert data["services"][0]["measured_s"] == round(
        at(found, "step_succeeded", "app.open") - at(found, "run_started"), 3
    )
    assert [s["id"] for s in data["steps"] if s["after_cutover"]] == ["app.warm"]


def test_the_dns_ttl_is_shown_beside_the_rto_not_added_to_it(tmp_path: Path) -> None:
    plan = services(
        """
  dns:
    steps:
      - {id: shift, action: sim.step, site: "${to}", dns_ttl: 60s, with: {target: api}}
"""
    )
    result = run(plan, tmp_path)
    data, found = report_of(plan, tmp_path, result.run_id)
    changed = round(at(found, "step_succeeded", "dns.shift") - at(found, "run_started"), 3)
    assert data["rto"]["measured_s"] == changed
    assert data["rto"]["dns"] == [
        {"step": "dns.shift", "ttl_s": 60.0, "changed_s": changed, "until_s": round(changed + 60, 3)}
    ]
    assert data["rto"]["old_site_resolvable_until_s"] == round(changed + 60, 3)
    md = render_report(data, "markdown")
    assert (
        "DNS: resolvers may answer with the old site until 1m into the run "
        "(1m TTL of the records `dns.shift` changed)" in md
    )


def test_each_approval_has_its_request_answer_and_wait_as_journaled(tmp_path: Path) -> None:
    plan = services(
        """
  db:
    steps: [{id: promote, action: sim.step, site: "${to}", pivot: true, with: {target: db}}]
"""
    )

    def slow_alice(step: PlannedStep, timeout: float) -> Approval:
        time.sleep(0.2)
        return Approval(True, "alice", "CHG-42")

    result = run(plan, tmp_path, approver=slow_alice)
    assert result.ok
    data, found = report_of(plan, tmp_path, result.run_id)
    asked, answered = (
        at(found, "approval_requested", "db.promote"),
        at(found, "approval_granted", "db.promote"),
    )
    (approval,) = data["approvals"]
    assert approval["asked_at"] == iso(asked)
    assert approval["answered_at"] == iso(answered)
    assert approval["wait_s"] == round(answered - asked, 3) >= 0.2
    assert (approval["by"], approval["reason"], approval["granted"]) == ("alice", "CHG-42", True)
    md = render_report(data, "markdown")
    clock = approval["asked_at"].split("T")[1].removesuffix("Z")
    assert f"| `db.promote` | {clock} |" in md
    assert "| granted | alice | CHG-42 |" in md


def test_the_achieved_rpo_is_the_lag_seen_last_before_the_pivot(tmp_path: Path) -> None:
    def rpo(lag: float) -> dict[str, Any]:
        plan = services(
            f"""
  db:
    rpo: 5s
    preflight: [{{id: lag, check: sim.check, site: "${{to}}", with: {{observed: {lag}}}}}]
    steps: [{{id: promote, action: sim.step, site: "${{to}}", pivot: true, with: {{target: db}}}}]
    verify: [{{id: later, check: sim.check, site: "${{to}}", with: {{observed: 100}}}}]
"""
        )
        result = run(plan, tmp_path / str(lag), auto_approve=True)
        data, _ = report_of(plan, tmp_path / str(lag), result.run_id, lag_checks={"sim.check"})
        return dict(data["services"][0]) | {"overall": data["rpo"]["achieved_s"]}

    within = rpo(2.5)  # the verify after the pivot saw 100: not what the failover lost
    assert (within["rpo_achieved_s"], within["rpo_seen_by"], within["rpo_met"]) == (2.5, "db.lag", True)
    assert within["overall"] == 2.5
    assert rpo(9)["rpo_met"] is False


def test_report_renders_every_format_from_the_command_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from failover.cli import main

    plan = services("""
  db:
    steps: [{id: promote, action: sim.step, site: "${to}", with: {target: db}}]
""")
    result = run(plan, tmp_path)
    for fmt, marker in (
        ("html", '<svg class="gantt"'),
        ("markdown", "axisFormat %H:%M:%S"),
        ("json", '"cutover_at"'),
    ):
        out = CliRunner().invoke(main, ["report", result.run_id, "--state", str(tmp_path), "--format", fmt])
        assert out.exit_code == 0, out.output
        assert marker in out.output
    page = (
        CliRunner()
        .invoke(main, ["report", result.run_id, "--state", str(tmp_path), "--format", "html"])
        .output
    )
    assert "<script" not in page and "<link" not in page and " src=" not in page  # self-contained


def _dur(seconds: float) -> str:
    from failover.durations import format_duration

    return format_duration(seconds)
