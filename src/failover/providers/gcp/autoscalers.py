"""Autoscalers: the limits that keep a managed instance group where a failover puts it."""

from __future__ import annotations

from typing import Any

from pydantic import Field, JsonValue, model_validator

from failover.errors import ProviderError
from failover.providers.base import Action, Context, Params, Permission, Placement
from failover.providers.gcp._client import (
    call_options,
    gcp_errors,
    last,
    located,
    mutate,
    project,
)
from failover.providers.gcp.instance_groups import GroupParams, describe_group, resize_group


class LimitsParams(Params):
    autoscaler: str = Field(description="Autoscaler name.")
    zone: str | None = Field(
        None, description="Its zone, for a zonal autoscaler; regional (in the site's region) if not given."
    )
    min_replicas: int | None = Field(None, ge=0, description="Minimum number of instances.")
    max_replicas: int | None = Field(None, ge=0, description="Maximum number of instances.")

    @model_validator(mode="after")
    def _limits(self) -> LimitsParams:
        if self.min_replicas is None and self.max_replicas is None:
            raise ValueError("give min_replicas, max_replicas or both")
        if (
            self.min_replicas is not None
            and self.max_replicas is not None
            and self.min_replicas > self.max_replicas
        ):
            raise ValueError(f"min_replicas {self.min_replicas} is above max_replicas {self.max_replicas}")
        return self


_LIMITS = (("min_replicas", "min_num_replicas"), ("max_replicas", "max_num_replicas"))


def _target(autoscaler: Any, params: LimitsParams) -> GroupParams:
    """The managed instance group an autoscaler scales (in its zone, or the site's region)."""
    return GroupParams(group=last(autoscaler.target), zone=params.zone)


class SetAutoscalerLimits(Action[LimitsParams]):
    """Set a zonal or regional autoscaler's minimum and maximum number of instances."""

    name = "gcp.compute.set_autoscaler_limits"
    cloud = "gcp"
    params_model = LimitsParams
    default_estimate_s = 10.0
    permission_names = (
        "compute.autoscalers.get",
        "compute.autoscalers.update",
        "compute.instanceGroupManagers.get",
        "compute.instanceGroupManagers.update",
        "compute.zoneOperations.get",
        "compute.regionOperations.get",
    )

    def describe(self, params: LimitsParams, where: Placement) -> str:
        limits = ", ".join(
            f"{k.split('_')[0]} {getattr(params, k)}" for k, _ in _LIMITS if getattr(params, k) is not None
        )
        zone = f" in zone {params.zone}" if params.zone else ""
        return f"Set autoscaler {params.autoscaler}{zone} {where.phrase()} to {limits} instances"

    def permissions(self, params: LimitsParams, where: Placement) -> list[Permission]:
        scope = f"zones/{params.zone}" if params.zone else f"regions/{where.region or '*'}"
        resource = f"projects/{where.project or '*'}/{scope}/autoscalers/{params.autoscaler}"
        return [
            Permission("gcp", "compute.autoscalers.get", resource),
            Permission("gcp", "compute.autoscalers.update", resource),
            Permission("gcp", "compute.instanceGroupManagers.get"),  # the size of the group it scales
            # the rollback resizes that group back to its size before the step (see compensate)
            Permission("gcp", "compute.instanceGroupManagers.update"),
            Permission(
                "gcp", "compute.zoneOperations.get" if params.zone else "compute.regionOperations.get"
            ),
        ]

    def _get(self, ctx: Context, params: LimitsParams) -> Any:
        client, scope, path = located(ctx, params.zone, "AutoscalersClient", "RegionAutoscalersClient")
        with gcp_errors(ctx, f"autoscaler {path}/{params.autoscaler}"):
            return client.get(request={**scope, "autoscaler": params.autoscaler}, **call_options(ctx))

    def read(self, ctx: Context, params: LimitsParams) -> JsonValue:
        """The limits, and the size of the group they hold (new limits may resize it: a rollback
        puts that size back too)."""
        found = self._get(ctx, params)
        state: dict[str, JsonValue] = {key: getattr(found.autoscaling_policy, f) for key, f in _LIMITS}
        group = describe_group(ctx, _target(found, params))
        state["group_size"] = group.target_size
        return state

    def _set(self, ctx: Context, params: LimitsParams, limits: dict[str, int], purpose: str) -> None:
        found = self._get(ctx, params)
        policy = found.autoscaling_policy
        wanted = {field: limits.get(key, getattr(policy, field)) for key, field in _LIMITS}
        if all(getattr(policy, f) == v for f, v in wanted.items()):
            return
        if wanted["min_num_replicas"] > wanted["max_num_replicas"]:
            raise ProviderError(
                f"autoscaler {params.autoscaler} in {project(ctx)}: min {wanted['min_num_replicas']} "
                f"would be above max {wanted['max_num_replicas']} (give both limits)"
            )
        for field, value in wanted.items():
            setattr(policy, field, value)
        client, scope, path = located(ctx, params.zone, "AutoscalersClient", "RegionAutoscalersClient")
        mutate(
            ctx,
            client.patch_unary,
            {
                **scope,
                "autoscaler": params.autoscaler,
                "autoscaler_resource": {"name": found.name, "autoscaling_policy": policy},
            },
            f"autoscaler {path}/{params.autoscaler}",
            f"limits of autoscaler {path}/{params.autoscaler}",
            *(purpose, path, params.autoscaler, *(str(v) for v in wanted.values())),
        )

    def apply(self, ctx: Context, params: LimitsParams) -> JsonValue:
        wanted = {k: v for k, _ in _LIMITS if (v := getattr(params, k)) is not None}
        self._set(ctx, params, wanted, "limits")
        policy = self._get(ctx, params).autoscaling_policy
        return {key: getattr(policy, field) for key, field in _LIMITS}

    def verify(self, ctx: Context, params: LimitsParams) -> bool:
        policy = self._get(ctx, params).autoscaling_policy
        return all(
            getattr(policy, f) == getattr(params, k) for k, f in _LIMITS if getattr(params, k) is not None
        )

    def compensate(self, ctx: Context, params: LimitsParams, before: JsonValue) -> None:
        if not isinstance(before, dict) or not all(isinstance(before.get(k), int) for k, _ in _LIMITS):
            raise ProviderError(
                f"{self.name}: the snapshot to restore is {before!r}, expected min_replicas/max_replicas"
            )
        limits = {k: v for k, _ in _LIMITS if isinstance(v := before.get(k), int)}
        self._set(ctx, params, limits, "compensate")
        size = before.get("group_size")
        if isinstance(size, int) and limits["min_replicas"] <= size <= limits["max_replicas"]:
            resize_group(ctx, _target(self._get(ctx, params), params), size, "compensate-size")
