"""The AWS sandbox: a moto server on 127.0.0.1, filled with what the runbook's ``sandbox.aws``
declares, and a snapshot of that state to compare before and after a drill.

moto answers at once and lacks some of AWS; ``aws_time`` teaches it Aurora global database
switchover and failover, replica promotion, ECS task starts, Auto Scaling warm-up and Route 53
propagation as AWS does them, over the time they take (``clock``). This module adds the replicas
of the DynamoDB tables the sandbox declares global, and IAM policy simulation (from the declared
``policy``, and the ``deny`` faults). Everything else is moto's own behaviour.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import urllib.request
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.config import Config

from failover.errors import SandboxError
from failover.providers.aws._client import SANDBOX_CREDENTIALS
from failover.sandbox import aws_time
from failover.sandbox.arc import Cluster
from failover.sandbox.aws_faults import DENIED, AwsFaults
from failover.sandbox.spec import AwsPolicySpec, AwsSandbox

JsonDict = dict[str, Any]


class MotoSandbox:
    """A moto server on 127.0.0.1 (a free port) for the duration of a ``with`` block, behind the
    layer that plays throttling and denied permissions (``faults``)."""

    def __init__(self) -> None:
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.faults: AwsFaults | None = None
        self.arc: Cluster | None = None
        self.endpoint_url = ""

    def __enter__(self) -> MotoSandbox:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        extend_moto()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request on stderr
        DENIED.clear()
        POLICY[:] = []
        aws_time.start()
        self.arc = Cluster(DomainDispatcherApplication(create_backend_app))
        self.faults = AwsFaults(self.arc)
        self._server = make_server(
            "127.0.0.1", 0, self.faults, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},  # stops within 0.1 s of shutdown()
            name="failover-moto",
            daemon=True,
        )
        self._thread.start()
        host, port = self._server.server_address[:2]
        self.endpoint_url = f"http://{host}:{port}"
        GLOBAL_TABLES.clear()
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1: no proxy
        with direct.open(request, timeout=10):  # a fresh world: moto's state is per process
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join()
            self._server = self._thread = None
        DENIED.clear()
        POLICY[:] = []
        aws_time.start(running=False)

    def overrides(self) -> dict[str, str]:
        """Settings that point every AWS site of a run at this sandbox."""
        return {"endpoint_url": self.endpoint_url, "credentials": SANDBOX_CREDENTIALS}


class Builder:
    """Creates sandbox resources and reads their state back, region by region."""

    def __init__(self, regions: Mapping[str, str], endpoint_url: str | None = None) -> None:
        self.regions = dict(regions)  # site -> AWS region
        self.endpoint_url = endpoint_url
        self.arc: Cluster | None = None  # the sandbox's ARC cluster, if it has one
        self._clients: dict[tuple[str, str], Any] = {}
        self._session = (
            boto3.Session(aws_access_key_id="sandbox", aws_secret_access_key="sandbox")
            if endpoint_url
            else boto3.Session()
        )

    def client(self, service: str, site: str | None = None) -> Any:
        region = self.regions[site] if site else "us-east-1"
        key = (service, region)
        if key not in self._clients:
            self._clients[key] = self._session.client(
                service,
                region_name=region,
                endpoint_url=self.endpoint_url,
                config=Config(retries={"mode": "standard"}),
            )
        return self._clients[key]

    # --- create ------------------------------------------------------------------------------

    def create(self, spec: AwsSandbox) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        POLICY[:] = [spec.policy] if spec.policy is not None else []
        if spec.control_panels and self.arc is None:
            raise SandboxError("control_panels: ARC's cluster is only played by the embedded sandbox")
        if self.arc is not None:
            self.arc.load(spec.control_panels)
        try:
            self._create(spec)
        except (ClientError, BotoCoreError) as exc:
            raise SandboxError(f"the AWS sandbox could not create a declared resource: {exc}") from exc
        aws_time.settle()  # what the sandbox declares is there when the drill starts

    def _create(self, spec: AwsSandbox) -> None:
        r53 = self.client("route53")
        for zone in spec.hosted_zones:
            zone_id = r53.create_hosted_zone(Name=zone.name, CallerReference=f"sandbox-{zone.name}")[
                "HostedZone"
            ]["Id"]
            changes = []
            for r in zone.records:
                rrset: JsonDict = {
                    "Name": r.name,
                    "Type": r.type,
                    "TTL": r.ttl,
                    "ResourceRecords": [{"Value": r.value}],
                }
                if r.set_identifier is not None:
                    rrset["SetIdentifier"] = r.set_identifier
                if r.weight is not None:
                    rrset["Weight"] = r.weight
                if r.failover is not None:
                    rrset["Failover"] = r.failover
                changes.append({"Action": "CREATE", "ResourceRecordSet": rrset})
            if changes:
                r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})
        for group in spec.auto_scaling_groups:
            ec2 = self.client("ec2", group.site)
            x86 = [{"Name": "name", "Values": ["amzn2-ami-hvm-*-x86_64-gp2"]}]  # not all 1,300 of them
            images = ec2.describe_images(Owners=["amazon"], Filters=x86)["Images"]
            image = (images or ec2.describe_images(Owners=["amazon"])["Images"])[0]["ImageId"]
            template = f"{group.name}-template"
            ec2.create_launch_template(
                LaunchTemplateName=template,
                LaunchTemplateData={"ImageId": image, "InstanceType": group.instance_type},
            )
            self.client("autoscaling", group.site).create_auto_scaling_group(
                AutoScalingGroupName=group.name,
                MinSize=group.min,
                MaxSize=group.max,
                DesiredCapacity=group.desired,
                LaunchTemplate={"LaunchTemplateName": template},
                AvailabilityZones=[f"{self.regions[group.site]}a"],
            )
        for svc in spec.ecs_services:
            ecs = self.client("ecs", svc.site)
            ecs.create_cluster(clusterName=svc.cluster)
            family = f"{svc.service}-task"
            ecs.register_task_definition(
                family=family,
                containerDefinitions=[{"name": svc.service, "image": "sandbox/app", "memory": 128}],
            )
            ecs.create_service(
                cluster=svc.cluster, serviceName=svc.service, taskDefinition=family, desiredCount=svc.desired
            )
        for lb in spec.load_balancers:
            self._load_balancer(lb.site, lb.name, lb.port, lb.weights)
        for cluster in spec.global_clusters:
            self.client("rds", cluster.members[0].site).create_global_cluster(
                GlobalClusterIdentifier=cluster.name, Engine=cluster.engine
            )
            for member in cluster.members:  # the first one becomes the writer
                self.client("rds", member.site).create_db_cluster(
                    DBClusterIdentifier=member.cluster,
                    Engine=cluster.engine,
                    GlobalClusterIdentifier=cluster.name,
                    MasterUsername="sandbox",
                    MasterUserPassword="sandbox-password",
                )
        for replica in spec.replica_clusters:
            source = self.client("rds", replica.source.site)
            found = source.describe_db_clusters()["DBClusters"]
            arn = next(
                (c["DBClusterArn"] for c in found if c["DBClusterIdentifier"] == replica.source.cluster), None
            )
            if arn is None:
                arn = source.create_db_cluster(
                    DBClusterIdentifier=replica.source.cluster,
                    Engine=replica.engine,
                    MasterUsername="sandbox",
                    MasterUserPassword="sandbox-password",
                )["DBCluster"]["DBClusterArn"]
            self.client("rds", replica.site).create_db_cluster(
                DBClusterIdentifier=replica.cluster,
                Engine=replica.engine,
                ReplicationSourceIdentifier=arn,
                MasterUsername="sandbox",
                MasterUserPassword="sandbox-password",
            )
        for table in spec.dynamodb_tables:
            regions = tuple(self.regions[site] for site in table.sites)
            for site in table.sites:
                self.client("dynamodb", site).create_table(
                    TableName=table.name,
                    KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                    AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                    BillingMode="PAY_PER_REQUEST",
                )
                GLOBAL_TABLES[(self.regions[site], table.name)] = regions
        for alarm in spec.alarms:
            cw = self.client("cloudwatch", alarm.site)
            cw.put_metric_alarm(
                AlarmName=alarm.name,
                Namespace="Sandbox",
                MetricName=alarm.name,
                Statistic="Maximum",
                Period=60,
                EvaluationPeriods=1,
                Threshold=1.0,
                ComparisonOperator="GreaterThanOrEqualToThreshold",
            )
            cw.set_alarm_state(
                AlarmName=alarm.name, StateValue=alarm.state, StateReason="declared by the sandbox"
            )
        for metric in spec.metrics:
            self.client("cloudwatch", metric.site).put_metric_data(
                Namespace=metric.namespace,
                MetricData=[
                    {
                        "MetricName": metric.name,
                        "Dimensions": [{"Name": k, "Value": v} for k, v in sorted(metric.dimensions.items())],
                        "Value": metric.value,
                        "Unit": metric.unit,
                    }
                ],
            )

    def _load_balancer(self, site: str, name: str, port: int, weights: Mapping[str, int]) -> None:
        ec2, elb = self.client("ec2", site), self.client("elbv2", site)
        region = self.regions[site]
        vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"{region}{zone}")[
                "Subnet"
            ]["SubnetId"]
            for i, zone in enumerate("ab")
        ]
        lb_arn = elb.create_load_balancer(Name=name, Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
        groups = []
        for group, weight in sorted(weights.items()):
            arn = elb.create_target_group(Name=group, Protocol="HTTP", Port=80, VpcId=vpc)["TargetGroups"][0][
                "TargetGroupArn"
            ]
            groups.append({"TargetGroupArn": arn, "Weight": weight})
        elb.create_listener(
            LoadBalancerArn=lb_arn,
            Protocol="HTTP",
            Port=port,
            DefaultActions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": groups}}],
        )

    # --- state -------------------------------------------------------------------------------

    def state(self, spec: AwsSandbox) -> JsonDict:
        """What a failover changes, for each declared resource: record weights and failover roles,
        group sizes, task counts, listener weights, global writers, replica sources."""
        out: JsonDict = {}
        r53 = self.client("route53")
        for zone in spec.hosted_zones:
            zone_id = r53.list_hosted_zones_by_name(DNSName=zone.name)["HostedZones"][0]["Id"]
            for rrset in r53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]:
                if "SetIdentifier" in rrset:
                    key = f"record {rrset['Name']} {rrset['Type']} {rrset['SetIdentifier']}"
                    out[key] = rrset.get("Weight", rrset.get("Failover"))
        for group in spec.auto_scaling_groups:
            g = self.client("autoscaling", group.site).describe_auto_scaling_groups(
                AutoScalingGroupNames=[group.name]
            )
            found = g["AutoScalingGroups"][0]
            out[f"asg {group.name}"] = [found["MinSize"], found["DesiredCapacity"], found["MaxSize"]]
        for svc in spec.ecs_services:
            s = self.client("ecs", svc.site).describe_services(cluster=svc.cluster, services=[svc.service])
            out[f"ecs {svc.cluster}/{svc.service}"] = s["services"][0]["desiredCount"]
        for lb in spec.load_balancers:
            elb = self.client("elbv2", lb.site)
            arn = elb.describe_load_balancers(Names=[lb.name])["LoadBalancers"][0]["LoadBalancerArn"]
            listener = next(
                x for x in elb.describe_listeners(LoadBalancerArn=arn)["Listeners"] if x["Port"] == lb.port
            )
            names = {
                g["TargetGroupArn"]: g["TargetGroupName"]
                for g in elb.describe_target_groups(Names=sorted(lb.weights))["TargetGroups"]
            }
            groups = listener["DefaultActions"][0].get("ForwardConfig", {}).get("TargetGroups", [])
            out[f"lb {lb.name}:{lb.port}"] = {names[g["TargetGroupArn"]]: g.get("Weight", 1) for g in groups}
        for cluster in spec.global_clusters:
            rds = self.client("rds", cluster.members[0].site)
            found = rds.describe_global_clusters(GlobalClusterIdentifier=cluster.name)["GlobalClusters"][0]
            writer = next((m["DBClusterArn"] for m in found["GlobalClusterMembers"] if m["IsWriter"]), None)
            out[f"global {cluster.name} writer"] = writer.rsplit(":", 1)[-1] if writer else None
        for replica in spec.replica_clusters:
            c = self.client("rds", replica.site).describe_db_clusters(DBClusterIdentifier=replica.cluster)[
                "DBClusters"
            ][0]
            out[f"cluster {replica.cluster} replicates"] = bool(c.get("ReplicationSourceIdentifier"))
        out.update(_routing(spec, self.arc))
        state: JsonDict = json.loads(json.dumps(out, sort_keys=True))
        return state


def _routing(spec: AwsSandbox, arc: Cluster | None) -> JsonDict:
    """The ARC routing controls' states, and what Route 53 answers for each name whose records
    have routing-control health checks: weighted records with weight and health answer (all of
    them when none is healthy); a failover name answers PRIMARY while it is healthy, then a
    healthy SECONDARY, then PRIMARY."""
    out: JsonDict = {}
    states = dict(arc.states) if arc is not None else {}
    for arn, state in sorted(states.items()):
        out[f"arc {arn.rsplit(':', 1)[-1]}"] = state
    for zone in spec.hosted_zones:
        names: dict[tuple[str, str], list[Any]] = {}
        for record in zone.records:
            names.setdefault((record.name, record.type), []).append(record)
        for (name, kind), records in sorted(names.items()):
            if not any(r.routing_control for r in records):
                continue
            healthy = [
                r for r in records if r.routing_control is None or states.get(r.routing_control) == "On"
            ]
            if any(r.failover for r in records):
                order = [r for role in ("PRIMARY", "SECONDARY") for r in records if r.failover == role]
                answer = next((r for r in order if r in healthy), order[0])
                out[f"answers {name} {kind}"] = [answer.set_identifier]
            else:
                weighted = [r for r in healthy if r.weight] or [r for r in records if r.weight]
                out[f"answers {name} {kind}"] = sorted(str(r.set_identifier) for r in weighted)
    return out


GLOBAL_TABLES: dict[tuple[str, str], tuple[str, ...]] = {}
"""(region, table) -> the regions of its replicas, for the global tables the sandbox declares."""

POLICY: list[AwsPolicySpec] = []
"""The IAM policy the sandbox declares (``sandbox.aws.policy``), if it declares one."""


def _matches(patterns: list[str], action: str) -> bool:
    """Whether an IAM action pattern (``*`` and ``?`` wildcards, case-insensitive) matches."""
    return any(
        re.fullmatch(re.escape(p).replace(r"\*", ".*").replace(r"\?", "."), action, re.IGNORECASE)
        for p in patterns
    )


def decision(action: str) -> str:
    """What IAM policy simulation answers for ``action``: an explicit deny wins over an allow,
    which wins over the implicit deny; a ``deny`` fault takes the permission away."""
    policy = POLICY[0] if POLICY else None
    if policy is not None and _matches(policy.deny, action):
        return "explicitDeny"
    if action in DENIED or (policy is not None and not _matches(policy.allow, action)):
        return "implicitDeny"
    return "allowed"


def extend_moto() -> None:
    """Teach moto what ``aws_time`` models; give the DynamoDB tables the sandbox declares global
    their replicas; and answer IAM policy simulation (moto has none) by ``decision``."""
    from moto.core.responses import ActionResult
    from moto.dynamodb.models.table import Table
    from moto.iam.responses import IamResponse

    aws_time.patch_moto()
    if getattr(IamResponse, "_sandbox_simulates", False):
        return
    describe_table = Table.describe

    def with_replicas(self: Any, base_key: str = "TableDescription") -> dict[str, Any]:
        found: dict[str, Any] = describe_table(self, base_key)
        regions = GLOBAL_TABLES.get((self.region_name, self.name))
        if regions:
            found[base_key]["Replicas"] = [{"RegionName": r, "ReplicaStatus": "ACTIVE"} for r in regions]
        return found

    Table.describe = with_replicas  # type: ignore[method-assign]

    def simulate(self: Any) -> Any:
        actions = self._get_param("ActionNames", [])
        resources = self._get_param("ResourceArns", []) or ["*"]
        results = [
            {"EvalActionName": a, "EvalResourceName": r, "EvalDecision": decision(a), "MatchedStatements": []}
            for a in actions
            for r in resources
        ]
        return ActionResult({"EvaluationResults": results, "IsTruncated": False})

    IamResponse.simulate_principal_policy = simulate  # type: ignore[attr-defined]
    IamResponse._sandbox_simulates = True  # type: ignore[attr-defined]
