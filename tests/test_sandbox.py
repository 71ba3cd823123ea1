"""The AWS sandbox end to end: the warm-standby example drilled against a moto server, failover
then failback, the world checked at each stage; and the least-privilege policy of its plans."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from failover.cli import main
from failover.engine import Options, execute, resume
from failover.planner import make_plan
from failover.policy import iam_policy
from failover.runbook import Runbook, load_runbook
from failover.sandbox import Sandbox
from tests.aws_helpers import FailingClients
from tests.conftest import ROOT
from tests.executor_helpers import plan_from

WARM_STANDBY = ROOT / "runbooks" / "examples" / "aws-warm-standby.yaml"

START = {
    "asg checkout-use1": [2, 2, 6],
    "asg checkout-usw2": [0, 0, 6],
    "ecs shop-use1/catalog": 3,
    "ecs shop-usw2/catalog": 0,
    "global orders writer": "orders-use1",
    "lb shop-use1:80": {"app-use1": 100, "maint-use1": 0},
    "lb shop-usw2:80": {"app-usw2": 0, "maint-usw2": 100},
    "record api.shop.example.com. A east": 100,
    "record api.shop.example.com. A west": 0,
}
FAILED_OVER = {
    "asg checkout-use1": [0, 0, 6],
    "asg checkout-usw2": [2, 2, 6],
    "ecs shop-use1/catalog": 0,
    "ecs shop-usw2/catalog": 3,
    "global orders writer": "orders-usw2",
    "lb shop-use1:80": {"app-use1": 0, "maint-use1": 100},
    "lb shop-usw2:80": {"app-usw2": 100, "maint-usw2": 0},
    "record api.shop.example.com. A east": 0,
    "record api.shop.example.com. A west": 100,
}


@pytest.fixture
def warm_standby() -> Runbook:
    return load_runbook(WARM_STANDBY)


def test_warm_standby_fails_over_and_back_in_the_sandbox(warm_standby: Runbook, tmp_path: Path) -> None:
    with Sandbox(warm_standby) as box:
        assert box.start == START
        options = Options(auto_approve=True, overrides=box.overrides())
        there = execute(make_plan(warm_standby, from_="east", to="west"), tmp_path, options)
        assert there.ok, there.message
        assert box.state() == FAILED_OVER
        back = execute(make_plan(warm_standby, from_="west", to="east"), tmp_path, options)
        assert back.ok, back.message
        assert box.state() == START
        assert box.compare_with_start().startswith("end state equals the start state")


def test_a_failure_after_the_pivot_halts_and_resume_finishes_the_failover(
    warm_standby: Runbook, tmp_path: Path
) -> None:
    with Sandbox(warm_standby) as box:
        denied = FailingClients("AccessDenied", 403, operation="UpdateService")
        options = Options(auto_approve=True, overrides=box.overrides(), clients=denied)
        halted = execute(make_plan(warm_standby, from_="east", to="west"), tmp_path, options)
        assert (halted.status, halted.exit_code) == ("halted", 1)
        assert "after pivot orders-db.switchover began: no rollback past a pivot" in halted.message
        now = box.state()
        assert now["global orders writer"] == "orders-usw2"  # the pivot stands
        for untouched in ("ecs shop-usw2/catalog", "lb shop-usw2:80", "record api.shop.example.com. A west"):
            assert now[untouched] == START[untouched]
        # the person fixes the permission; resume goes on forward from where the run stopped
        done = resume(halted.run_id, tmp_path, Options(auto_approve=True, overrides=box.overrides()))
        assert done.ok, done.message
        assert box.state() == FAILED_OVER


def test_the_drill_command_runs_the_sandbox_and_reports_the_end_state(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "drill",
            str(WARM_STANDBY),
            "--from",
            "east",
            "--to",
            "west",
            "--failback",
            "--sandbox",
            "--auto-approve",
            "--format",
            "json",
            "--state",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "sandbox: end state equals the start state (9 resource settings compared)" in result.stderr
    outcomes = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"run_id"')]
    assert [o["status"] for o in outcomes] == ["succeeded", "succeeded"]


def test_a_sandbox_drill_of_a_runbook_without_a_sandbox_section_is_bad_input(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "drill",
            str(ROOT / "runbooks/examples/sim-shop.yaml"),
            "--from",
            "east",
            "--to",
            "west",
            "--sandbox",
        ],
    )
    assert result.exit_code == 2
    assert "has no sandbox: section" in result.stderr


def test_a_sandbox_resource_at_an_unknown_site_is_a_validation_error(
    write_runbook: object, tmp_path: Path
) -> None:
    text = WARM_STANDBY.read_text(encoding="utf-8").replace(
        "{site: west, name: checkout-usw2", "{site: wset, name: checkout-usw2"
    )
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert (
        "bad.yaml:114:16: sandbox.aws.auto_scaling_groups[1].site: unknown site 'wset'; did you mean 'west'?"
        in (result.stderr)
    )


def test_the_iam_policy_grants_exactly_what_the_plan_needs(warm_standby: Runbook) -> None:
    plan = make_plan(warm_standby, from_="east", to="west")
    policy = iam_policy(plan)
    granted = {
        (action, resource)
        for statement in policy["Statement"]  # type: ignore[union-attr]
        for action in statement["Action"]  # type: ignore[index]
        for resource in (
            [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]  # type: ignore[index]
        )
    }
    needed = {(p.action, p.resource) for p in plan.permissions("aws")}
    wildcard = {a for a, r in needed if r == "*"}
    assert granted == {(a, r) for a, r in needed if a not in wildcard} | {(a, "*") for a in wildcard}
    assert ("rds:SwitchoverGlobalCluster", "arn:aws:rds:us-west-2:*:cluster:orders-usw2") in granted
    assert not any(a.startswith("rds:Failover") for a, _ in granted)  # graceful: no data-loss failover


def test_iam_policy_per_site_and_from_a_plan_file(tmp_path: Path) -> None:
    runner = CliRunner()
    planned = runner.invoke(
        main,
        [
            "plan",
            str(WARM_STANDBY),
            "--from",
            "east",
            "--to",
            "west",
            "--format",
            "json",
            "-o",
            str(tmp_path / "p.json"),
        ],
    )
    assert planned.exit_code == 0, planned.output
    whole = runner.invoke(main, ["iam-policy", "--plan", str(tmp_path / "p.json")])
    east = runner.invoke(main, ["iam-policy", "--plan", str(tmp_path / "p.json"), "--site", "east"])
    assert whole.exit_code == 0 and east.exit_code == 0, whole.output + east.output
    actions = lambda out: {a for s in json.loads(out)["Statement"] for a in s["Action"]}  # noqa: E731
    assert "rds:SwitchoverGlobalCluster" in actions(whole.stdout)
    assert "rds:SwitchoverGlobalCluster" not in actions(east.stdout)  # the switchover runs at west
    assert "elasticloadbalancing:ModifyListener" in actions(east.stdout)  # east is closed afterwards
    bad = runner.invoke(main, ["iam-policy", str(WARM_STANDBY)])
    assert bad.exit_code == 2 and "--from SITE --to SITE" in bad.stderr


def test_plan_with_the_sandbox_shows_what_each_step_would_change_now() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["plan", str(WARM_STANDBY), "--from", "east", "--to", "west", "--sandbox"])
    assert result.exit_code == 0, result.output
    live = result.stdout.split("Live reads (sandbox)", 1)[1]
    assert '"writer": "arn:aws:rds:us-east-1:123456789012:cluster:orders-use1"' in live
    assert '"weights": {"app-usw2": 0, "maint-usw2": 100}' in live.split("load-balancer.open", 1)[1]
    assert 'drain-source.checkout-down  {"desired": 2, "max": 6, "min": 2}' in live
    markdown = runner.invoke(
        main,
        ["plan", str(WARM_STANDBY), "--from", "east", "--to", "west", "--sandbox", "--format", "markdown"],
    )
    assert '| `catalog.scale-up` | `{"desired_count": 0}` |' in markdown.stdout
    as_json = runner.invoke(
        main, ["plan", str(WARM_STANDBY), "--from", "east", "--to", "west", "--sandbox", "--format", "json"]
    )
    assert as_json.exit_code == 2 and "not json" in as_json.stderr


def test_the_iam_policy_of_a_small_plan_written_out() -> None:
    plan = plan_from(
        """
        services:
          app:
            preflight:
              - {id: room, check: aws.autoscaling.capacity_available, site: "${to}",
                 with: {group: web, desired: 2}}
            steps:
              - {id: scale, action: aws.autoscaling.set_capacity, site: "${to}",
                 with: {group: web, desired: 2}}
              - {id: tasks, action: aws.ecs.set_desired_count, site: "${to}",
                 with: {cluster: shop, service: api, count: 2}}
        """
    )
    assert iam_policy(plan) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Failover1",
                "Effect": "Allow",
                "Action": ["autoscaling:DescribeAutoScalingGroups"],
                "Resource": "*",
            },
            {
                "Sid": "Failover2",
                "Effect": "Allow",
                "Action": ["autoscaling:UpdateAutoScalingGroup"],
                "Resource": "arn:aws:autoscaling:us-west-2:*:autoScalingGroup:*:autoScalingGroupName/web",
            },
            {
                "Sid": "Failover3",
                "Effect": "Allow",
                "Action": ["ecs:DescribeServices", "ecs:UpdateService"],
                "Resource": "arn:aws:ecs:us-west-2:*:service/shop/api",
            },
        ],
    }
