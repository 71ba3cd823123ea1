"""The runbook's ``sandbox:`` section: the cloud resources a sandbox drill starts from.

Each resource names the site it lives at (its region comes from the site); the section is
validated with the rest of the runbook, and only used by ``--sandbox``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


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


class AwsSandbox(_Spec):
    hosted_zones: list[HostedZoneSpec] = Field(default_factory=list)
    auto_scaling_groups: list[AutoScalingGroupSpec] = Field(default_factory=list)
    ecs_services: list[EcsServiceSpec] = Field(default_factory=list)
    load_balancers: list[LoadBalancerSpec] = Field(default_factory=list)
    global_clusters: list[GlobalClusterSpec] = Field(default_factory=list)
    replica_clusters: list[ReplicaClusterSpec] = Field(default_factory=list)
    alarms: list[AlarmSpec] = Field(default_factory=list)
    metrics: list[MetricSpec] = Field(default_factory=list)

    def sites(self) -> list[tuple[tuple[str | int, ...], str]]:
        """(path inside ``sandbox.aws``, site) of every resource that names a site."""
        found: list[tuple[tuple[str | int, ...], str]] = []
        for field in ("auto_scaling_groups", "ecs_services", "load_balancers", "alarms", "metrics"):
            for i, item in enumerate(getattr(self, field)):
                found.append(((field, i, "site"), item.site))
        for i, cluster in enumerate(self.global_clusters):
            for j, member in enumerate(cluster.members):
                found.append((("global_clusters", i, "members", j, "site"), member.site))
        for i, replica in enumerate(self.replica_clusters):
            found.append((("replica_clusters", i, "site"), replica.site))
            found.append((("replica_clusters", i, "source", "site"), replica.source.site))
        return found


class Sandbox(_Spec):
    """What the sandbox creates before a drill."""

    aws: AwsSandbox | None = None
