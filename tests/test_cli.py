"""The failover command: exit codes, formats, files, and clear errors without tracebacks."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner, Result

from failover.cli import main
from failover.plan import Plan
from tests.conftest import ROOT, SIM_SHOP

SHOP = str(SIM_SHOP)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_validate_ok_exits_0() -> None:
    result = run("validate", SHOP)
    assert result.exit_code == 0
    assert "valid runbook 'sim-shop': 2 sites, 7 services, 8 steps" in result.output


def test_validate_lists_every_problem_and_exits_2(write_runbook: Callable[[str], Path]) -> None:
    path = write_runbook(
        """
        services:
          db:
            steps: [{id: a, action: sim.stepp, site: nowhere}]
        """
    )
    result = run("validate", str(path))
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert lines[0] == "error: 2 problems in runbook"
    assert lines[1].startswith(f"{path}:15:") and "unknown action 'sim.stepp'" in lines[1]
    assert "unknown site 'nowhere'" in lines[2]
    assert "Traceback" not in result.output


def test_plan_json_to_file_loads_back(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    result = run("plan", SHOP, "--from", "east", "--to", "west", "--format", "json", "-o", str(out))
    assert result.exit_code == 0
    plan = Plan.from_json(out.read_text())
    assert (plan.scenario.from_, plan.scenario.to) == ("east", "west")


@pytest.mark.parametrize(
    ("fmt", "marker"), [("text", "Steps, in order"), ("markdown", "```mermaid"), ("dot", "digraph plan")]
)
def test_plan_formats(fmt: str, marker: str) -> None:
    result = run("plan", SHOP, "--from", "west", "--to", "east", "--format", fmt)
    assert result.exit_code == 0
    assert marker in result.output


def test_plan_scope_and_mode() -> None:
    result = run(
        "plan",
        SHOP,
        "--from",
        "east",
        "--to",
        "west",
        "--scope",
        "checkout",
        "--mode",
        "ungraceful",
        "--format",
        "json",
    )
    doc = json.loads(result.output)
    assert doc["scenario"] == {"from": "east", "to": "west", "mode": "ungraceful", "scope": ["checkout"]}
    assert {s["service"] for s in doc["steps"]} == {"checkout", "orders-db"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "east", "--to", "mars"], "--to: unknown site 'mars'"),
        (["--from", "east", "--to", "east"], "both 'east'"),
        (["--from", "east", "--to", "west", "--scope", "nope"], "--scope: unknown service 'nope'"),
    ],
)
def test_plan_bad_scenario_exits_2(args: list[str], message: str) -> None:
    result = run("plan", SHOP, *args)
    assert result.exit_code == 2
    assert message in result.output


def test_plan_of_missing_runbook_exits_2(tmp_path: Path) -> None:
    result = run("plan", str(tmp_path / "nope.yaml"), "--from", "a", "--to", "b")
    assert result.exit_code == 2
    assert "cannot read runbook" in result.output


def test_unwritable_output_exits_2(tmp_path: Path) -> None:
    result = run("plan", SHOP, "--from", "east", "--to", "west", "-o", str(tmp_path / "no" / "x.md"))
    assert result.exit_code == 2
    assert "cannot write" in result.output


def test_missing_option_is_a_usage_error_exit_2() -> None:
    result = run("plan", SHOP, "--from", "east")
    assert result.exit_code == 2
    assert "Missing option '--to'" in result.output


def test_graph_impact() -> None:
    result = run("graph", SHOP, "--impact", "orders-db", "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.output)["impact"]["affected"] == ["catalog", "checkout", "edge-dns", "payments"]
    unknown = run("graph", SHOP, "--impact", "ordersdb")
    assert unknown.exit_code == 2
    assert "unknown service 'ordersdb'" in unknown.output


def test_actions_lists_every_action_and_check_with_parameters() -> None:
    entries = json.loads(run("actions", "--format", "json").output)
    by_name = {e["name"]: e for e in entries}
    assert by_name["sim.step"]["kind"] == "action"
    assert set(by_name["sim.step"]["parameters"]) >= {
        "duration",
        "fail",
        "fail_attempts",
        "reversible",
        "target",
    }
    assert by_name["sim.check"]["kind"] == "check"
    text = run("actions").output
    assert "sim.step (action, any site)" in text and "fail_attempts: integer = 0" in text


def test_schema_accepts_the_example_and_rejects_a_typo(tmp_path: Path) -> None:
    schema = json.loads(run("schema").output)
    jsonschema.Draft202012Validator.check_schema(schema)
    for path in sorted((ROOT / "runbooks").rglob("*.yaml")):
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
    bad = yaml.safe_load(SIM_SHOP.read_text())
    bad["services"]["search"]["steps"][0]["with"]["duraton"] = "1s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
