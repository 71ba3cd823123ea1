"""Auto Scaling groups: capacity for the standby region, and whether it can be reached."""

from __future__ import annotations

from typing import Any

from pydantic import Field, JsonValue, model_validator

from failover.durations import Duration
from failover.errors import ProviderError
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


def _group_arn(where: Placement, group: str) -> str:
    region = where.region or "*"
    return f"arn:aws:autoscaling:{region}:*:autoScalingGroup:*:autoScalingGroupName/{group}"


def describe_group(ctx: Context, group: str) -> dict[str, Any]:
    with aws_errors(ctx, f"Auto Scaling group {group}"):
        found = client(ctx, "autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[group])
    groups = found["AutoScalingGroups"]
    if not groups:
        raise ProviderError(f"Auto Scaling group {group} at {ctx.placement.site}: not found")
    return dict(groups[0])


def _in_service(group: dict[str, Any]) -> int:
    return sum(
        1
        for i in group.get("Instances", [])
        if i.get("LifecycleState") == "InService" and i.get("HealthStatus") == "Healthy"
    )


class CapacityParams(Params):
    group: str = Field(description="Auto Scaling group name.")
    min: int | None = Field(None, ge=0, description="Minimum size.")
    desired: int | None = Field(None, ge=0, description="Desired capacity.")
    max: int | None = Field(None, ge=0, description="Maximum size.")
    wait_timeout: Duration = Field(600.0, description="How long to wait for healthy InService instances.")

    @model_validator(mode="after")
    def _sizes(self) -> CapacityParams:
        if self.min is None and self.desired is None and self.max is None:
            raise ValueError("give at least one of min, desired, max")
        lo, hi = self.min, self.max
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"min {lo} is above max {hi}")
        if self.desired is not None and (
            (lo is not None and self.desired < lo) or (hi is not None and self.desired > hi)
        ):
            raise ValueError(f"desired {self.desired} is outside min {lo} .. max {hi}")
        return self


_SIZES = (("min", "MinSize"), ("desired", "DesiredCapacity"), ("max", "MaxSize"))


class SetCapacity(Action[CapacityParams]):
    """Set an Auto Scaling group's min/desired/max; wait until its instances are InService and healthy."""

    name = "aws.autoscaling.set_capacity"
    cloud = "aws"
    params_model = CapacityParams
    default_estimate_s = 300.0
    permission_names = ("autoscaling:DescribeAutoScalingGroups", "autoscaling:UpdateAutoScalingGroup")
    apply_verifies = True  # apply waits until verify's condition holds

    def describe(self, params: CapacityParams, where: Placement) -> str:
        sizes = ", ".join(f"{k} {getattr(params, k)}" for k, _ in _SIZES if getattr(params, k) is not None)
        return f"Scale Auto Scaling group {params.group} {where.phrase()} to {sizes}"

    def permissions(self, params: CapacityParams, where: Placement) -> list[Permission]:
        return [
            Permission("aws", "autoscaling:DescribeAutoScalingGroups"),
            Permission("aws", "autoscaling:UpdateAutoScalingGroup", _group_arn(where, params.group)),
        ]

    def read(self, ctx: Context, params: CapacityParams) -> JsonValue:
        group = describe_group(ctx, params.group)
        return {key: group[field] for key, field in _SIZES}

    def _update(self, ctx: Context, group: str, sizes: dict[str, int]) -> None:
        now = describe_group(ctx, group)
        changes = {field: sizes[key] for key, field in _SIZES if key in sizes and now[field] != sizes[key]}
        if changes:
            with aws_errors(ctx, f"Auto Scaling group {group}"):
                client(ctx, "autoscaling").update_auto_scaling_group(AutoScalingGroupName=group, **changes)

    def _wanted(self, params: CapacityParams) -> dict[str, int]:
        return {k: v for k in ("min", "desired", "max") if (v := getattr(params, k)) is not None}

    def apply(self, ctx: Context, params: CapacityParams) -> JsonValue:
        self._update(ctx, params.group, self._wanted(params))
        wait_until(
            ctx,
            f"Auto Scaling group {params.group} healthy at its desired capacity",
            lambda: self._settled(ctx, params),
            params.wait_timeout,
        )
        return self.read(ctx, params)

    def _settled(self, ctx: Context, params: CapacityParams) -> bool:
        group = describe_group(ctx, params.group)
        sizes_ok = all(
            group[field] == getattr(params, key) for key, field in _SIZES if getattr(params, key) is not None
        )
        return sizes_ok and _in_service(group) >= group["DesiredCapacity"]

    def verify(self, ctx: Context, params: CapacityParams) -> bool:
        return self._settled(ctx, params)

    def compensate(self, ctx: Context, params: CapacityParams, before: JsonValue) -> None:
        if not isinstance(before, dict) or not all(isinstance(before.get(k), int) for k, _ in _SIZES):
            raise ProviderError(
                f"{self.name}: the snapshot to restore is {before!r}, expected min/desired/max"
            )
        self._update(ctx, params.group, {k: int(before[k]) for k, _ in _SIZES})  # type: ignore[arg-type]


class CapacityAvailableParams(Params):
    group: str
    desired: int = Field(ge=0, description="The capacity the failover will ask for.")


class CapacityAvailable(Check[CapacityAvailableParams]):
    """Pass when an Auto Scaling group's max size allows the desired capacity of the failover."""

    name = "aws.autoscaling.capacity_available"
    cloud = "aws"
    params_model = CapacityAvailableParams
    default_estimate_s = 1.0
    permission_names = ("autoscaling:DescribeAutoScalingGroups",)

    def describe(self, params: CapacityAvailableParams, where: Placement) -> str:
        return f"Check that Auto Scaling group {params.group} {where.phrase()} can grow to {params.desired}"

    def run(self, ctx: Context, params: CapacityAvailableParams) -> CheckResult:
        group = describe_group(ctx, params.group)
        ok = group["MaxSize"] >= params.desired
        observed = {k: group[f] for k, f in _SIZES}
        return CheckResult(ok, observed, f"max size {group['MaxSize']}, the failover needs {params.desired}")
