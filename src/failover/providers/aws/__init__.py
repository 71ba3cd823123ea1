"""The AWS provider: actions and checks on boto3, one module per AWS service.

Clients come from the step's Context (one boto3 session per site and run, with the site's
profile, role and endpoint); botocore errors never leave this package (see ``_client``).
"""

from __future__ import annotations

from failover.providers.aws import (
    arc,
    autoscaling,
    cloudwatch,
    dynamodb,
    ecs,
    elbv2,
    iam,
    lambda_,
    rds,
    route53,
)
from failover.providers.base import Provider

PROVIDER = Provider(
    name="aws",
    actions=(
        arc.SetRoutingControls(),
        autoscaling.SetCapacity(),
        ecs.SetDesiredCount(),
        elbv2.SetTargetGroupWeights(),
        lambda_.Invoke(),
        rds.FailoverGlobalCluster(),
        rds.PromoteReplicaCluster(),
        rds.PromoteReplicaInstance(),
        rds.SwitchoverGlobalCluster(),
        route53.SetFailoverRecords(),
        route53.SetWeights(),
    ),
    checks=(
        autoscaling.CapacityAvailable(),
        cloudwatch.AlarmsOk(),
        dynamodb.GlobalTableReplicaActive(),
        iam.PermissionsCheck(),
        rds.GlobalClusterHealthy(),
        rds.ReplicaLag(),
        route53.HealthCheckOk(),
    ),
)

__all__ = ["PROVIDER"]
