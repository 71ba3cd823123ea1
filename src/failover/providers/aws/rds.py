"""RDS and Aurora: moving the writer of a global database, promoting replicas, and RPO checks."""

from __future__ import annotations

import datetime as dt
from abc import abstractmethod
from typing import Any, TypeVar

from pydantic import Field, JsonValue, model_validator

from failover.durations import Duration, format_duration
from failover.errors import ProviderError, TransientProviderError
from failover.providers.aws._client import aws_errors, client
from failover.providers.base import (
    Action,
    Check,
    CheckResult,
    Context,
    Params,
    Permission,
    Placement,
    wait_until,
)


def _cluster(ctx: Context, cluster: str) -> dict[str, Any]:
    with aws_errors(ctx, f"DB cluster {cluster}"):
        return dict(client(ctx, "rds").describe_db_clusters(DBClusterIdentifier=cluster)["DBClusters"][0])


def _instance(ctx: Context, instance: str) -> dict[str, Any]:
    with aws_errors(ctx, f"DB instance {instance}"):
        return dict(client(ctx, "rds").describe_db_instances(DBInstanceIdentifier=instance)["DBInstances"][0])


def _global(ctx: Context, name: str) -> dict[str, Any]:
    with aws_errors(ctx, f"global cluster {name}"):
        found = client(ctx, "rds").describe_global_clusters(GlobalClusterIdentifier=name)["GlobalClusters"]
    if not found:
        raise ProviderError(f"global cluster {name} at {ctx.placement.site}: not found")
    return dict(found[0])


def _writer_arn(global_cluster: dict[str, Any]) -> str | None:
    return next(
        (m["DBClusterArn"] for m in global_cluster.get("GlobalClusterMembers", []) if m.get("IsWriter")), None
    )


def _cluster_id(arn: str) -> str:
    return arn.rsplit(":", 1)[-1]  # arn:aws:rds:REGION:ACCOUNT:cluster:ID


_FAILOVER_STATE = ("Status", "FromDbClusterArn", "ToDbClusterArn", "IsDataLossAllowed")
_MOVING_STATUSES = ("switching-over", "failing-over")
"""``GlobalCluster.Status`` while a switchover or failover is under way."""


def _move_in_progress(global_cluster: dict[str, Any]) -> dict[str, Any] | None:
    """The switchover or failover asked for and not yet over, else None.

    AWS describes it in ``FailoverState`` (``Status``: ``pending``, ``switching-over``,
    ``failing-over`` or ``cancelling``; ``FromDbClusterArn``, ``ToDbClusterArn``,
    ``IsDataLossAllowed``) only while one is scheduled or under way, so any status there counts:
    in ``pending`` the global cluster may still be ``available`` with the old writer. Without a
    FailoverState, a ``Status`` of ``switching-over`` or ``failing-over`` says a move of
    unknown target is under way (``{"Status": ...}``)."""
    state = global_cluster.get("FailoverState") or {}
    if state.get("Status"):
        return dict(state)
    if global_cluster.get("Status") in _MOVING_STATUSES:
        return {"Status": global_cluster["Status"]}
    return None


def _move_name(state: dict[str, Any]) -> str:
    """``switchover to orders-usw2`` (``failover`` when data loss is allowed)."""
    kind = "failover" if state.get("IsDataLossAllowed") else "switchover"
    to = state.get("ToDbClusterArn")
    return f"{kind} to {_cluster_id(to) if to else 'an unknown cluster'}"


def _unsynchronized(global_cluster: dict[str, Any]) -> dict[str, str]:
    """Member ARN -> ``SynchronizationStatus`` of the members that report one other than
    ``connected`` (``pending-resync``: an old primary catching up after a failover)."""
    return {
        m["DBClusterArn"]: str(m["SynchronizationStatus"])
        for m in global_cluster.get("GlobalClusterMembers", [])
        if m.get("SynchronizationStatus") not in (None, "connected")
    }


class GlobalWriterParams(Params):
    global_cluster: str = Field(description="Aurora global database identifier.")
    target_cluster: str = Field(description="Cluster (in the step's site) to make the writer.")
    wait_timeout: Duration = Field(1800.0, description="How long to wait for the target to be the writer.")


class _MoveGlobalWriter(Action[GlobalWriterParams]):
    reversible = False
    apply_verifies = True  # apply waits until verify's condition holds
    cloud = "aws"
    params_model = GlobalWriterParams
    default_estimate_s = 300.0
    api = ""  # the RDS operation
    iam = ""

    def permissions(self, params: GlobalWriterParams, where: Placement) -> list[Permission]:
        region = where.region or "*"
        return [
            Permission(
                "aws", "rds:DescribeDBClusters", f"arn:aws:rds:{region}:*:cluster:{params.target_cluster}"
            ),
            Permission(
                "aws", "rds:DescribeGlobalClusters", f"arn:aws:rds::*:global-cluster:{params.global_cluster}"
            ),
            Permission("aws", self.iam, f"arn:aws:rds::*:global-cluster:{params.global_cluster}"),
            Permission("aws", self.iam, f"arn:aws:rds:{region}:*:cluster:{params.target_cluster}"),
        ]

    def read(self, ctx: Context, params: GlobalWriterParams) -> JsonValue:
        return {"writer": _writer_arn(_global(ctx, params.global_cluster))}

    def _look(self, ctx: Context, params: GlobalWriterParams) -> tuple[str, dict[str, Any]]:
        """(the target's ARN, the global cluster)."""
        target = _cluster(ctx, params.target_cluster)["DBClusterArn"]
        return target, _global(ctx, params.global_cluster)

    @staticmethod
    def _done(found: dict[str, Any], target: str) -> bool:
        return (
            _writer_arn(found) == target
            and found.get("Status") == "available"
            and _move_in_progress(found) is None
        )

    def verify(self, ctx: Context, params: GlobalWriterParams) -> bool:
        target, found = self._look(ctx, params)
        return self._done(found, target)

    def _moving(self, params: GlobalWriterParams, found: dict[str, Any], target: str) -> bool:
        """Whether a move toward the target is under way (to wait for, not to ask again).

        A move toward another cluster is fatal: this step does not race it. A move toward the
        target that is being cancelled is transient: it will not make the target the writer,
        and once it is over the step may ask again."""
        state = _move_in_progress(found)
        if state is None:
            return False
        where = f"global cluster {params.global_cluster}"
        to = state.get("ToDbClusterArn")
        if to and to != target:
            raise ProviderError(
                f"{where}: a {_move_name(state)} is {state.get('Status')} ({to}); not moving the writer to "
                f"{params.target_cluster} ({target}) until it is over"
            )
        if state.get("Status") == "cancelling":
            raise TransientProviderError(
                f"{where}: the {_move_name(state)} is being cancelled; "
                f"{params.target_cluster} is asked again once the cancellation is over"
            )
        return True

    def _ready(self, params: GlobalWriterParams, found: dict[str, Any], target: str) -> None:
        """Raise when the target cannot be asked for now (before the request only)."""

    def apply(self, ctx: Context, params: GlobalWriterParams) -> JsonValue:
        target, found = self._look(ctx, params)
        members = [m["DBClusterArn"] for m in found.get("GlobalClusterMembers", [])]
        if target not in members:
            raise ProviderError(
                f"global cluster {params.global_cluster}: {params.target_cluster} ({target}) is not a member "
                f"(members: {', '.join(members) or 'none'})"
            )
        moving = self._moving(params, found, target)  # asked already (this run or another): wait
        if _writer_arn(found) != target and not moving:
            self._ready(params, found, target)
            with aws_errors(ctx, f"global cluster {params.global_cluster}"):
                getattr(client(ctx, "rds"), self.api)(**self._request(params, target))

        def reached() -> bool:
            now_target, now = self._look(ctx, params)
            self._moving(params, now, now_target)  # stops waiting for a move that will not come
            return self._done(now, now_target)

        wait_until(
            ctx,
            f"{params.target_cluster} the writer of global cluster {params.global_cluster}",
            reached,
            params.wait_timeout,
        )
        return {"writer": target}

    def _request(self, params: GlobalWriterParams, target: str) -> dict[str, Any]:
        return {"GlobalClusterIdentifier": params.global_cluster, "TargetDbClusterIdentifier": target}


class SwitchoverGlobalCluster(_MoveGlobalWriter):
    """Switch an Aurora global database's writer to a secondary cluster, with no data loss (graceful)."""

    name = "aws.rds.switchover_global_cluster"
    api = "switchover_global_cluster"
    iam = "rds:SwitchoverGlobalCluster"
    permission_names = ("rds:DescribeDBClusters", "rds:DescribeGlobalClusters", iam)

    def describe(self, params: GlobalWriterParams, where: Placement) -> str:
        return (
            f"Switch over Aurora global database {params.global_cluster} to {params.target_cluster} "
            f"{where.phrase()} (no data loss)"
        )

    def _ready(self, params: GlobalWriterParams, found: dict[str, Any], target: str) -> None:
        """A switchover loses no data: Aurora asks the target to be in sync (``connected``).
        A member ``pending-resync`` (an old primary after a failover) gets there on its own, so
        this is transient."""
        status = _unsynchronized(found).get(target)
        if status is not None:
            raise TransientProviderError(
                f"global cluster {params.global_cluster}: {params.target_cluster} ({target}) is {status}, "
                "not connected: a switchover needs it in sync, so it is not requested yet"
            )


class FailoverGlobalCluster(_MoveGlobalWriter):
    """Fail an Aurora global database over to a secondary cluster, allowing data loss (ungraceful)."""

    name = "aws.rds.failover_global_cluster"
    api = "failover_global_cluster"
    iam = "rds:FailoverGlobalCluster"
    permission_names = ("rds:DescribeDBClusters", "rds:DescribeGlobalClusters", iam)

    def describe(self, params: GlobalWriterParams, where: Placement) -> str:
        return (
            f"Fail over Aurora global database {params.global_cluster} to {params.target_cluster} "
            f"{where.phrase()}, allowing data loss"
        )

    def _request(self, params: GlobalWriterParams, target: str) -> dict[str, Any]:
        return {**super()._request(params, target), "AllowDataLoss": True}


class PromoteClusterParams(Params):
    cluster: str = Field(description="Read replica DB cluster to promote.")
    wait_timeout: Duration = Field(1800.0, description="How long to wait until it is available.")


class PromoteInstanceParams(Params):
    instance: str = Field(description="Read replica DB instance to promote.")
    wait_timeout: Duration = Field(1800.0, description="How long to wait until it is available.")


PromoteParams = TypeVar("PromoteParams", PromoteClusterParams, PromoteInstanceParams)


class _Promote(Action[PromoteParams]):
    """Promotes a read replica (cluster or instance): asked once, while it is available and still
    replicating; then waited for until it has no source and is available again."""

    cloud = "aws"
    reversible = False
    default_estimate_s = 600.0
    apply_verifies = True  # apply waits until verify's condition holds
    noun = ""  # "read replica cluster" | "read replica"
    arn_kind = ""  # "cluster" | "db"

    @abstractmethod
    def _name(self, params: PromoteParams) -> str: ...

    @abstractmethod
    def _look(self, ctx: Context, name: str) -> tuple[str | None, str | None]:
        """(its replication source, its status)."""

    @abstractmethod
    def _promote(self, ctx: Context, name: str) -> None: ...

    def describe(self, params: PromoteParams, where: Placement) -> str:
        return f"Promote {self.noun} {self._name(params)} {where.phrase()} to a standalone writer"

    def permissions(self, params: PromoteParams, where: Placement) -> list[Permission]:
        arn = f"arn:aws:rds:{where.region or '*'}:*:{self.arn_kind}:{self._name(params)}"
        return [Permission("aws", name, arn) for name in self.permission_names]

    def read(self, ctx: Context, params: PromoteParams) -> JsonValue:
        source, status = self._look(ctx, self._name(params))
        return {"replication_source": source, "status": status}

    def verify(self, ctx: Context, params: PromoteParams) -> bool:
        source, status = self._look(ctx, self._name(params))
        return not source and status == "available"

    def apply(self, ctx: Context, params: PromoteParams) -> JsonValue:
        name = self._name(params)
        source, status = self._look(ctx, name)
        if source and status == "available":  # otherwise it is being promoted already: wait
            with aws_errors(ctx, f"{self.noun} {name}"):
                self._promote(ctx, name)
        wait_until(ctx, f"{name} promoted", lambda: self.verify(ctx, params), params.wait_timeout)
        return {"promoted": name}


class PromoteReplicaCluster(_Promote[PromoteClusterParams]):
    """Promote a cross-region read replica DB cluster to a standalone writer (pilot light)."""

    name = "aws.rds.promote_replica_cluster"
    params_model = PromoteClusterParams
    permission_names = ("rds:DescribeDBClusters", "rds:PromoteReadReplicaDBCluster")
    noun, arn_kind = "read replica cluster", "cluster"

    def _name(self, params: PromoteClusterParams) -> str:
        return params.cluster

    def _look(self, ctx: Context, name: str) -> tuple[str | None, str | None]:
        found = _cluster(ctx, name)
        return found.get("ReplicationSourceIdentifier"), found.get("Status")

    def _promote(self, ctx: Context, name: str) -> None:
        client(ctx, "rds").promote_read_replica_db_cluster(DBClusterIdentifier=name)


class PromoteReplicaInstance(_Promote[PromoteInstanceParams]):
    """Promote a cross-region read replica DB instance to a standalone writer (pilot light)."""

    name = "aws.rds.promote_replica_instance"
    params_model = PromoteInstanceParams
    permission_names = ("rds:DescribeDBInstances", "rds:PromoteReadReplica")
    noun, arn_kind = "read replica", "db"

    def _name(self, params: PromoteInstanceParams) -> str:
        return params.instance

    def _look(self, ctx: Context, name: str) -> tuple[str | None, str | None]:
        found = _instance(ctx, name)
        return found.get("ReadReplicaSourceDBInstanceIdentifier"), found.get("DBInstanceStatus")

    def _promote(self, ctx: Context, name: str) -> None:
        client(ctx, "rds").promote_read_replica(DBInstanceIdentifier=name)


class ReplicaLagParams(Params):
    cluster: str | None = Field(None, description="Secondary Aurora cluster (AuroraGlobalDBReplicationLag).")
    instance: str | None = Field(None, description="Read replica instance (ReplicaLag).")
    max_lag: Duration = Field(description="Largest acceptable lag: the RPO this failover accepts.")
    window: Duration = Field(300.0, description="How far back to look; the worst value counts.")

    @model_validator(mode="after")
    def _one(self) -> ReplicaLagParams:
        if (self.cluster is None) == (self.instance is None):
            raise ValueError("give exactly one of cluster or instance")
        return self


class ReplicaLag(Check[ReplicaLagParams]):
    """Pass when the replica's lag stayed below the limit (the RPO) over the recent window."""

    name = "aws.rds.replica_lag"
    measures_lag = True
    cloud = "aws"
    params_model = ReplicaLagParams
    default_estimate_s = 2.0
    permission_names = ("cloudwatch:GetMetricStatistics",)

    def describe(self, params: ReplicaLagParams, where: Placement) -> str:
        what = f"Aurora cluster {params.cluster}" if params.cluster else f"replica {params.instance}"
        return f"Check that {what} {where.phrase()} lags less than {format_duration(params.max_lag)}"

    def run(self, ctx: Context, params: ReplicaLagParams) -> CheckResult:
        if params.cluster:
            metric, dims, scale = (
                "AuroraGlobalDBReplicationLag",
                [{"Name": "DBClusterIdentifier", "Value": params.cluster}],
                1000.0,
            )
        else:
            metric, dims, scale = (
                "ReplicaLag",
                [{"Name": "DBInstanceIdentifier", "Value": str(params.instance)}],
                1.0,
            )
        end = dt.datetime.now(dt.UTC)
        with aws_errors(ctx, f"metric {metric} of {params.cluster or params.instance}"):
            points = client(ctx, "cloudwatch").get_metric_statistics(
                Namespace="AWS/RDS",
                MetricName=metric,
                Dimensions=dims,
                StartTime=end - dt.timedelta(seconds=params.window),
                EndTime=end + dt.timedelta(minutes=1),  # whole periods, up to now
                Period=60,
                Statistics=["Maximum"],
            )["Datapoints"]
        if not points:
            return CheckResult(
                False, None, f"no {metric} data in the last {format_duration(params.window)}: lag unknown"
            )
        worst = max(float(p["Maximum"]) for p in points) / scale
        ok = worst < params.max_lag
        return CheckResult(
            ok, round(worst, 3), f"worst lag {worst:g}s, limit {format_duration(params.max_lag)}"
        )


class GlobalHealthyParams(Params):
    global_cluster: str
    writer: str | None = Field(None, description="Cluster expected to be the writer now, if it matters.")
    members: int | None = Field(None, ge=1, description="How many member clusters there must be.")


class GlobalClusterHealthy(Check[GlobalHealthyParams]):
    """Pass when an Aurora global database is available with one writer (and the expected members)."""

    name = "aws.rds.global_cluster_healthy"
    cloud = "aws"
    params_model = GlobalHealthyParams
    default_estimate_s = 1.0
    permission_names = ("rds:DescribeGlobalClusters",)

    def describe(self, params: GlobalHealthyParams, where: Placement) -> str:
        extra = f" with {params.writer} as writer" if params.writer else ""
        return f"Check that Aurora global database {params.global_cluster} is healthy{extra}"

    def permissions(self, params: GlobalHealthyParams, where: Placement) -> list[Permission]:
        arn = f"arn:aws:rds::*:global-cluster:{params.global_cluster}"
        return [Permission("aws", "rds:DescribeGlobalClusters", arn)]

    def run(self, ctx: Context, params: GlobalHealthyParams) -> CheckResult:
        found = _global(ctx, params.global_cluster)
        members = found.get("GlobalClusterMembers", [])
        writers = [m["DBClusterArn"] for m in members if m.get("IsWriter")]
        lagging = _unsynchronized(found)
        state = found.get("FailoverState") or {}
        moving = {k: state[k] for k in _FAILOVER_STATE if k in state} if state.get("Status") else None
        observed: dict[str, JsonValue] = {
            "status": found.get("Status"),
            "writers": writers,
            "members": len(members),
            "unsynchronized": dict(lagging),
            "failover_state": moving,
        }
        problems = []
        if found.get("Status") != "available":
            problems.append(f"status {found.get('Status')}")
        if moving is not None:
            problems.append(f"{_move_name(moving)} {moving['Status']}")
        problems += [f"{_cluster_id(arn)} {status}" for arn, status in lagging.items()]
        if len(writers) != 1:
            problems.append(f"{len(writers)} writers")
        if params.members is not None and len(members) != params.members:
            problems.append(f"{len(members)} members, expected {params.members}")
        writer = writers[0].rsplit(":", 1)[-1] if writers else None  # arn:...:cluster:ID
        if params.writer and writer is not None and writer != params.writer:
            problems.append(f"writer is {writer}, expected {params.writer}")
        return CheckResult(not problems, observed, "; ".join(problems) or "available with one writer")
