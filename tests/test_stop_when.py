"""Stop conditions: checks asked while the steps run; the first that fails halts the run, and
before a pivot rolls it back; the journal and the report say which and what it saw."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

from failover.plan import Plan
from failover.report import render_report, report_data
from failover.state.events import RunState
from tests.executor_helpers import events, plan_from, run

STOP = """
stop_when:
  - {id: alarm, check: sim.check, site: "${to}", with: {target: alarm, expect: null}}
services:
  app:
    steps:
"""
FAST = {"sleep": time.sleep, "clock": time.monotonic, "stop_every": 0.05, "auto_approve": True}


def plan_of(steps: str) -> Plan:
    return plan_from(STOP + textwrap.indent(textwrap.dedent(steps), "      "))


def test_a_stop_condition_gone_bad_before_the_pivot_rolls_the_run_back(tmp_path: Path) -> None:
    plan = plan_of(
        """
        - {id: trip, action: sim.step, site: "${to}", with: {target: alarm}}
        - {id: slow, action: sim.step, site: "${to}", with: {target: app, duration: 1}}
        - {id: promote, action: sim.step, site: "${to}", pivot: true, with: {target: db}}
        """
    )
    assert [c.id for c in plan.stop_when] == ["stop_when.alarm"]
    result = run(plan, tmp_path, **FAST)
    assert (result.status, result.exit_code) == ("rolled_back", 1)
    assert "stop condition stop_when.alarm" in result.message
    found = events(tmp_path, result.run_id)
    (stop,) = [e for e in found if e.kind == "stop_condition"]
    assert (stop.data["check"], stop.data["observed"]) == ("stop_when.alarm", "west")
    state = RunState.replay(result.run_id, found)
    assert state.step("app.promote").state == "pending"  # never started
    assert state.step("app.trip").compensated_at is not None
    data = report_data(plan, state, found)
    assert data["stopped_by"]["check"] == "stop_when.alarm" and data["stopped_by"]["observed"] == "west"
    assert "**stopped by stop condition `stop_when.alarm`** at west" in render_report(data, "markdown")


def test_a_stop_condition_gone_bad_after_the_pivot_halts_the_run(tmp_path: Path) -> None:
    plan = plan_of(
        """
        - {id: promote, action: sim.step, site: "${to}", pivot: true, with: {target: db}}
        - {id: trip, action: sim.step, site: "${to}", with: {target: alarm}}
        - {id: slow, action: sim.step, site: "${to}", with: {target: app, duration: 1}}
        - {id: last, action: sim.step, site: "${to}", with: {target: edge}}
        """
    )
    result = run(plan, tmp_path, **FAST)
    assert (result.status, result.exit_code) == ("halted", 1)
    state = RunState.replay(result.run_id, events(tmp_path, result.run_id))
    assert state.step("app.last").state == "pending"
    assert state.stopped_by is not None and state.stopped_by["check"] == "stop_when.alarm"


def test_good_stop_conditions_let_the_run_finish(tmp_path: Path) -> None:
    plan = plan_of(
        """
        - {id: slow, action: sim.step, site: "${to}", with: {target: app, duration: 0.3}}
        """
    )
    result = run(plan, tmp_path, **FAST)
    assert result.ok, result.message
    assert not [e for e in events(tmp_path, result.run_id) if e.kind == "stop_condition"]
