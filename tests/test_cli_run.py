"""apply, drill, status, resume, rollback and report from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from click.testing import CliRunner, Result

from failover.cli import main
from failover.providers.sim import SimWorld
from tests.conftest import SIM_SHOP, SITES

FAST = (
    SITES
    + """
services:
  db:
    preflight: [{id: lag, check: sim.check, site: "${to}", with: {ok: true, observed: "2s"}}]
    steps:
      - {id: promote, action: sim.step, site: "${to}", pivot: true, with: {target: writer}}
  app:
    depends_on: [db]
    rto: 1m
    steps: [{id: scale, action: sim.step, site: "${to}", with: {target: app}}]
    verify: [{id: up, check: sim.check, site: "${to}", with: {target: app, expect: "${to}"}}]
"""
)


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def runbook(tmp_path: Path) -> Path:
    path = tmp_path / "fast.yaml"
    path.write_text(FAST)
    return path


def plan_file(runbook: Path, tmp_path: Path, *extra: str) -> Path:
    out = tmp_path / "plan.json"
    result = cli(
        "plan", str(runbook), "--from", "east", "--to", "west", "--format", "json", "-o", str(out), *extra
    )
    assert result.exit_code == 0, result.output
    return out


def test_apply_runs_the_plan_and_status_and_report_tell_it(runbook: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    result = cli(
        "apply",
        str(plan_file(runbook, tmp_path)),
        "--auto-approve",
        "--state",
        str(state),
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    run = json.loads(result.output.strip().splitlines()[-1])
    assert run["status"] == "succeeded"
    status = json.loads(cli("status", "--state", str(state), "--format", "json").output)
    assert status["run_id"] == run["run_id"]
    assert status["steps"] == {"db.promote": "succeeded", "app.scale": "succeeded", "app.up": "succeeded"}
    md = cli("report", run["run_id"], "--state", str(state)).output
    assert "| app | - |" in md
    assert "```mermaid\ngantt" in md
    data = json.loads(cli("report", run["run_id"], "--state", str(state), "--format", "json").output)
    assert data["status"] == "succeeded"
    assert data["rto"]["measured_s"] is not None
    assert [s["name"] for s in data["services"]] == ["db", "app"]
    assert data["approvals"][0]["step"] == "db.promote"
    junit = ET.fromstring(cli("report", run["run_id"], "--state", str(state), "--format", "junit").output)
    suite = junit.find("testsuite")
    assert suite is not None
    assert suite.get("tests") == "4"
    assert suite.get("failures") == "0"


def test_apply_without_approval_is_refused_exit_3(runbook: Path, tmp_path: Path) -> None:
    result = cli("apply", str(plan_file(runbook, tmp_path)), "--state", str(tmp_path / "s"))
    assert result.exit_code == 3
    assert "approval denied" in result.output


def test_tampered_plan_and_second_apply_exit_3(runbook: Path, tmp_path: Path) -> None:
    path = plan_file(runbook, tmp_path)
    state = str(tmp_path / "s")
    assert cli("apply", str(path), "--auto-approve", "--state", state).exit_code == 0
    again = cli("apply", str(path), "--auto-approve", "--state", state)
    assert again.exit_code == 3
    assert "already applied" in again.output
    tampered = tmp_path / "tampered.json"
    tampered.write_text(path.read_text().replace('"writer"', '"wrjter"'))
    result = cli("apply", str(tampered), "--auto-approve", "--state", str(tmp_path / "other"))
    assert result.exit_code == 3
    assert "fingerprint mismatch" in result.output


def test_skip_check_needs_a_reason(runbook: Path, tmp_path: Path) -> None:
    result = cli(
        "apply", str(plan_file(runbook, tmp_path)), "--skip-check", "db.lag", "--state", str(tmp_path / "s")
    )
    assert result.exit_code == 2
    assert "--skip-check needs --reason" in result.output


def test_halted_run_can_be_rolled_back_from_the_cli(tmp_path: Path) -> None:
    runbook = tmp_path / "r.yaml"
    runbook.write_text(
        SITES
        + """
services:
  a: {steps: [{id: x, action: sim.step, site: "${to}", with: {target: a}}]}
  b:
    depends_on: [a]
    steps: [{id: y, action: sim.step, site: "${to}", with: {fail: true}}]
"""
    )
    state = tmp_path / "s"
    result = cli(
        "apply",
        str(plan_file(runbook, tmp_path)),
        "--on-failure",
        "halt",
        "--state",
        str(state),
        "--format",
        "json",
    )
    assert result.exit_code == 1
    run_id = json.loads(result.output.strip().splitlines()[-1])["run_id"]
    assert SimWorld(state).value("a") == "west"
    assert "halted" in cli("status", run_id, "--state", str(state)).output
    back = cli("rollback", run_id, "--state", str(state))
    assert back.exit_code == 1  # a rolled-back run did not succeed
    assert "rolled_back" in back.output
    assert SimWorld(state).value("a") is None


def test_drill_with_failback_writes_one_report_with_both_legs_and_a_summary(tmp_path: Path) -> None:
    def drill(state: str, report: str) -> dict[str, object] | str:
        result = cli(
            "drill", str(SIM_SHOP), "--from", "east", "--to", "west", "--failback", "--auto-approve",
            "--sim-speed", "10000", "--state", str(tmp_path / state), "--report", str(tmp_path / report),
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        text = (tmp_path / report).read_text()
        return json.loads(text) if report.endswith(".json") else text

    report = drill("s", "drill.md")
    assert isinstance(report, str)
    assert report.startswith("# Drill report: sim-shop, east -> west and back\n")
    assert report.count("# Drill report") == 1  # one report, not two appended
    assert "## Leg 1: east -> west (graceful)" in report
    assert "## Leg 2: west -> east (graceful)" in report
    assert "- drill **passed**: 2 run(s)" in report
    assert "x10000 faster: the times below are not a real failover's" in report  # said at the top
    assert SimWorld(tmp_path / "s").value("edge-dns") == "east"

    doc = drill("j", "drill.json")
    assert isinstance(doc, dict)
    assert doc["kind"] == "drill"
    summary, legs = doc["summary"], doc["legs"]
    assert isinstance(summary, dict) and isinstance(legs, list)
    assert [row["leg"] for row in summary["legs"]] == ["east -> west", "west -> east"]
    assert [row["run_id"] for row in summary["legs"]] == [leg["run_id"] for leg in legs]
    assert summary["ok"] is True
    assert summary["started_at"] == legs[0]["started_at"]
    assert summary["finished_at"] == legs[1]["finished_at"]
    assert all(leg["environment"]["sim_speed"] == 10000 for leg in legs)


def test_unknown_run_or_state_exits_2_and_creates_nothing(runbook: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert (
        cli("apply", str(plan_file(runbook, tmp_path)), "--auto-approve", "--state", str(state)).exit_code
        == 0
    )
    result = cli("status", "nope", "--state", str(state))
    assert result.exit_code == 2
    assert "no run 'nope'" in result.output
    typo = tmp_path / "typo"
    for command in (("status",), ("report", "nope"), ("history", str(runbook))):
        result = cli(*command, "--state", str(typo))
        assert result.exit_code == 2, result.output
        assert f"no journal in {typo}" in result.output
    assert not typo.exists()
