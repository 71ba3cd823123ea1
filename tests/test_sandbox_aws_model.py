"""The sandbox's AWS against what AWS does: Aurora global database switchover and failover
(FailoverState, SynchronizationStatus, the target as an ARN, AllowDataLoss), replica promotion,
ECS task starts, Auto Scaling warm-up, Route 53 propagation, each over the time ``clock`` gives
it; and IAM policy simulation from the policy ``sandbox.aws`` declares.

Most tests drive the sandbox's clock by hand (``later``), so what they see at each moment is
exact; the provider tests run on the real clock, sped up, and check that each wait lasts at
least what AWS would take."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import ValidationError

from failover.providers.aws import autoscaling, ecs, rds, route53
from failover.providers.base import Context, Placement
from failover.runbook import Runbook, load_runbook, parse_runbook
from failover.sandbox import Sandbox, clock
from failover.sandbox.spec import AwsSandbox
from tests.conftest import ROOT, SITES

WARM_STANDBY = ROOT / "runbooks" / "examples" / "aws-warm-standby.yaml"
EAST_ARN = "arn:aws:rds:us-east-1:123456789012:cluster:orders-use1"
WEST_ARN = "arn:aws:rds:us-west-2:123456789012:cluster:orders-usw2"
MARGIN = 0.05  # of a duration: how far before or after it the tests look


class Clock:
    """The sandbox's clock, moved on by the test (and by a microsecond at each reading)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        self.t += 1e-6
        return self.t

    def later(self, *names: str, by: float = 1.0 + MARGIN) -> None:
        """Move on by ``by`` times the durations ``names`` (just past them by default)."""
        self.t += by * sum(clock.seconds(n) for n in names)


@pytest.fixture
def later(monkeypatch: pytest.MonkeyPatch) -> Clock:
    hand = Clock()
    monkeypatch.setattr(clock, "now", hand)
    return hand


@pytest.fixture
def speed() -> Iterator[Callable[[float], None]]:
    """Set the sandbox's speed (inside a sandbox); the default comes back afterwards."""
    yield clock.set_speed
    clock.set_speed(clock.DEFAULT_SPEED)


@pytest.fixture
def warm_standby() -> Runbook:
    return load_runbook(WARM_STANDBY)


Clients = Callable[..., Any]


def clients(box: Sandbox) -> Clients:
    endpoint = box.overrides()["aws"]["endpoint_url"]

    def make(service: str, region: str = "us-west-2") -> Any:
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=endpoint,
            aws_access_key_id="sandbox",
            aws_secret_access_key="sandbox",
            config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
        )

    return make


def error(call: Callable[..., Any], **params: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call(**params)
    return raised.value.response["Error"]["Code"], raised.value.response["Error"]["Message"]


# --- Aurora global databases --------------------------------------------------------------------


def orders(rds_client: Any) -> dict[str, Any]:
    found: dict[str, Any] = rds_client.describe_global_clusters(GlobalClusterIdentifier="orders")[
        "GlobalClusters"
    ][0]
    return found


def writer(found: dict[str, Any]) -> str:
    return str(next(m["DBClusterArn"] for m in found["GlobalClusterMembers"] if m["IsWriter"]))


def sync(found: dict[str, Any]) -> dict[str, str | None]:
    return {m["DBClusterArn"]: m.get("SynchronizationStatus") for m in found["GlobalClusterMembers"]}


def test_a_switchover_is_pending_then_switching_over_then_the_writer_moves(
    warm_standby: Runbook, later: Clock
) -> None:
    with Sandbox(warm_standby) as box:
        db = clients(box)("rds")
        found = orders(db)
        assert (found["Status"], writer(found), "FailoverState" in found) == ("available", EAST_ARN, False)
        assert sync(found) == {EAST_ARN: None, WEST_ARN: "connected"}  # a writer reports none

        code, message = error(
            db.switchover_global_cluster,
            GlobalClusterIdentifier="orders",
            TargetDbClusterIdentifier="orders-usw2",
        )
        assert code == "InvalidParameterValue" and "Amazon Resource Name (ARN)" in message

        asked = db.switchover_global_cluster(
            GlobalClusterIdentifier="orders", TargetDbClusterIdentifier=WEST_ARN
        )
        pending = {
            "Status": "pending",
            "FromDbClusterArn": EAST_ARN,
            "ToDbClusterArn": WEST_ARN,
            "IsDataLossAllowed": False,
        }
        assert asked["GlobalCluster"]["FailoverState"] == pending
        assert asked["GlobalCluster"]["Status"] == "available"  # until the switchover itself begins

        later.later("aurora_pending", by=1 - MARGIN)
        assert orders(db)["FailoverState"] == pending
        code, message = error(
            db.switchover_global_cluster, GlobalClusterIdentifier="orders", TargetDbClusterIdentifier=WEST_ARN
        )
        assert code == "InvalidGlobalClusterStateFault" and "pending" in message

        later.later("aurora_pending", by=2 * MARGIN)
        found = orders(db)
        assert (found["Status"], found["FailoverState"]["Status"]) == ("switching-over", "switching-over")
        assert writer(found) == EAST_ARN
        code, _ = error(
            db.failover_global_cluster,
            GlobalClusterIdentifier="orders",
            TargetDbClusterIdentifier=WEST_ARN,
            AllowDataLoss=True,
        )
        assert code == "InvalidGlobalClusterStateFault"

        later.later("aurora_switchover", by=1 - 2 * MARGIN)
        assert writer(orders(db)) == EAST_ARN
        later.later("aurora_switchover", by=2 * MARGIN)
        found = orders(db)
        assert (found["Status"], writer(found), "FailoverState" in found) == ("available", WEST_ARN, False)
        assert sync(found) == {EAST_ARN: "connected", WEST_ARN: None}  # a switchover loses nothing


def test_only_a_failover_allowing_data_loss_goes_to_a_member_out_of_sync(
    warm_standby: Runbook, later: Clock
) -> None:
    with Sandbox(warm_standby) as box:
        db = clients(box)("rds")
        move = {"GlobalClusterIdentifier": "orders", "TargetDbClusterIdentifier": WEST_ARN}
        code, _ = error(db.failover_global_cluster, **move, AllowDataLoss=True, Switchover=True)
        assert code == "InvalidParameterCombination"
        code, _ = error(db.switchover_global_cluster, **move | {"TargetDbClusterIdentifier": EAST_ARN})
        assert code == "InvalidDBClusterStateFault"  # already the writer
        code, _ = error(db.failover_global_cluster, **move | {"TargetDbClusterIdentifier": "orders-usw2"})
        assert code == "InvalidParameterValue"

        failing = db.failover_global_cluster(**move, AllowDataLoss=True)["GlobalCluster"]["FailoverState"]
        assert (failing["Status"], failing["IsDataLossAllowed"]) == ("pending", True)
        later.later("aurora_pending")
        found = orders(db)
        assert (found["Status"], found["FailoverState"]["Status"]) == ("failing-over", "failing-over")
        later.later("aurora_failover")
        found = orders(db)
        assert (writer(found), found["Status"]) == (WEST_ARN, "available")
        assert sync(found) == {EAST_ARN: "pending-resync", WEST_ARN: None}  # the old writer catches up

        back = {"GlobalClusterIdentifier": "orders", "TargetDbClusterIdentifier": EAST_ARN}
        for call, extra in (
            (db.switchover_global_cluster, {}),
            (db.failover_global_cluster, {}),  # without AllowDataLoss: a switchover
            (db.failover_global_cluster, {"Switchover": True}),
        ):
            code, message = error(call, **back, **extra)
            assert code == "InvalidDBClusterStateFault" and "pending-resync" in message
        later.later("aurora_switchover")
        assert sync(orders(db)) == {EAST_ARN: "connected", WEST_ARN: None}
        switching = db.failover_global_cluster(**back, Switchover=True)["GlobalCluster"]["FailoverState"]
        assert (switching["Status"], switching["IsDataLossAllowed"]) == ("pending", False)
        later.later("aurora_pending", "aurora_switchover")
        assert writer(orders(db)) == EAST_ARN


# --- promoted replicas --------------------------------------------------------------------------

REPLICAS = """
services:
  db:
    steps:
      - {id: promote, action: aws.rds.promote_replica_cluster, site: "${to}", pivot: true,
         with: {cluster: orders-usw2}}
sandbox:
  aws:
    replica_clusters:
      - {site: west, cluster: orders-usw2, source: {site: east, cluster: orders-use1}}
"""


def test_a_promoted_replica_is_promoting_with_its_source_until_it_stands_alone(later: Clock) -> None:
    with Sandbox(parse_runbook(SITES + REPLICAS, "t.yaml")) as box:
        west, east = clients(box)("rds"), clients(box)("rds", "us-east-1")

        def replica() -> tuple[str, str | None]:
            found = west.describe_db_clusters(DBClusterIdentifier="orders-usw2")["DBClusters"][0]
            return found["Status"], found.get("ReplicationSourceIdentifier")

        assert replica() == ("available", EAST_ARN)
        west.promote_read_replica_db_cluster(DBClusterIdentifier="orders-usw2")
        assert replica() == ("promoting", EAST_ARN)
        code, _ = error(west.promote_read_replica_db_cluster, DBClusterIdentifier="orders-usw2")
        assert code == "InvalidDBClusterStateFault"
        later.later("aurora_promote", by=1 - MARGIN)
        assert replica() == ("promoting", EAST_ARN)
        later.later("aurora_promote", by=2 * MARGIN)
        assert replica() == ("available", None)
        source = east.describe_db_clusters(DBClusterIdentifier="orders-use1")["DBClusters"][0]
        assert not source.get("ReadReplicaIdentifiers")
        code, message = error(west.promote_read_replica_db_cluster, DBClusterIdentifier="orders-usw2")
        assert code == "InvalidDBClusterStateFault" and "not a read replica" in message

        arn = east.create_db_instance(
            DBInstanceIdentifier="ledger",
            DBInstanceClass="db.t3.micro",
            Engine="postgres",
            MasterUsername="sandbox",
            MasterUserPassword="sandbox-password",
            AllocatedStorage=20,
        )["DBInstance"]["DBInstanceArn"]
        west.create_db_instance_read_replica(
            DBInstanceIdentifier="ledger-usw2", SourceDBInstanceIdentifier=arn
        )

        def instance() -> tuple[str, str | None]:
            found = west.describe_db_instances(DBInstanceIdentifier="ledger-usw2")["DBInstances"][0]
            return found["DBInstanceStatus"], found.get("ReadReplicaSourceDBInstanceIdentifier")

        assert instance() == ("available", arn)
        west.promote_read_replica(DBInstanceIdentifier="ledger-usw2")
        assert instance() == ("modifying", arn)  # RDS reboots the instance it promotes
        later.later("aurora_promote")
        assert instance() == ("available", None)


# --- ECS ----------------------------------------------------------------------------------------


def service(ecs_client: Any, cluster: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = ecs_client.describe_services(cluster=cluster, services=[name])["services"][0]
    return found


def counts(found: dict[str, Any]) -> tuple[int, int, int]:
    return found["desiredCount"], found["runningCount"], found["pendingCount"]


def test_ecs_runs_the_desired_count_once_the_tasks_have_started(warm_standby: Runbook, later: Clock) -> None:
    with Sandbox(warm_standby) as box:
        west, east = clients(box)("ecs"), clients(box)("ecs", "us-east-1")
        assert counts(service(east, "shop-use1", "catalog")) == (3, 3, 0)  # declared: running already
        assert counts(service(west, "shop-usw2", "catalog")) == (0, 0, 0)

        west.update_service(cluster="shop-usw2", service="catalog", desiredCount=3)
        found = service(west, "shop-usw2", "catalog")
        assert counts(found) == (3, 0, 3)
        assert len(found["deployments"]) == 1 and counts(found["deployments"][0]) == (3, 0, 3)
        assert found["events"][0]["message"].startswith("(service catalog) has started 3 tasks: (task ")
        later.later("ecs_task_start", by=1 - MARGIN)
        assert counts(service(west, "shop-usw2", "catalog")) == (3, 0, 3)
        later.later("ecs_task_start", by=2 * MARGIN)
        found = service(west, "shop-usw2", "catalog")
        assert counts(found) == (3, 3, 0) and counts(found["deployments"][0]) == (3, 3, 0)
        assert found["events"][0]["message"] == "(service catalog) has reached a steady state."

        east.update_service(cluster="shop-use1", service="catalog", desiredCount=0)
        assert counts(service(east, "shop-use1", "catalog")) == (0, 3, 0)  # stopping
        later.later("ecs_task_start")
        assert counts(service(east, "shop-use1", "catalog")) == (0, 0, 0)

        created = west.create_service(
            cluster="shop-usw2", serviceName="search", taskDefinition="catalog-task", desiredCount=2
        )["service"]
        assert counts(created) == (2, 0, 2) and created["deployments"][0]["rolloutState"] == "IN_PROGRESS"
        later.later("ecs_task_start")
        found = service(west, "shop-usw2", "search")
        assert counts(found) == (2, 2, 0) and found["deployments"][0]["rolloutState"] == "COMPLETED"


# --- Auto Scaling and Route 53 ------------------------------------------------------------------


def test_auto_scaling_instances_are_pending_until_warmed_up(warm_standby: Runbook, later: Clock) -> None:
    with Sandbox(warm_standby) as box:
        west, east = clients(box)("autoscaling"), clients(box)("autoscaling", "us-east-1")

        def states(client: Any, group: str) -> list[str]:
            found = client.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]
            return sorted(i["LifecycleState"] for i in found["Instances"])

        assert states(east, "checkout-use1") == ["InService", "InService"]  # declared: warm already
        west.update_auto_scaling_group(AutoScalingGroupName="checkout-usw2", MinSize=2, DesiredCapacity=2)
        assert states(west, "checkout-usw2") == ["Pending", "Pending"]
        west.set_desired_capacity(AutoScalingGroupName="checkout-usw2", DesiredCapacity=2)
        assert len(states(west, "checkout-usw2")) == 2  # pending instances count toward the capacity
        later.later("asg_warmup", by=1 - MARGIN)
        assert states(west, "checkout-usw2") == ["Pending", "Pending"]
        west.set_desired_capacity(AutoScalingGroupName="checkout-usw2", DesiredCapacity=3)
        later.later("asg_warmup", by=2 * MARGIN)
        assert states(west, "checkout-usw2") == ["InService", "InService", "Pending"]
        later.later("asg_warmup")
        assert states(west, "checkout-usw2") == ["InService"] * 3


def test_a_route_53_change_is_pending_until_in_sync(warm_standby: Runbook, later: Clock) -> None:
    with Sandbox(warm_standby) as box:
        r53 = clients(box)("route53", "us-east-1")
        zone = r53.list_hosted_zones_by_name(DNSName="shop.example.com")["HostedZones"][0]["Id"]
        record = {
            "Name": "www.shop.example.com",
            "Type": "A",
            "TTL": 60,
            "ResourceRecords": [{"Value": "1.2.3.4"}],
        }
        batch = {"Comment": "drill", "Changes": [{"Action": "UPSERT", "ResourceRecordSet": record}]}
        info = r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch=batch)["ChangeInfo"]
        assert (info["Status"], info["Comment"]) == ("PENDING", "drill")
        again = r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch=batch)["ChangeInfo"]
        assert again["Id"] != info["Id"]  # each change batch has its own
        later.later("route53_insync", by=1 - MARGIN)
        assert r53.get_change(Id=info["Id"])["ChangeInfo"]["Status"] == "PENDING"
        later.later("route53_insync", by=2 * MARGIN)
        found = r53.get_change(Id=info["Id"])["ChangeInfo"]
        assert (found["Id"], found["Status"], found["SubmittedAt"]) == (
            info["Id"],
            "INSYNC",
            info["SubmittedAt"],
        )
        code, _ = error(r53.get_change, Id="/change/C0000000000000")
        assert code == "NoSuchChange"


# --- the providers' waits, on the real clock ----------------------------------------------------


def real_context(box: Sandbox, site: str = "west") -> Context:
    region = {"east": "us-east-1", "west": "us-west-2"}[site]
    return Context(
        run_id="run-1",
        step_id="svc.step",
        placement=Placement(site, "aws", region),
        state_dir=Path("."),
        settings={"region": region, **box.overrides()["aws"]},
    )


def timed(apply: Callable[[], object]) -> float:
    started = time.monotonic()
    apply()
    return time.monotonic() - started


def test_the_providers_wait_as_long_as_aws_takes(
    warm_standby: Runbook, speed: Callable[[float], None]
) -> None:
    with Sandbox(warm_standby) as box:
        speed(100.0)  # 1/100 of each duration: under a second each
        ctx = real_context(box)

        def wait(action: Any, params: dict[str, Any], *durations: str) -> None:
            parsed = action.parse(params)
            assert not action.verify(ctx, parsed)
            took = timed(lambda: action.apply(ctx, parsed))
            assert took >= sum(clock.seconds(d) for d in durations)  # not one poll sooner
            assert action.verify(ctx, parsed)

        writer_params = {"global_cluster": "orders", "target_cluster": "orders-usw2"}
        wait(rds.SwitchoverGlobalCluster(), writer_params, "aurora_pending", "aurora_switchover")
        wait(
            ecs.SetDesiredCount(),
            {"cluster": "shop-usw2", "service": "catalog", "count": 3},
            "ecs_task_start",
        )
        wait(autoscaling.SetCapacity(), {"group": "checkout-usw2", "min": 2, "desired": 2}, "asg_warmup")
        weights = {
            "zone_name": "shop.example.com",
            "records": [{"name": "api.shop.example.com", "weights": {"west": 100}}],
        }
        action = route53.SetWeights()
        took = timed(lambda: action.apply(ctx, action.parse(weights)))
        assert took >= clock.seconds("route53_insync")


# --- IAM policy simulation ----------------------------------------------------------------------

POLICY = """
services:
  app:
    steps:
      - {id: scale, action: aws.ecs.set_desired_count, site: "${to}",
         with: {cluster: shop, service: api, count: 2}}
sandbox:
  aws:
    ecs_services: [{site: west, cluster: shop, service: api}]
    policy:
      allow: ["ecs:*", "rds:Describe*", "iam:SimulatePrincipal?olicy"]
      deny: ["ecs:DeleteService"]
"""


def decisions(iam: Any, *actions: str) -> list[str]:
    found = iam.simulate_principal_policy(
        PolicySourceArn="arn:aws:iam::123456789012:role/drill", ActionNames=list(actions)
    )["EvaluationResults"]
    return [r["EvalDecision"] for r in found]


def test_policy_simulation_answers_from_the_declared_policy() -> None:
    runbook = parse_runbook(SITES + POLICY, "t.yaml")
    with Sandbox(runbook, ["deny:ecs:UpdateService"]) as box:
        iam = clients(box)("iam", "us-east-1")
        assert decisions(
            iam,
            "ecs:DescribeServices",  # allowed by ecs:*
            "ECS:describeservices",  # actions are not case-sensitive
            "ecs:DeleteService",  # denied explicitly, though ecs:* allows it
            "ecs:UpdateService",  # allowed, but the deny fault takes it away
            "rds:DescribeDBClusters",
            "rds:SwitchoverGlobalCluster",  # allowed by nothing
            "iam:SimulatePrincipalPolicy",
        ) == ["allowed", "allowed", "explicitDeny", "implicitDeny", "allowed", "implicitDeny", "allowed"]
    with Sandbox(load_runbook(WARM_STANDBY)) as box:  # no policy declared: everything is allowed
        assert decisions(clients(box)("iam", "us-east-1"), "ecs:DeleteService", "rds:Anything") == [
            "allowed",
            "allowed",
        ]


@pytest.mark.parametrize("pattern", ["ecs", "ecs:Update Service", "*:UpdateService", "ecs:[UD]*", ""])
def test_a_policy_pattern_that_is_not_an_iam_action_is_refused(pattern: str) -> None:
    with pytest.raises(ValidationError, match="is not an IAM action pattern"):
        AwsSandbox.model_validate({"policy": {"allow": ["ecs:*"], "deny": [pattern]}})
