"""ECS services: task count in the standby region."""

from __future__ import annotations

from typing import Any

from pydantic import Field, JsonValue

from failover.durations import Duration
from failover.errors import ProviderError
from failover.providers.aws._client import aws_errors, client
from failover.providers.base import Action, Context, Params, Permission, Placement, wait_until


class DesiredCountParams(Params):
    cluster: str = Field(description="ECS cluster name.")
    service: str = Field(description="ECS service name.")
    count: int = Field(ge=0, description="Desired task count.")
    wait_timeout: Duration = Field(600.0, description="How long to wait for the service to be stable.")


def _service(ctx: Context, cluster: str, service: str) -> dict[str, Any]:
    with aws_errors(ctx, f"ECS service {cluster}/{service}"):
        found = client(ctx, "ecs").describe_services(cluster=cluster, services=[service])
    services = [s for s in found.get("services", []) if s.get("status") != "INACTIVE"]
    if not services:
        raise ProviderError(f"ECS service {cluster}/{service} at {ctx.placement.site}: not found")
    return dict(services[0])


def _stable(svc: dict[str, Any], count: int) -> bool:
    """Stable as ECS's own waiter means it: one deployment, running what is desired."""
    deployments = svc.get("deployments", [])
    return svc.get("desiredCount") == count and svc.get("runningCount") == count and len(deployments) <= 1


class SetDesiredCount(Action[DesiredCountParams]):
    """Set an ECS service's desired task count; wait until the service is stable at that count."""

    name = "aws.ecs.set_desired_count"
    cloud = "aws"
    params_model = DesiredCountParams
    default_estimate_s = 180.0
    permission_names = ("ecs:DescribeServices", "ecs:UpdateService")
    apply_verifies = True  # apply waits until verify's condition holds

    def describe(self, params: DesiredCountParams, where: Placement) -> str:
        return f"Run {params.count} tasks of ECS service {params.cluster}/{params.service} {where.phrase()}"

    def permissions(self, params: DesiredCountParams, where: Placement) -> list[Permission]:
        arn = f"arn:aws:ecs:{where.region or '*'}:*:service/{params.cluster}/{params.service}"
        return [Permission("aws", "ecs:DescribeServices", arn), Permission("aws", "ecs:UpdateService", arn)]

    def read(self, ctx: Context, params: DesiredCountParams) -> JsonValue:
        return {"desired_count": _service(ctx, params.cluster, params.service)["desiredCount"]}

    def _set(self, ctx: Context, params: DesiredCountParams, count: int) -> None:
        if _service(ctx, params.cluster, params.service)["desiredCount"] != count:
            with aws_errors(ctx, f"ECS service {params.cluster}/{params.service}"):
                client(ctx, "ecs").update_service(
                    cluster=params.cluster, service=params.service, desiredCount=count
                )

    def apply(self, ctx: Context, params: DesiredCountParams) -> JsonValue:
        self._set(ctx, params, params.count)
        wait_until(
            ctx,
            f"ECS service {params.cluster}/{params.service} stable at {params.count} tasks",
            lambda: self.verify(ctx, params),
            params.wait_timeout,
        )
        return {"desired_count": params.count}

    def verify(self, ctx: Context, params: DesiredCountParams) -> bool:
        return _stable(_service(ctx, params.cluster, params.service), params.count)

    def compensate(self, ctx: Context, params: DesiredCountParams, before: JsonValue) -> None:
        count = before.get("desired_count") if isinstance(before, dict) else None
        if not isinstance(count, int):
            raise ProviderError(f"{self.name}: the snapshot to restore is {before!r}, expected desired_count")
        self._set(ctx, params, count)
