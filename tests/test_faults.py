"""Faults a sandbox drill rehearses: a site down or refusing, AWS throttling and denied
permissions in each service's own protocol, and the control planes AWS homes in us-east-1."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from click.testing import CliRunner

from failover.cli import main
from failover.planner import make_plan
from failover.runbook import load_runbook
from failover.sandbox import Sandbox
from tests.conftest import ROOT

EXAMPLES = ROOT / "runbooks" / "examples"


def drill(tmp_path: Path, runbook: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        main,
        ["drill", str(runbook), "--sandbox", "--auto-approve", "--state", str(tmp_path / "state"), *args],
    )
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        ("volcano:east", "unknown fault 'volcano:east'; expected one of site-down:SITE"),
        ("site-down", "expected site-down:SITE"),
        ("throttle:ecs:fast", "PER_SECOND must be a positive number, found 'fast'"),
        ("site-down:moon", "no site 'moon' in the runbook (sites: east, west)"),
    ],
)
def test_a_fault_that_is_not_understood_is_refused_saying_what_was_expected(
    tmp_path: Path, fault: str, says: str
) -> None:
    code, out = drill(
        tmp_path, EXAMPLES / "gcp-regional.yaml", "--from", "east", "--to", "west", "--fault", fault
    )
    assert code == 2 and says in out, out


def test_a_fault_needs_the_sandbox(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "drill",
            str(EXAMPLES / "gcp-regional.yaml"),
            "--from",
            "east",
            "--to",
            "west",
            "--fault",
            "site-down:east",
        ],
    )
    assert result.exit_code == 2 and "add --sandbox" in result.output


def test_an_ungraceful_drill_with_its_source_down_fails_over_then_back_once_it_returns(
    tmp_path: Path,
) -> None:
    code, out = drill(
        tmp_path,
        EXAMPLES / "gcp-regional.yaml",
        *(
            "--from",
            "east",
            "--to",
            "west",
            "--mode",
            "ungraceful",
            "--failback",
            "--fault",
            "site-down:east",
        ),
    )
    assert code == 0, out
    assert "faults: site-down:east" in out  # the failover's report says the source was down
    assert "Faults rehearsed: `site-down:east`." in out  # at the top of the report
    assert "at the clouds' speed (the sandbox ran x300)" in out  # measured under the time model
    assert "east back up to fail back" in out
    assert "end state equals the start state" in out


def test_with_us_east_1_down_route_53_record_changes_fail_from_every_region(tmp_path: Path) -> None:
    runbook = EXAMPLES / "aws-warm-standby.yaml"
    plan = make_plan(load_runbook(runbook), from_="east", to="west", mode="ungraceful")
    assert any("control plane homed in us-east-1" in w for w in plan.warnings)
    code, out = drill(
        tmp_path,
        runbook,
        "--from",
        "east",
        "--to",
        "west",
        "--mode",
        "ungraceful",
        "--fault",
        "site-refused:east",
    )
    assert code == 1, out
    assert "run " in out and ": halted: dns.shift failed" in out  # at west, but Route 53 lives in us-east-1
    assert "a sandbox drill's clouds ended with its process: it cannot be resumed" in out  # no resume hint
    assert "AWS unreachable for hosted zone shop.example.com. at west" in out


def aws_client(box: Sandbox, service: str) -> object:
    endpoint = box.overrides()["aws"]["endpoint_url"]
    return boto3.client(
        service,
        region_name="us-west-2",
        endpoint_url=endpoint,
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )


def test_throttling_and_denials_answer_in_each_protocol_as_aws_does() -> None:
    runbook = load_runbook(EXAMPLES / "aws-warm-standby.yaml")
    faults = ["throttle:ecs:1", "throttle:route53:1", "deny:autoscaling:UpdateAutoScalingGroup"]
    with Sandbox(runbook, faults) as box:
        ecs, route53, autoscaling, iam = (
            aws_client(box, s) for s in ("ecs", "route53", "autoscaling", "iam")
        )
        ecs.list_clusters()  # type: ignore[attr-defined]
        with pytest.raises(ClientError) as throttled:  # JSON protocol
            ecs.list_clusters()  # type: ignore[attr-defined]
        assert throttled.value.response["Error"]["Code"] == "Throttling"
        route53.list_hosted_zones()  # type: ignore[attr-defined]
        with pytest.raises(ClientError) as throttled:  # REST XML protocol
            route53.list_hosted_zones()  # type: ignore[attr-defined]
        assert throttled.value.response["Error"]["Code"] == "Throttling"
        autoscaling.describe_auto_scaling_groups()  # type: ignore[attr-defined]  # allowed
        with pytest.raises(ClientError) as denied:  # query protocol
            autoscaling.update_auto_scaling_group(AutoScalingGroupName="checkout-usw2", MinSize=1)  # type: ignore[attr-defined]
        assert denied.value.response["Error"]["Code"] == "AccessDenied"
        assert "autoscaling:UpdateAutoScalingGroup" in denied.value.response["Error"]["Message"]
        simulated = iam.simulate_principal_policy(  # type: ignore[attr-defined]
            PolicySourceArn="arn:aws:iam::123456789012:user/drill",
            ActionNames=["autoscaling:UpdateAutoScalingGroup", "ecs:UpdateService"],
        )["EvaluationResults"]
        assert [r["EvalDecision"] for r in simulated] == ["implicitDeny", "allowed"]


def test_gcp_faults_are_played_by_the_compute_fake(tmp_path: Path) -> None:
    runbook = load_runbook(EXAMPLES / "gcp-regional.yaml")
    faults = [
        "stockout:us-west1-a",
        "quota:cpus:6",
        "slow-health:web-usw1:90",
        "deny:compute.instances.start",
    ]
    with Sandbox(runbook, faults) as box:
        fake = box.compute_fake
        assert fake is not None
        assert "faults: stockout:us-west1-a, quota:cpus:6, slow-health:web-usw1:90" in box.describe()
        assert fake._stockouts == {"us-west1-a": "ZONE_RESOURCE_POOL_EXHAUSTED"}
        assert fake._quotas == {(None, None, "CPUS"): 6.0}
        assert fake._slow_health == {"web-usw1": 90.0}
        assert "compute.instances.start" in fake._denied


def test_a_drill_report_gives_each_waits_detection_lag(tmp_path: Path) -> None:
    code, out = drill(tmp_path, EXAMPLES / "aws-warm-standby.yaml", "--from", "east", "--to", "west")
    assert code == 0, out
    lags = out.split("## Detection lag")[1].split("## ")[0]
    assert "| `orders-db.switchover` |" in lags and "| `catalog.scale-up` |" in lags
    assert "| `checkout.scale-up` |" in lags
