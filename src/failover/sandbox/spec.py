"""The runbook's ``sandbox:`` section: the cloud resources a sandbox drill starts from.

Each resource names the site it lives at (its region comes from the site); the section is
validated with the rest of the runbook, and only used by ``--sandbox``.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RecordSpec(_Spec):
    name: str = Field(description="Record name, e.g. api.shop.example.com.")
    type: str = "A"
    value: str = Field(description="The record's value, e.g. an IP address or host name.")
    ttl: int = Field(60, ge=0)
    set_identifier: str | None = Field(None, description="For weighted or failover records.")
    weight: int | None = Field(None, ge=0, le=255)
    failover: Literal["PRIMARY", "SECONDARY"] | None = None

    @model_validator(mode="after")
    def _routing(self) -> RecordSpec:
        routed = self.weight is not None or self.failover is not None
        if routed != (self.set_identifier is not None):
            raise ValueError("weighted and failover records need a set_identifier, and only they")
        if self.weight is not None and self.failover is not None:
            raise ValueError("a record is weighted or failover, not both")
        return self


class HostedZoneSpec(_Spec):
    name: str = Field(description="Zone name, e.g. shop.example.com.")
    records: list[RecordSpec] = Field(default_factory=list)


class AutoScalingGroupSpec(_Spec):
    site: str
    name: str
    min: int = Field(0, ge=0)
    desired: int = Field(0, ge=0)
    max: int = Field(1, ge=0)
    instance_type: str = "t3.micro"


class EcsServiceSpec(_Spec):
    site: str
    cluster: str
    service: str
    desired: int = Field(0, ge=0)


class LoadBalancerSpec(_Spec):
    site: str
    name: str
    port: int = Field(80, ge=1, le=65535)
    weights: dict[str, int] = Field(description="Weight of the forward action per target group name.")


class ClusterMemberSpec(_Spec):
    site: str
    cluster: str


class GlobalClusterSpec(_Spec):
    name: str
    engine: str = "aurora-postgresql"
    members: list[ClusterMemberSpec] = Field(min_length=1, description="The first one is the writer.")


class ReplicaClusterSpec(_Spec):
    site: str
    cluster: str
    source: ClusterMemberSpec = Field(description="The cluster it replicates.")
    engine: str = "aurora-postgresql"


class DynamoTableSpec(_Spec):
    name: str
    sites: list[str] = Field(min_length=1, description="The sites it has a replica at (a global table).")


class AlarmSpec(_Spec):
    site: str
    name: str
    state: Literal["OK", "ALARM", "INSUFFICIENT_DATA"] = "OK"


class MetricSpec(_Spec):
    site: str
    namespace: str
    name: str
    dimensions: dict[str, str] = Field(default_factory=dict)
    value: float
    unit: str = "None"


_IAM_ACTION = re.compile(r"\*|[A-Za-z0-9-]+:[A-Za-z0-9*?]+")


class AwsPolicySpec(_Spec):
    """What the sandbox's caller may do, as IAM policy simulation answers it: an action a
    ``deny`` pattern matches is denied (explicitly), else one an ``allow`` pattern matches is
    allowed, else it is denied (implicitly)."""

    allow: list[str] = Field(
        description="Actions allowed: service:Action, IAM style, with * and ? wildcards (ec2:Describe*, *)."
    )
    deny: list[str] = Field(default_factory=list, description="Actions denied whatever allows them.")

    @field_validator("allow", "deny")
    @classmethod
    def _actions(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            if not _IAM_ACTION.fullmatch(pattern):
                raise ValueError(
                    f"{pattern!r} is not an IAM action pattern: expected SERVICE:ACTION "
                    "(ecs:UpdateService, rds:Describe*, iam:*) or *"
                )
        return patterns


class AwsSandbox(_Spec):
    hosted_zones: list[HostedZoneSpec] = Field(default_factory=list)
    auto_scaling_groups: list[AutoScalingGroupSpec] = Field(default_factory=list)
    ecs_services: list[EcsServiceSpec] = Field(default_factory=list)
    load_balancers: list[LoadBalancerSpec] = Field(default_factory=list)
    global_clusters: list[GlobalClusterSpec] = Field(default_factory=list)
    replica_clusters: list[ReplicaClusterSpec] = Field(default_factory=list)
    dynamodb_tables: list[DynamoTableSpec] = Field(default_factory=list)
    alarms: list[AlarmSpec] = Field(default_factory=list)
    metrics: list[MetricSpec] = Field(default_factory=list)
    policy: AwsPolicySpec | None = Field(
        None,
        description="The IAM policy simulation answers from; without one, every action is allowed "
        "but those a deny:PERMISSION fault takes away.",
    )

    def sites(self) -> list[tuple[tuple[str | int, ...], str]]:
        """(path inside ``sandbox.aws``, site) of every resource that names a site."""
        found: list[tuple[tuple[str | int, ...], str]] = []
        for field in ("auto_scaling_groups", "ecs_services", "load_balancers", "alarms", "metrics"):
            for i, item in enumerate(getattr(self, field)):
                found.append(((field, i, "site"), item.site))
        for i, cluster in enumerate(self.global_clusters):
            for j, member in enumerate(cluster.members):
                found.append((("global_clusters", i, "members", j, "site"), member.site))
        for i, table in enumerate(self.dynamodb_tables):
            for j, site in enumerate(table.sites):
                found.append((("dynamodb_tables", i, "sites", j), site))
        for i, replica in enumerate(self.replica_clusters):
            found.append((("replica_clusters", i, "site"), replica.site))
            found.append((("replica_clusters", i, "source", "site"), replica.source.site))
        return found


class InstanceGroupSpec(_Spec):
    site: str
    name: str = Field(description="Managed instance group name.")
    zone: str | None = Field(
        None, description="Zone of a zonal group; regional (the site's region) if not given."
    )
    size: int = Field(0, ge=0, description="Target size.")


class AutoscalerSpec(_Spec):
    site: str
    name: str
    group: str = Field(description="The managed instance group it scales (same zone or region).")
    zone: str | None = Field(None, description="Zone of a zonal autoscaler (and its group).")
    min: int = Field(0, ge=0)
    max: int = Field(ge=0, le=1000)
    mode: Literal["ON", "OFF", "ONLY_SCALE_OUT"] = "ON"

    @model_validator(mode="after")
    def _limits(self) -> AutoscalerSpec:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class BackendSpec(_Spec):
    site: str = Field(description="The site of the instance group.")
    group: str = Field(description="Managed instance group name.")
    zone: str | None = Field(None, description="Zone of a zonal group.")
    capacity: float = Field(1.0, ge=0.0, le=1.0, description="capacityScaler.")
    failover: bool = Field(False, description="A failover backend (regional services).")


class FailoverPolicySpec(_Spec):
    failover_ratio: float = Field(0.0, ge=0.0, le=1.0)
    drop_traffic_if_unhealthy: bool = False
    disable_connection_drain_on_failover: bool = False


class BackendServiceSpec(_Spec):
    site: str = Field(description="The site whose project (and, if regional, region) holds it.")
    name: str
    scope: Literal["global", "regional"] = "global"
    backends: list[BackendSpec] = Field(default_factory=list)
    failover_policy: FailoverPolicySpec | None = Field(None, description="Regional services only.")

    @model_validator(mode="after")
    def _policy(self) -> BackendServiceSpec:
        if self.failover_policy is not None and self.scope != "regional":
            raise ValueError("only a regional backend service has a failover_policy")
        return self


class ForwardingRuleSpec(_Spec):
    site: str
    name: str
    scope: Literal["global", "regional"] = "regional"
    target: str = Field(description="Target path from its scope on, e.g. regions/us-east4/targetPools/web.")


class InstanceSpec(_Spec):
    site: str
    zone: str
    name: str
    status: Literal["RUNNING", "TERMINATED"] = "RUNNING"


class RegionSpec(_Spec):
    site: str = Field(description="The site whose GCP region this describes.")
    status: Literal["UP", "DOWN"] = "UP"
    instances_quota: int = Field(24, ge=0, description="The region's INSTANCES quota.")


class GcpSandbox(_Spec):
    regions: list[RegionSpec] = Field(default_factory=list)
    instance_groups: list[InstanceGroupSpec] = Field(default_factory=list)
    autoscalers: list[AutoscalerSpec] = Field(default_factory=list)
    backend_services: list[BackendServiceSpec] = Field(default_factory=list)
    forwarding_rules: list[ForwardingRuleSpec] = Field(default_factory=list)
    instances: list[InstanceSpec] = Field(default_factory=list)

    def sites(self) -> list[tuple[tuple[str | int, ...], str]]:
        """(path inside ``sandbox.gcp``, site) of every resource that names a site."""
        found: list[tuple[tuple[str | int, ...], str]] = []
        for field in (
            "regions",
            "instance_groups",
            "autoscalers",
            "backend_services",
            "forwarding_rules",
            "instances",
        ):
            for i, item in enumerate(getattr(self, field)):
                found.append(((field, i, "site"), item.site))
        for i, service in enumerate(self.backend_services):
            for j, backend in enumerate(service.backends):
                found.append((("backend_services", i, "backends", j, "site"), backend.site))
        return found


class Sandbox(_Spec):
    """What the sandbox creates before a drill."""

    aws: AwsSandbox | None = None
    gcp: GcpSandbox | None = None
    faults: list[str] = Field(
        default_factory=list,
        description="Faults every sandbox drill of the runbook rehearses, as drill --fault takes them "
        "(site-down:SITE, throttle:SERVICE:PER_SECOND, stockout:ZONE...).",
    )
