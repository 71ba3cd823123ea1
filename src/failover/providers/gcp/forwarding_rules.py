"""Forwarding rules: which target (proxy, pool, instance) an address sends its traffic to."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, JsonValue, field_validator

from failover.errors import ProviderError
from failover.providers.base import Action, Context, Params, Permission, Placement
from failover.providers.gcp._client import (
    call_options,
    compute,
    gcp_errors,
    mutate,
    phrase,
    project,
    region,
    relative,
)

TARGETS = frozenset(
    {
        "targetHttpProxies",
        "targetHttpsProxies",
        "targetTcpProxies",
        "targetSslProxies",
        "targetGrpcProxies",
        "targetPools",
        "targetInstances",
        "targetVpnGateways",
        "serviceAttachments",
    }
)
_REGIONAL_USE = {  # proxies in a region have their own permission names
    "targetHttpProxies": "regionTargetHttpProxies",
    "targetHttpsProxies": "regionTargetHttpsProxies",
    "targetTcpProxies": "regionTargetTcpProxies",
}


class TargetParams(Params):
    rule: str = Field(description="Forwarding rule name.")
    scope: Literal["global", "regional"] = Field(
        "regional", description="regional (in the site's region) or global."
    )
    target: str = Field(
        description="The new target: a URL, or its path from the project on, e.g. "
        "regions/us-east4/targetPools/web or global/targetHttpProxies/web."
    )

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        parts = relative(value).split("/")
        if parts[0] == "projects":
            parts = parts[2:]
        kind = parts[-2] if len(parts) >= 2 else ""
        if kind not in TARGETS or parts[0] not in ("global", "regions", "zones"):
            raise ValueError(
                f"target {value!r} is not a target resource path: expected e.g. "
                "regions/REGION/targetPools/NAME or global/targetHttpProxies/NAME"
            )
        return value


def _path(ctx: Context, target: str) -> str:
    """``projects/P/...`` for a target given from its scope on."""
    found = relative(target)
    return found if found.startswith("projects/") else f"projects/{project(ctx)}/{found.lstrip('/')}"


class SetForwardingTarget(Action[TargetParams]):
    """Point a regional or global forwarding rule at another target."""

    name = "gcp.compute.set_forwarding_target"
    cloud = "gcp"
    params_model = TargetParams
    default_estimate_s = 20.0
    permission_names = (
        "compute.forwardingRules.get",
        "compute.forwardingRules.setTarget",
        "compute.globalForwardingRules.get",
        "compute.globalForwardingRules.setTarget",
        "compute.regionOperations.get",
        "compute.globalOperations.get",
    )

    def describe(self, params: TargetParams, where: Placement) -> str:
        rule = f"{params.scope} forwarding rule {params.rule} {phrase(where, params.scope)}"
        return f"Point {rule} at {params.target}"

    def permissions(self, params: TargetParams, where: Placement) -> list[Permission]:
        is_global = params.scope == "global"
        family = "globalForwardingRules" if is_global else "forwardingRules"
        scope = "global" if is_global else f"regions/{where.region or '*'}"
        resource = f"projects/{where.project or '*'}/{scope}/forwardingRules/{params.rule}"
        parts = relative(params.target).split("/")
        kind = parts[-2]
        use = _REGIONAL_USE.get(kind, kind) if "regions" in parts else kind
        return [
            Permission("gcp", f"compute.{family}.get", resource),
            Permission("gcp", f"compute.{family}.setTarget", resource),
            Permission("gcp", f"compute.{use}.use"),
            Permission(
                "gcp", "compute.globalOperations.get" if is_global else "compute.regionOperations.get"
            ),
        ]

    def _client(self, ctx: Context, params: TargetParams) -> tuple[Any, dict[str, str], str]:
        if params.scope == "global":
            return (
                compute(ctx, "GlobalForwardingRulesClient"),
                {"project": project(ctx)},
                f"global forwarding rule {params.rule}",
            )
        at = region(ctx)
        return (
            compute(ctx, "ForwardingRulesClient"),
            {"project": project(ctx), "region": at},
            f"forwarding rule {params.rule} ({at})",
        )

    def _target(self, ctx: Context, params: TargetParams) -> str:
        client, scope, label = self._client(ctx, params)
        with gcp_errors(ctx, label):
            return str(
                client.get(request={**scope, "forwarding_rule": params.rule}, **call_options(ctx)).target
            )

    def read(self, ctx: Context, params: TargetParams) -> JsonValue:
        return {"target": relative(self._target(ctx, params))}

    def _set(self, ctx: Context, params: TargetParams, target: str, purpose: str) -> None:
        wanted = _path(ctx, target)
        if relative(self._target(ctx, params)) == wanted:
            return
        client, scope, label = self._client(ctx, params)
        mutate(
            ctx,
            client.set_target_unary,
            {**scope, "forwarding_rule": params.rule, "target_reference_resource": {"target": wanted}},
            label,
            f"target of {label}",
            *(purpose, params.scope, params.rule, wanted),
        )

    def apply(self, ctx: Context, params: TargetParams) -> JsonValue:
        self._set(ctx, params, params.target, "target")
        return self.read(ctx, params)

    def verify(self, ctx: Context, params: TargetParams) -> bool:
        return relative(self._target(ctx, params)) == _path(ctx, params.target)

    def compensate(self, ctx: Context, params: TargetParams, before: JsonValue) -> None:
        target = before.get("target") if isinstance(before, dict) else None
        if not isinstance(target, str) or not target:
            raise ProviderError(f"{self.name}: the snapshot to restore is {before!r}, expected target")
        self._set(ctx, params, target, "compensate")
