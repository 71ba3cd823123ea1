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
    routing_control: str | None = Field(
        None,
        description="ARN of the ARC routing control whose health check the record has: it answers "
        "only while the control is On.",
    )

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


_PANEL_ARN = re.compile(r"arn:aws:route53-recovery-control::\d{12}:controlpanel/[A-Za-z0-9_-]{1,64}")


class SafetyRuleSpec(_Spec):
    """An ARC safety rule: an assertion rule holds over its ``asserted`` controls after every
    change; a gating rule lets its ``targets`` change only while its ``gating`` controls hold."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    type: Literal["ATLEAST", "AND", "OR"] = "ATLEAST"
    threshold: int = Field(1, ge=1, description="ATLEAST: how many controls must be On.")
    inverted: bool = False
    asserted: list[str] = Field(default_factory=list, description="Assertion rule: control names.")
    gating: list[str] = Field(default_factory=list, description="Gating rule: the gating control names.")
    targets: list[str] = Field(default_factory=list, description="Gating rule: the controls it gates.")

    @model_validator(mode="after")
    def _kind(self) -> SafetyRuleSpec:
        if bool(self.asserted) == bool(self.gating) or bool(self.gating) != bool(self.targets):
            raise ValueError("a safety rule has asserted controls, or gating controls and targets")
        return self


class ControlPanelSpec(_Spec):
    """An ARC control panel of the sandbox's cluster: its routing controls, by name, and their
    states when the drill starts, and its safety rules."""

    arn: str = Field(description="arn:aws:route53-recovery-control::ACCOUNT:controlpanel/ID")
    controls: dict[str, Literal["On", "Off"]] = Field(min_length=1)
    rules: list[SafetyRuleSpec] = Field(default_factory=list)

    @field_validator("arn")
    @classmethod
    def _arn(cls, arn: str) -> str:
        if not _PANEL_ARN.fullmatch(arn):
            raise ValueError(f"{arn!r} is not a control panel ARN: expected {_PANEL_ARN.pattern}")
        return arn

    @model_validator(mode="after")
    def _names(self) -> ControlPanelSpec:
        for rule in self.rules:
            unknown = sorted({*rule.asserted, *rule.gating, *rule.targets} - set(self.controls))
            if unknown:
                raise ValueError(f"safety rule {rule.name} names controls not in controls: {unknown}")
        return self

    def control_arn(self, name: str) -> str:
        return f"{self.arn}/routingcontrol/{name}"

    def rule_arn(self, name: str) -> str:
        return f"{self.arn}/safetyrule/{name}"


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
    control_panels: list[ControlPanelSpec] = Field(
        default_factory=list, description="ARC control panels of the sandbox's recovery cluster."
    )
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

    @model_validator(mode="after")
    def _controls(self) -> AwsSandbox:
        declared = {p.control_arn(name) for p in self.control_panels for name in p.controls}
        for zone in self.hosted_zones:
            for record in zone.records:
                if record.routing_control is not None and record.routing_control not in declared:
                    raise ValueError(
                        f"record {record.name} ({record.set_identifier}): routing control "
                        f"{record.routing_control} is not declared in control_panels"
                    )
        return self

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
