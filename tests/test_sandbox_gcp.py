"""The GCP sandbox end to end: the gcp-regional example drilled against the compute fake, failover
then failback; retries and rollback through the executor; its custom role; its validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from failover.cli import main
from failover.engine import Options, execute
from failover.planner import make_plan
from failover.policy import gcp_role
from failover.runbook import Runbook, load_runbook
from failover.sandbox import Sandbox
from tests.conftest import ROOT

GCP_REGIONAL = ROOT / "runbooks" / "examples" / "gcp-regional.yaml"

START = {
    "gcp group web-use4": 3,
    "gcp group web-usw1": 1,
    "gcp autoscaler web-use4": [3, 10],
    "gcp autoscaler web-usw1": [1, 2],
    "gcp backend web regions/us-east4/instanceGroups/web-use4": [1.0, False],
    "gcp backend web regions/us-west1/instanceGroups/web-usw1": [0.0, False],
    "gcp instance us-east4-a/scheduler-use4": "RUNNING",
    "gcp instance us-west1-a/scheduler-usw1": "TERMINATED",
}
FAILED_OVER = {
    "gcp group web-use4": 1,
    "gcp group web-usw1": 3,
    "gcp autoscaler web-use4": [1, 2],
    "gcp autoscaler web-usw1": [3, 10],
    "gcp backend web regions/us-east4/instanceGroups/web-use4": [0.0, False],
    "gcp backend web regions/us-west1/instanceGroups/web-usw1": [1.0, False],
    "gcp instance us-east4-a/scheduler-use4": "TERMINATED",
    "gcp instance us-west1-a/scheduler-usw1": "RUNNING",
}


@pytest.fixture
def regional() -> Runbook:
    return load_runbook(GCP_REGIONAL)


def _no_sleep(_: float) -> None:
    pass


def test_gcp_regional_fails_over_and_back_in_the_sandbox(regional: Runbook, tmp_path: Path) -> None:
    with Sandbox(regional) as box:
        assert box.start == START
        options = Options(auto_approve=True, overrides=box.overrides())
        there = execute(make_plan(regional, from_="east", to="west"), tmp_path, options)
        assert there.ok, there.message
        assert box.state() == FAILED_OVER
        back = execute(make_plan(regional, from_="west", to="east"), tmp_path, options)
        assert back.ok, back.message
        assert box.state() == START
        assert box.compare_with_start().startswith("end state equals the start state")


def test_a_throttled_limit_change_is_retried_and_a_denied_traffic_shift_rolls_everything_back(
    regional: Runbook, tmp_path: Path
) -> None:
    with Sandbox(regional) as box:
        fake = box.compute_fake
        assert fake is not None
        fake.fail("PATCH", r"/regions/us-west1/autoscalers$", status=429, reason="rateLimitExceeded")
        fake.fail("PATCH", r"/global/backendServices/web$", status=403, reason="forbidden", message="denied")
        options = Options(auto_approve=True, overrides=box.overrides(), sleep=_no_sleep)
        result = execute(make_plan(regional, from_="east", to="west"), tmp_path, options)
        assert (result.status, result.exit_code) == ("rolled_back", 1), result.message
        steps = result.state.steps
        assert steps["web-standby.limits"].attempts == 2  # throttled once, then done
        assert steps["traffic.shift"].attempts == 1  # denied: not tried again
        assert "GCP Forbidden (403, forbidden) on backend service web" in str(steps["traffic.shift"].error)
        assert box.state() == START  # limits, size and the scheduler were put back


def test_the_drill_command_runs_the_gcp_sandbox_and_reports_the_end_state(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            *("drill", str(GCP_REGIONAL), "--from", "east", "--to", "west", "--failback"),
            *("--sandbox", "--auto-approve", "--format", "json", "--state", str(tmp_path)),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "sandbox: GCP (compute fake) on http://127.0.0.1:" in result.stderr
    assert "sandbox: end state equals the start state (8 resource settings compared)" in result.stderr
    outcomes = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"run_id"')]
    assert [o["status"] for o in outcomes] == ["succeeded", "succeeded"]


def test_plan_with_the_gcp_sandbox_shows_what_each_step_would_change_now() -> None:
    result = CliRunner().invoke(
        main,
        ["plan", str(GCP_REGIONAL), "--from", "east", "--to", "west", "--sandbox", "--format", "markdown"],
    )
    assert result.exit_code == 0, result.output
    assert '| `web-standby.scale-up` | `{"size": 1}` |' in result.stdout
    limits = '`{"group_size": 1, "max_replicas": 2, "min_replicas": 1}`'
    assert f"| `web-standby.limits` | {limits} |" in result.stdout
    assert '| `drain-source.scale-down` | `{"size": 3}` |' in result.stdout


def test_the_custom_role_holds_exactly_what_the_plan_needs(regional: Runbook) -> None:
    plan = make_plan(regional, from_="east", to="west")
    role = gcp_role(plan)
    assert role["title"] == "failover gcp-regional east -> west"
    assert role["stage"] == "GA"
    assert role["includedPermissions"] == [
        "compute.autoscalers.get",
        "compute.autoscalers.update",
        "compute.backendServices.get",
        "compute.backendServices.update",
        "compute.globalOperations.get",
        "compute.instanceGroupManagers.get",
        "compute.instanceGroupManagers.update",
        "compute.instanceGroups.use",
        "compute.instances.get",
        "compute.instances.start",
        "compute.instances.stop",
        "compute.regionOperations.get",
        "compute.regions.get",
        "compute.zoneOperations.get",
    ]
    east = gcp_role(plan, "east")["includedPermissions"]
    assert isinstance(east, list) and "compute.regions.get" not in east  # the preflight runs at west
    result = CliRunner().invoke(main, ["iam-policy", str(GCP_REGIONAL), "--from", "east", "--to", "west"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == role


def test_a_plan_in_both_clouds_needs_cloud_to_say_which_document(tmp_path: Path) -> None:
    text = GCP_REGIONAL.read_text(encoding="utf-8")
    for region, aws in (("us-east4", "us-east-1"), ("us-west1", "us-west-2")):
        gcp = f"gcp: {{project: shop-prod, region: {region}}}"
        text = text.replace(gcp, f"{gcp}\n    aws: {{region: {aws}}}")
    asg = '{id: asg, action: aws.autoscaling.set_capacity, site: "${to}", with: {group: g, desired: 1}}'
    text = text.replace("  drain-source:\n", f"  capacity-aws:\n    steps:\n      - {asg}\n  drain-source:\n")
    path = tmp_path / "both.yaml"
    path.write_text(text, encoding="utf-8")
    args = ["iam-policy", str(path), "--from", "east", "--to", "west"]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 2
    assert "the plan needs permissions in aws and gcp: give --cloud aws or --cloud gcp" in refused.stderr
    aws = CliRunner().invoke(main, [*args, "--cloud", "aws"])
    assert json.loads(aws.stdout)["Statement"][0]["Action"] == ["autoscaling:DescribeAutoScalingGroups"]
    gcp = CliRunner().invoke(main, [*args, "--cloud", "gcp"])
    assert "compute.instanceGroupManagers.update" in json.loads(gcp.stdout)["includedPermissions"]


def test_a_sandbox_gcp_resource_at_a_site_without_gcp_is_a_validation_error(tmp_path: Path) -> None:
    text = GCP_REGIONAL.read_text(encoding="utf-8").replace(
        "    gcp: {project: shop-prod, region: us-west1}\n", "    aws: {region: us-west-2}\n"
    )
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert (
        "sandbox.gcp.instance_groups[1].site: site 'west' has no gcp placement (project and region) "
        "for a sandbox GCP resource" in result.stderr
    )
