"""Backend services: where a load balancer sends traffic (each backend's capacity scaler), the
failover policy of a regional one, and the health of its backends."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, JsonValue, field_validator

from failover.errors import ProviderError
from failover.providers.base import Action, Check, CheckResult, Context, Params, Permission, Placement
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

Scope = Literal["global", "regional"]


class ServiceParams(Params):
    service: str = Field(description="Backend service name.")
    scope: Scope = Field("global", description="global, or regional (in the site's region).")


def _kind(scope: Scope) -> str:
    return "BackendServicesClient" if scope == "global" else "RegionBackendServicesClient"


def _permission(scope: Scope, verb: str) -> str:
    return f"compute.{'backendServices' if scope == 'global' else 'regionBackendServices'}.{verb}"


def _resource(where: Placement, params: ServiceParams) -> str:
    scope = "global" if params.scope == "global" else f"regions/{where.region or '*'}"
    return f"projects/{where.project or '*'}/{scope}/backendServices/{params.service}"


def _request(ctx: Context, params: ServiceParams) -> dict[str, Any]:
    found = {"project": project(ctx), "backend_service": params.service}
    if params.scope == "regional":
        found["region"] = region(ctx)
    return found


def _label(ctx: Context, params: ServiceParams) -> str:
    return f"backend service {params.service}" + ("" if params.scope == "global" else f" ({region(ctx)})")


def get_service(ctx: Context, params: ServiceParams) -> Any:
    with gcp_errors(ctx, _label(ctx, params)):
        return compute(ctx, _kind(params.scope)).get(request=_request(ctx, params), **call_options(ctx))


def match_backends(service: Any, refs: list[str], label: str) -> dict[str, Any]:
    """The backends named by ``refs``: an instance group name (``web-use4``) or the end of its
    URL (``zones/us-east4-a/instanceGroups/web``) when the name alone is ambiguous."""
    found: dict[str, Any] = {}
    groups = [b.group for b in service.backends]
    for ref in refs:
        hits = [b for b in service.backends if b.group.endswith("/" + ref.strip("/")) or b.group == ref]
        if len(hits) != 1:
            known = ", ".join(relative(g).split("/", 2)[-1] for g in groups) or "none"
            problem = (
                "no backend" if not hits else f"{len(hits)} backends (give zones/ZONE/instanceGroups/NAME)"
            )
            raise ProviderError(f"{label}: {problem} for instance group {ref!r}; its backends: {known}")
        found[ref] = hits[0]
    return found


def _patch(ctx: Context, params: ServiceParams, body: dict[str, Any], purpose: str, what: str) -> None:
    """PATCH the service with its fingerprint (a concurrent change makes it fail with 412,
    which is transient: the next attempt reads again), and wait for the operation."""
    mutate(
        ctx,
        compute(ctx, _kind(params.scope)).patch_unary,
        {**_request(ctx, params), "backend_service_resource": body},
        _label(ctx, params),
        what,
        *(purpose, params.scope, params.service, repr(sorted(body.items()))),
    )


class CapacityParams(ServiceParams):
    capacity: dict[str, float] = Field(
        min_length=1,
        description="capacityScaler per backend instance group (its name, or "
        "zones/ZONE/instanceGroups/NAME): 0.0 drains it, 0.1 to 1.0 serve.",
    )

    @field_validator("capacity")
    @classmethod
    def _scalers(cls, value: dict[str, float]) -> dict[str, float]:
        for group, scaler in value.items():
            if not (scaler == 0.0 or 0.1 <= scaler <= 1.0):
                raise ValueError(
                    f"capacity of {group!r} is {scaler}: a capacityScaler is 0.0 or between 0.1 and 1.0"
                )
        return value


def _scalers(service: Any) -> dict[str, float]:
    return {relative(b.group): round(b.capacity_scaler, 6) for b in service.backends}


class SetBackendCapacity(Action[CapacityParams]):
    """Set the capacity scaler of a backend service's backends: the traffic shift of a GCP load balancer."""

    name = "gcp.compute.set_backend_capacity"
    cloud = "gcp"
    params_model = CapacityParams
    default_estimate_s = 30.0
    permission_names = (
        "compute.backendServices.get",
        "compute.backendServices.update",
        "compute.regionBackendServices.get",
        "compute.regionBackendServices.update",
        "compute.instanceGroups.use",
        "compute.globalOperations.get",
        "compute.regionOperations.get",
    )

    def describe(self, params: CapacityParams, where: Placement) -> str:
        shares = ", ".join(f"{group} {scaler:g}" for group, scaler in params.capacity.items())
        return (
            f"Set the capacity of {params.scope} backend service {params.service} "
            f"{phrase(where, params.scope)}: {shares}"
        )

    def permissions(self, params: CapacityParams, where: Placement) -> list[Permission]:
        resource = _resource(where, params)
        return [
            Permission("gcp", _permission(params.scope, "get"), resource),
            Permission("gcp", _permission(params.scope, "update"), resource),
            Permission("gcp", "compute.instanceGroups.use"),
            Permission(
                "gcp",
                "compute.globalOperations.get"
                if params.scope == "global"
                else "compute.regionOperations.get",
            ),
        ]

    def read(self, ctx: Context, params: CapacityParams) -> JsonValue:
        return {"capacity": _scalers(get_service(ctx, params))}  # type: ignore[dict-item]

    def _set(self, ctx: Context, params: CapacityParams, wanted: dict[str, float], purpose: str) -> None:
        service = get_service(ctx, params)
        label = _label(ctx, params)
        matched = match_backends(service, list(wanted), label)
        targets = {relative(backend.group): wanted[ref] for ref, backend in matched.items()}
        changed = False
        for backend in service.backends:
            scaler = targets.get(relative(backend.group))
            if scaler is not None and round(backend.capacity_scaler, 6) != round(scaler, 6):
                backend.capacity_scaler, changed = scaler, True
        if not changed:
            return
        backends = list(service.backends)
        _patch(
            ctx,
            params,
            {"backends": backends, "fingerprint": service.fingerprint},
            purpose,
            f"capacity of {label}",
        )

    def apply(self, ctx: Context, params: CapacityParams) -> JsonValue:
        self._set(ctx, params, params.capacity, "capacity")
        return self.read(ctx, params)

    def verify(self, ctx: Context, params: CapacityParams) -> bool:
        service = get_service(ctx, params)
        found = match_backends(service, list(params.capacity), _label(ctx, params))
        return all(
            round(found[ref].capacity_scaler, 6) == round(scaler, 6)
            for ref, scaler in params.capacity.items()
        )

    def compensate(self, ctx: Context, params: CapacityParams, before: JsonValue) -> None:
        capacity = before.get("capacity") if isinstance(before, dict) else None
        if not isinstance(capacity, dict):
            raise ProviderError(f"{self.name}: the snapshot to restore is {before!r}, expected capacity")
        service = get_service(ctx, params)
        present = {relative(b.group) for b in service.backends}
        wanted = {
            group: float(s)
            for group, s in capacity.items()
            if group in present and isinstance(s, int | float)
        }
        self._set(ctx, params, wanted, "compensate")


class FailoverPolicyParams(ServiceParams):
    scope: Literal["regional"] = Field("regional", description="Always regional (in the site's region).")
    failover_ratio: float | None = Field(
        None, ge=0.0, le=1.0, description="Healthy ratio of primary backends below which traffic fails over."
    )
    drop_traffic_if_unhealthy: bool | None = Field(
        None, description="Drop traffic when every backend is unhealthy."
    )
    disable_connection_drain_on_failover: bool | None = Field(
        None, description="Cut connections at once on failover."
    )
    failover_groups: list[str] | None = Field(
        None,
        description="Instance groups to mark as failover backends; every other backend becomes a primary.",
    )


_POLICY = ("failover_ratio", "drop_traffic_if_unhealthy", "disable_connection_drain_on_failover")


def _exact(value: object) -> object:
    """Ratios travel as 32-bit floats: 0.2 comes back as 0.20000000298. Compare them rounded."""
    return round(value, 6) if isinstance(value, float) else value


def _policy_state(service: Any) -> dict[str, Any]:
    policy = service.failover_policy
    return {
        "policy": {field: _exact(getattr(policy, field)) for field in _POLICY},  # unset: 0.0, false
        "failover": {relative(b.group): bool(b.failover) for b in service.backends},
    }


class SetFailoverPolicy(Action[FailoverPolicyParams]):
    """Set a regional backend service's failover policy and which of its backends are failover backends."""

    name = "gcp.compute.set_failover_policy"
    cloud = "gcp"
    params_model = FailoverPolicyParams
    default_estimate_s = 30.0
    apply_verifies = True  # apply reads the service back and fails unless it is as verify wants it
    permission_names = (
        "compute.regionBackendServices.get",
        "compute.regionBackendServices.update",
        "compute.instanceGroups.use",
        "compute.regionOperations.get",
    )

    def describe(self, params: FailoverPolicyParams, where: Placement) -> str:
        parts = [f"{f} {getattr(params, f)}" for f in _POLICY if getattr(params, f) is not None]
        if params.failover_groups is not None:
            parts.append(f"failover backends {', '.join(params.failover_groups) or 'none'}")
        service = f"backend service {params.service} {where.phrase()}"
        return f"Set the failover policy of {service}: {'; '.join(parts)}"

    def permissions(self, params: FailoverPolicyParams, where: Placement) -> list[Permission]:
        resource = _resource(where, params)
        return [
            Permission("gcp", "compute.regionBackendServices.get", resource),
            Permission("gcp", "compute.regionBackendServices.update", resource),
            Permission("gcp", "compute.instanceGroups.use"),
            Permission("gcp", "compute.regionOperations.get"),
        ]

    def read(self, ctx: Context, params: FailoverPolicyParams) -> JsonValue:
        return _policy_state(get_service(ctx, params))

    def _wanted(self, ctx: Context, params: FailoverPolicyParams, service: Any) -> dict[str, Any]:
        now = _policy_state(service)
        policy = dict(now["policy"])
        policy.update({f: _exact(getattr(params, f)) for f in _POLICY if getattr(params, f) is not None})
        failover = dict(now["failover"])
        if params.failover_groups is not None:
            marked = {
                relative(b.group)
                for b in match_backends(service, params.failover_groups, _label(ctx, params)).values()
            }
            failover = {group: group in marked for group in failover}
        return {"policy": policy, "failover": failover}

    def _set(
        self, ctx: Context, params: FailoverPolicyParams, wanted: dict[str, JsonValue], purpose: str
    ) -> None:
        service = get_service(ctx, params)
        if _policy_state(service) == wanted:
            return
        failover = wanted["failover"]
        assert isinstance(failover, dict)
        backends = []
        for backend in service.backends:
            group = relative(backend.group)
            if group in failover:
                backend.failover = bool(failover[group])
            backends.append(backend)
        body = {"failover_policy": wanted["policy"], "backends": backends, "fingerprint": service.fingerprint}
        _patch(ctx, params, body, purpose, f"failover policy of {_label(ctx, params)}")
        now = _policy_state(get_service(ctx, params))
        if now != wanted:  # a field the patch could not set (or a change since): not put back
            raise ProviderError(
                f"failover policy of {_label(ctx, params)} in {project(ctx)}: expected {wanted}, found {now}"
            )

    def apply(self, ctx: Context, params: FailoverPolicyParams) -> JsonValue:
        self._set(ctx, params, self._wanted(ctx, params, get_service(ctx, params)), "failover-policy")
        return self.read(ctx, params)

    def verify(self, ctx: Context, params: FailoverPolicyParams) -> bool:
        service = get_service(ctx, params)
        return _policy_state(service) == self._wanted(ctx, params, service)

    def compensate(self, ctx: Context, params: FailoverPolicyParams, before: JsonValue) -> None:
        if (
            not isinstance(before, dict)
            or not isinstance(before.get("policy"), dict)
            or not isinstance(before.get("failover"), dict)
        ):
            raise ProviderError(
                f"{self.name}: the snapshot to restore is {before!r}, expected policy and failover"
            )
        self._set(ctx, params, before, "compensate")


class HealthParams(ServiceParams):
    groups: list[str] = Field(
        min_length=1, description="Instance groups (backends of the service) whose instances count."
    )
    min_healthy: int = Field(1, ge=1, description="Healthy instances needed, in these groups together.")


class BackendsHealthy(Check[HealthParams]):
    """Pass when a backend service's health checks see at least N healthy instances in the given groups."""

    name = "gcp.compute.backends_healthy"
    cloud = "gcp"
    params_model = HealthParams
    default_estimate_s = 2.0
    permission_names = ("compute.backendServices.get", "compute.regionBackendServices.get")

    def describe(self, params: HealthParams, where: Placement) -> str:
        return (
            f"Check that backend service {params.service} {phrase(where, params.scope)} sees at least "
            f"{params.min_healthy} healthy instances in {', '.join(params.groups)}"
        )

    def permissions(self, params: HealthParams, where: Placement) -> list[Permission]:
        return [Permission("gcp", _permission(params.scope, "get"), _resource(where, params))]

    def run(self, ctx: Context, params: HealthParams) -> CheckResult:
        service = get_service(ctx, params)
        label = _label(ctx, params)
        healthy: dict[str, int] = {}
        for ref, backend in match_backends(service, params.groups, label).items():
            with gcp_errors(ctx, label):
                health = compute(ctx, _kind(params.scope)).get_health(
                    request={
                        **_request(ctx, params),
                        "resource_group_reference_resource": {"group": backend.group},
                    },
                    **call_options(ctx),
                )
            healthy[ref] = sum(1 for h in health.health_status if h.health_state == "HEALTHY")
        total = sum(healthy.values())
        each = ", ".join(f"{group} {n}" for group, n in healthy.items())
        message = f"{total} healthy instances ({each}), need {params.min_healthy}"
        return CheckResult(total >= params.min_healthy, dict(healthy), message)
