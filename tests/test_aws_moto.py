"""AWS actions and checks against in-process moto: apply, verify, idempotency, compensation, and
how AWS errors reach the executor (throttling retried, AccessDenied not)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest

from failover.engine import Options, execute
from failover.errors import ProviderError, TransientProviderError
from failover.providers import default_registry
from failover.providers.aws import autoscaling, cloudwatch, ecs, elbv2, rds, route53
from failover.providers.base import Permission, wait_until
from failover.sandbox.aws import Builder
from failover.sandbox.spec import AwsSandbox
from failover.state.local import DirectoryStore
from tests.aws_helpers import REGIONS, CountingClients, FailingClients, aws, context  # noqa: F401
from tests.executor_helpers import plan_from

pytestmark = pytest.mark.usefixtures("aws")


def build(spec: dict[str, Any]) -> Builder:
    builder = Builder(REGIONS)
    builder.create(AwsSandbox.model_validate(spec))
    return builder


ZONE = {
    "hosted_zones": [
        {
            "name": "shop.example.com",
            "records": [
                {
                    "name": "api.shop.example.com",
                    "set_identifier": "east",
                    "weight": 100,
                    "value": "10.0.0.1",
                },
                {"name": "api.shop.example.com", "set_identifier": "west", "weight": 0, "value": "10.0.0.2"},
                {
                    "name": "www.shop.example.com",
                    "set_identifier": "east",
                    "failover": "PRIMARY",
                    "value": "1.1.1.1",
                },
                {
                    "name": "www.shop.example.com",
                    "set_identifier": "west",
                    "failover": "SECONDARY",
                    "value": "2.2.2.2",
                },
            ],
        }
    ]
}


# --- Route 53 ---------------------------------------------------------------------------------


def test_set_weights_moves_traffic_in_one_batch_and_compensation_restores_it() -> None:
    build(ZONE)
    clients = CountingClients()
    ctx = context(clients=clients)
    action = route53.SetWeights()
    params = action.parse(
        {
            "zone_name": "shop.example.com",
            "records": [{"name": "api.shop.example.com", "weights": {"west": 100, "east": 0}}],
        }
    )
    before = action.read(ctx, params)
    assert before == {"api.shop.example.com. A east": 100, "api.shop.example.com. A west": 0}
    assert not action.verify(ctx, params)
    action.apply(ctx, params)
    assert action.verify(ctx, params)
    assert clients.calls["ChangeResourceRecordSets"] == 1  # both records, one change batch
    action.apply(ctx, params)  # twice is once
    assert clients.calls["ChangeResourceRecordSets"] == 1
    action.compensate(ctx, params, before)
    assert action.read(ctx, params) == before


def test_record_names_match_as_route53_writes_them_whatever_their_case() -> None:
    build(ZONE)
    action = route53.SetWeights()
    params = action.parse(
        {
            "zone_name": "Shop.Example.com",
            "records": [{"name": "API.shop.example.com", "weights": {"west": 100}}],
        }
    )
    action.apply(context(), params)
    assert action.verify(context(), params)


def test_waits_end_at_the_steps_deadline() -> None:
    slept: list[float] = []
    ctx = replace(context(slept=slept), deadline=30.0)  # the step times out 30 s from now
    with pytest.raises(TransientProviderError, match=r"stable at 3 tasks: not reached after 30s"):
        wait_until(ctx, "ECS service shop/catalog stable at 3 tasks", lambda: False, timeout=600)
    assert slept[:5] == [0.25, 0.5, 1.0, 1.5, 1.5]  # at once, then soon, doubling to 1.5 s
    assert set(slept[4:-1]) == {1.5} and 0 < slept[-1] <= 1.5  # the last wait ends at the deadline
    assert sum(slept) == pytest.approx(30.0)


def test_set_weights_names_a_missing_set_identifier() -> None:
    build(ZONE)
    action = route53.SetWeights()
    params = action.parse(
        {
            "zone_name": "shop.example.com",
            "records": [{"name": "api.shop.example.com", "weights": {"north": 1}}],
        }
    )
    with pytest.raises(ProviderError, match=r"no record set with identifier north \(found: east, west\)"):
        action.apply(context(), params)


def test_set_failover_records_swaps_primary_and_back() -> None:
    build(ZONE)
    ctx = context()
    action = route53.SetFailoverRecords()
    params = action.parse(
        {"zone_name": "shop.example.com", "records": [{"name": "www.shop.example.com", "primary": "west"}]}
    )
    before = action.read(ctx, params)
    assert before == {"www.shop.example.com. A east": "PRIMARY", "www.shop.example.com. A west": "SECONDARY"}
    action.apply(ctx, params)
    assert action.verify(ctx, params)
    assert action.read(ctx, params) == {
        "www.shop.example.com. A east": "SECONDARY",
        "www.shop.example.com. A west": "PRIMARY",
    }
    action.compensate(ctx, params, before)
    assert action.read(ctx, params) == before


def test_health_check_ok_reads_the_checkers() -> None:
    r53 = boto3.client("route53")
    check_id = r53.create_health_check(
        CallerReference="hc",
        HealthCheckConfig={"Type": "HTTPS", "FullyQualifiedDomainName": "api.shop.example.com", "Port": 443},
    )["HealthCheck"]["Id"]
    check = route53.HealthCheckOk()
    result = check.run(context(), check.parse({"health_check_id": check_id}))
    assert result.ok, result.message  # moto reports every health check healthy
    assert isinstance(result.observed, dict) and result.observed["healthy"] == result.observed["checkers"]


# --- Auto Scaling, ECS, ELBv2 -----------------------------------------------------------------


def test_set_capacity_waits_for_healthy_instances_and_compensation_restores_sizes() -> None:
    build({"auto_scaling_groups": [{"site": "west", "name": "checkout", "min": 0, "desired": 0, "max": 4}]})
    clients = CountingClients()
    ctx = context(clients=clients)
    action = autoscaling.SetCapacity()
    params = action.parse({"group": "checkout", "min": 2, "desired": 3, "max": 4})
    before = action.read(ctx, params)
    assert before == {"min": 0, "desired": 0, "max": 4}
    action.apply(ctx, params)
    assert action.verify(ctx, params)
    group = autoscaling.describe_group(ctx, "checkout")
    assert sum(1 for i in group["Instances"] if i["LifecycleState"] == "InService") == 3
    action.apply(ctx, params)
    assert clients.calls["UpdateAutoScalingGroup"] == 1
    action.compensate(ctx, params, before)
    assert action.read(ctx, params) == before


def test_set_capacity_rejects_sizes_that_contradict_each_other() -> None:
    with pytest.raises(ValueError, match=r"desired 9 is outside min 1 \.\. max 4"):
        autoscaling.SetCapacity().parse({"group": "g", "min": 1, "desired": 9, "max": 4})


def test_capacity_available_compares_max_size_with_the_need() -> None:
    build({"auto_scaling_groups": [{"site": "west", "name": "checkout", "max": 4}]})
    check = autoscaling.CapacityAvailable()
    assert check.run(context(), check.parse({"group": "checkout", "desired": 4})).ok
    short = check.run(context(), check.parse({"group": "checkout", "desired": 5}))
    assert not short.ok and "max size 4, the failover needs 5" in short.message


def test_set_desired_count_waits_until_stable_and_compensation_restores_it() -> None:
    build({"ecs_services": [{"site": "west", "cluster": "shop", "service": "catalog", "desired": 0}]})
    clients = CountingClients()
    ctx = context(clients=clients)
    action = ecs.SetDesiredCount()
    params = action.parse({"cluster": "shop", "service": "catalog", "count": 3})
    before = action.read(ctx, params)
    action.apply(ctx, params)
    assert action.verify(ctx, params)
    action.apply(ctx, params)
    assert clients.calls["UpdateService"] == 1
    action.compensate(ctx, params, before)
    assert action.read(ctx, params) == {"desired_count": 0}


def test_set_desired_count_names_a_missing_service() -> None:
    build({"ecs_services": [{"site": "west", "cluster": "shop", "service": "catalog"}]})
    action = ecs.SetDesiredCount()
    with pytest.raises(ProviderError, match="ECS service shop/cart at west: not found"):
        action.apply(context(), action.parse({"cluster": "shop", "service": "cart", "count": 1}))


def test_target_group_weights_shift_a_listener_and_back() -> None:
    build({"load_balancers": [{"site": "west", "name": "shop", "weights": {"app": 0, "maint": 100}}]})
    clients = CountingClients()
    ctx = context(clients=clients)
    action = elbv2.SetTargetGroupWeights()
    params = action.parse({"load_balancer": "shop", "port": 80, "weights": {"app": 100, "maint": 0}})
    before = action.read(ctx, params)
    assert isinstance(before, dict) and before["weights"] == {"app": 0, "maint": 100}
    action.apply(ctx, params)
    assert action.verify(ctx, params)
    after_one = action.read(ctx, params)
    action.apply(ctx, params)
    assert action.read(ctx, params) == after_one and clients.calls["ModifyListener"] == 1
    action.compensate(ctx, params, before)
    assert action.read(ctx, params) == before
    wrong_port = action.parse({"load_balancer": "shop", "port": 443, "weights": {"app": 1}})
    with pytest.raises(ProviderError, match=r"no listener on port 443 \(ports: 80\)"):
        action.apply(ctx, wrong_port)


def test_target_group_weights_keep_the_other_target_groups_and_restore_a_maintenance_page() -> None:
    build(
        {
            "load_balancers": [
                {"site": "west", "name": "shop", "weights": {"app": 0, "canary": 5, "maint": 100}}
            ]
        }
    )
    elb = boto3.client("elbv2", region_name="us-west-2")
    lb = elb.describe_load_balancers(Names=["shop"])["LoadBalancers"][0]["LoadBalancerArn"]
    listener = elb.describe_listeners(LoadBalancerArn=lb)["Listeners"][0]["ListenerArn"]
    action = elbv2.SetTargetGroupWeights()
    ctx = context()
    shift = action.parse({"load_balancer": "shop", "port": 80, "weights": {"app": 100, "maint": 0}})
    action.apply(ctx, shift)
    groups = elb.describe_listeners(ListenerArns=[listener])["Listeners"][0]["DefaultActions"][0][
        "ForwardConfig"
    ]
    names = {g["TargetGroupArn"]: g["TargetGroupName"] for g in elb.describe_target_groups()["TargetGroups"]}
    assert {names[g["TargetGroupArn"]]: g["Weight"] for g in groups["TargetGroups"]} == {
        "app": 100,
        "canary": 5,  # not named by the step: kept as it was
        "maint": 0,
    }
    maintenance = [
        {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "503", "ContentType": "text/plain"}}
    ]
    elb.modify_listener(ListenerArn=listener, DefaultActions=maintenance)
    before = action.read(ctx, shift)
    assert isinstance(before, dict) and before["weights"] == {"app": 0, "maint": 0}
    action.apply(ctx, shift)
    assert action.verify(ctx, shift)
    action.compensate(ctx, shift, before)
    restored = elb.describe_listeners(ListenerArns=[listener])["Listeners"][0]["DefaultActions"]
    assert [a["Type"] for a in restored] == ["fixed-response"]


# --- RDS ----------------------------------------------------------------------------------------


def test_promote_replica_cluster_is_a_one_way_step() -> None:
    build(
        {
            "replica_clusters": [
                {
                    "site": "west",
                    "cluster": "orders-usw2",
                    "source": {"site": "east", "cluster": "orders-use1"},
                }
            ]
        }
    )
    ctx = context()
    action = rds.PromoteReplicaCluster()
    params = action.parse({"cluster": "orders-usw2"})
    assert not action.verify(ctx, params)
    action.apply(ctx, params)
    assert action.verify(ctx, params)
    action.apply(ctx, params)  # already promoted: nothing to do
    assert not action.is_reversible(params)
    with pytest.raises(ProviderError, match="irreversible"):
        action.compensate(ctx, params, None)


def test_promote_replica_instance() -> None:
    east = boto3.client("rds", region_name="us-east-1")
    source = east.create_db_instance(
        DBInstanceIdentifier="orders",
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        MasterUsername="u",
        MasterUserPassword="password1",
        AllocatedStorage=20,
    )["DBInstance"]["DBInstanceArn"]
    boto3.client("rds", region_name="us-west-2").create_db_instance_read_replica(
        DBInstanceIdentifier="orders-usw2", SourceDBInstanceIdentifier=source
    )
    ctx = context()
    action = rds.PromoteReplicaInstance()
    params = action.parse({"instance": "orders-usw2"})
    assert not action.verify(ctx, params)
    action.apply(ctx, params)
    assert action.verify(ctx, params)


GLOBAL = {
    "global_clusters": [
        {
            "name": "orders",
            "members": [
                {"site": "east", "cluster": "orders-use1"},
                {"site": "west", "cluster": "orders-usw2"},
            ],
        }
    ],
    "metrics": [
        {
            "site": "west",
            "namespace": "AWS/RDS",
            "name": "AuroraGlobalDBReplicationLag",
            "dimensions": {"DBClusterIdentifier": "orders-usw2"},
            "value": 2500,
        }
    ],
}


def test_global_cluster_healthy_checks_the_writer() -> None:
    build(GLOBAL)
    check = rds.GlobalClusterHealthy()
    assert check.run(
        context(), check.parse({"global_cluster": "orders", "members": 2, "writer": "orders-use1"})
    ).ok
    wrong = check.run(context("west"), check.parse({"global_cluster": "orders", "writer": "orders-usw2"}))
    assert not wrong.ok and "expected orders-usw2" in wrong.message
    fewer = check.run(context(), check.parse({"global_cluster": "orders", "members": 3}))
    assert not fewer.ok and "2 members, expected 3" in fewer.message


def test_replica_lag_passes_under_the_rpo_and_fails_over_it_or_without_data() -> None:
    build(GLOBAL)
    check = rds.ReplicaLag()
    assert check.run(context(), check.parse({"cluster": "orders-usw2", "max_lag": "5s"})).ok
    late = check.run(context(), check.parse({"cluster": "orders-usw2", "max_lag": "2s"}))
    assert not late.ok and late.observed == 2.5
    unknown = check.run(context(), check.parse({"cluster": "orders-use1", "max_lag": "5s"}))
    assert not unknown.ok and "lag unknown" in unknown.message


# --- CloudWatch -------------------------------------------------------------------------------


def test_alarms_ok_names_alarms_in_alarm_and_missing_ones() -> None:
    build(
        {
            "alarms": [
                {"site": "west", "name": "checkout-5xx"},
                {"site": "west", "name": "catalog-5xx", "state": "ALARM"},
            ]
        }
    )
    check = cloudwatch.AlarmsOk()
    assert check.run(context(), check.parse({"names": ["checkout-5xx"]})).ok
    firing = check.run(context(), check.parse({"prefix": "c"}))
    assert not firing.ok and firing.message == "in ALARM: catalog-5xx"
    missing = check.run(context(), check.parse({"names": ["checkout-5xx", "cart-5xx"]}))
    assert not missing.ok and "no such alarm: cart-5xx" in missing.message


# --- errors -----------------------------------------------------------------------------------

EXAMPLES: dict[str, dict[str, Any]] = {
    "aws.arc.set_routing_controls": {
        "controls": {"arn:aws:route53-recovery-control::1:controlpanel/p/routingcontrol/r": "On"},
        "cluster_endpoints": [{"endpoint": "https://arc.example", "region": "us-west-2"}],
    },
    "aws.autoscaling.set_capacity": {"group": "g", "desired": 1},
    "aws.ecs.set_desired_count": {"cluster": "c", "service": "s", "count": 1},
    "aws.elbv2.set_target_group_weights": {"load_balancer": "lb", "port": 80, "weights": {"a": 1}},
    "aws.lambda.invoke": {"function": "hook"},
    "aws.rds.failover_global_cluster": {"global_cluster": "g", "target_cluster": "c"},
    "aws.rds.promote_replica_cluster": {"cluster": "c"},
    "aws.rds.promote_replica_instance": {"instance": "i"},
    "aws.rds.switchover_global_cluster": {"global_cluster": "g", "target_cluster": "c"},
    "aws.route53.set_failover_records": {
        "zone_id": "Z1",
        "records": [{"name": "a.example.com", "primary": "x"}],
    },
    "aws.route53.set_weights": {"zone_id": "Z1", "records": [{"name": "a.example.com", "weights": {"x": 1}}]},
    "aws.autoscaling.capacity_available": {"group": "g", "desired": 1},
    "aws.cloudwatch.alarms_ok": {"names": ["a"]},
    "aws.dynamodb.global_table_replica_active": {"table": "t"},
    "aws.permissions": {},
    "aws.rds.global_cluster_healthy": {"global_cluster": "g"},
    "aws.rds.replica_lag": {"cluster": "c", "max_lag": "5s"},
    "aws.route53.health_check_ok": {"health_check_id": "h"},
}
AWS_NAMES = sorted(
    n.name for n in (*default_registry().actions(), *default_registry().checks()) if n.name.startswith("aws.")
)


def test_every_aws_action_and_check_has_an_error_mapping_example() -> None:
    assert sorted(EXAMPLES) == AWS_NAMES


def _first_call(name: str, clients: FailingClients) -> None:
    registry = default_registry()
    ctx = context(clients=clients, permissions=(Permission("aws", "ec2:DescribeRegions"),))
    action = registry.find_action(name)
    if action is not None:
        params = action.parse(EXAMPLES[name])
        if name == "aws.lambda.invoke":  # a hook reads nothing: its first call is the invocation
            action.apply(ctx, params)
        else:
            action.read(ctx, params)
    else:
        check = registry.check(name)
        check.run(ctx, check.parse(EXAMPLES[name]))


@pytest.mark.parametrize("name", AWS_NAMES)
@pytest.mark.parametrize(
    ("code", "status"), [("Throttling", 400), ("ServiceUnavailable", 503), ("InternalError", 500)]
)
def test_throttling_and_server_errors_are_transient(name: str, code: str, status: int) -> None:
    with pytest.raises(TransientProviderError, match=f"AWS {code} on .* at west"):
        _first_call(name, FailingClients(code, status))


@pytest.mark.parametrize("name", AWS_NAMES)
def test_access_denied_is_fatal_and_names_code_resource_and_site(name: str) -> None:
    with pytest.raises(
        ProviderError, match=r"AWS AccessDenied(Exception)? on .+ at west \(us-west-2\)"
    ) as info:
        _first_call(
            name, FailingClients("AccessDeniedException" if "lambda" in name else "AccessDenied", 403)
        )
    assert not isinstance(info.value, TransientProviderError)


ASG_STEP = """
services:
  checkout:
    steps:
      - {id: scale, action: aws.autoscaling.set_capacity, site: "${to}",
         with: {group: checkout, min: 1, desired: 1, max: 2}}
"""


def test_the_executor_retries_a_throttled_step_and_does_not_retry_access_denied(tmp_path: Path) -> None:
    build({"auto_scaling_groups": [{"site": "west", "name": "checkout", "max": 2}]})
    plan = plan_from(ASG_STEP)
    slept: list[float] = []
    throttled = FailingClients("Throttling", 400, operation="UpdateAutoScalingGroup", times=1)
    result = execute(plan, tmp_path / "a", Options(clients=throttled, sleep=slept.append))
    assert result.ok, result.message
    succeeded = [
        e for e in DirectoryStore(tmp_path / "a").events(result.run_id) if e.kind == "step_succeeded"
    ]
    assert succeeded[0].data["attempts"] == 2
    assert throttled.failed == ["UpdateAutoScalingGroup"] and slept  # backed off, then succeeded

    boto3.client("autoscaling", region_name="us-west-2").update_auto_scaling_group(
        AutoScalingGroupName="checkout", MinSize=0, DesiredCapacity=0
    )
    denied = FailingClients("AccessDenied", 403, operation="UpdateAutoScalingGroup")
    result = execute(plan, tmp_path / "b", Options(clients=denied, sleep=slept.append))
    assert result.exit_code == 1
    assert denied.failed == ["UpdateAutoScalingGroup"]  # once: a fatal error is not retried
    failed = [e for e in DirectoryStore(tmp_path / "b").events(result.run_id) if e.kind == "step_failed"]
    assert "AWS AccessDenied on Auto Scaling group checkout at west (us-west-2)" in str(
        failed[0].data["error"]
    )


def test_the_plan_warns_when_a_step_times_out_before_its_action_stops_waiting() -> None:
    plan = plan_from(
        """
        services:
          db:
            steps:
              - {id: promote, action: aws.rds.promote_replica_cluster, site: "${to}", pivot: true,
                 timeout: 5m, with: {cluster: orders}}
              - {id: scale, action: aws.autoscaling.set_capacity, site: "${to}", timeout: 20m,
                 with: {group: web, desired: 2}}
        """
    )
    assert any(
        w.endswith("fails the step: db.promote (waits up to 30m, times out after 5m)") for w in plan.warnings
    ), plan.warnings
