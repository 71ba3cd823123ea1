"""Compute Engine's rules for the resources the compute fake keeps, as it enforces them: what a
backend service may hold and the fingerprint that guards its changes, the targets a forwarding
rule takes, an autoscaling policy's limits, and permission names. Each refusal has Compute
Engine's shape (``compute_errors``).

Each rule says where Compute Engine documents it. "The reference" is the Compute Engine API v1
reference (cloud.google.com/compute/docs/reference/rest/v1), whose field descriptions are those
of the discovery document in ``data/compute.v1.json``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from failover.providers.gcp._client import relative
from failover.sandbox.compute_errors import ApiError, JsonDict, invalid, not_found

# -- backend services ---------------------------------------------------------------------------


def default_scheme(loc: str) -> str:
    """The loadBalancingScheme of a backend service inserted without one (the fake's choice: a
    global one serves an Application Load Balancer, a regional one is an internal passthrough
    Network Load Balancer's, as the regional resource's first use was)."""
    return "EXTERNAL_MANAGED" if loc == "global" else "INTERNAL"


def passthrough(loc: str, scheme: str) -> bool:
    """A regional internal or external passthrough Network Load Balancer's backend service: the
    only ones with failover backends and a failoverPolicy (the reference, ``Backend.failover``:
    "can only be used for a regional external Passthrough Network Load Balancer or a regional
    internal Passthrough Network Load Balancer"; ``failoverPolicy`` likewise)."""
    return loc != "global" and scheme in ("INTERNAL", "EXTERNAL")


def _group_region(url: str) -> str | None:
    """The region of an instance group URL (``.../regions/R/...`` or ``.../zones/R-x/...``)."""
    parts = relative(url).split("/")
    if len(parts) < 4 or parts[2] not in ("zones", "regions"):
        return None
    return parts[3] if parts[2] == "regions" else parts[3].rsplit("-", 1)[0]


def check_backend_service(loc: str, service: JsonDict, exists: Callable[[str], bool]) -> None:
    """What Compute Engine refuses in a backend service (as inserted, or as a patch leaves it),
    400 ``invalid`` naming the field. ``exists``: whether an instance group (its path) exists."""
    scheme = str(service.get("loadBalancingScheme") or default_scheme(loc))
    backends = service.get("backends") or []
    scaled = scheme != "INTERNAL"
    for i, backend in enumerate(backends):
        at = f"resource.backends[{i}]"
        group = str(backend.get("group", ""))
        if "/instanceGroups/" not in group or not exists(relative(group)):
            raise invalid(f"{at}.group", backend.get("group"), "Must be an existing instance group")
        # the load balancing docs (backend services overview): a regional backend service's
        # backends are in its region (the message is the fake's wording)
        if loc != "global" and _group_region(group) != loc.split("/")[1]:
            raise invalid(
                f"{at}.group", group, f"Instance group must be in the region of the backend service, {loc}"
            )
        scaler = backend.get("capacityScaler")
        if not scaled and scaler is not None:
            # Compute Engine's answer to a capacityScaler, even 1.0, on an INTERNAL service:
            # "Capacity scaler must not be set for an INTERNAL backend service." (400 invalid);
            # the reference's older text: "Not supported by: Internal TCP/UDP Load Balancing"
            raise invalid(
                f"{at}.capacityScaler",
                scaler,
                "Capacity scaler must not be set for an INTERNAL backend service.",
            )
        # the reference: "The valid ranges are 0.0 and [0.1,1.0]"
        if scaler is not None and not (scaler == 0 or 0.1 <= scaler <= 1.0):
            raise invalid(f"{at}.capacityScaler", scaler, "Must be 0 or between 0.1 and 1.0")
        mode = backend.get("balancingMode")
        if passthrough(loc, scheme) and mode not in (None, "CONNECTION"):
            # load balancing docs, "Balancing mode": passthrough Network Load Balancers' backends
            # use CONNECTION (no UTILIZATION or RATE)
            raise invalid(
                f"{at}.balancingMode",
                mode,
                f"Balancing mode must be CONNECTION for an {scheme} backend service.",
            )
        if backend.get("failover") and not passthrough(loc, scheme):
            raise invalid(
                f"{at}.failover",
                True,
                "Failover backends are only for regional passthrough Network Load Balancers.",
            )
    # the reference: "You cannot configure a setting of 0 when there is only one backend attached
    # to the backend service"; Google's Terraform provider documents it as "The total
    # capacity_scaler for all backends must be non-zero"
    # (400 invalid, as the reference's other capacityScaler limits; the message is the fake's)
    if scaled and backends and all(b.get("capacityScaler", 1.0) == 0 for b in backends):
        raise invalid("resource.backends", "", "At least one backend must have a non-zero capacity scaler.")
    if service.get("failoverPolicy") is not None and not passthrough(loc, scheme):
        raise invalid(
            "resource.failoverPolicy",
            service["failoverPolicy"],
            "A failover policy is only for regional passthrough Network Load Balancers.",
        )
    ratio = (service.get("failoverPolicy") or {}).get("failoverRatio") or 0.0
    if not 0 <= ratio <= 1:  # the reference: "The value of the field must be in the range[0, 1]"
        raise invalid("resource.failoverPolicy.failoverRatio", ratio, "Must be between 0 and 1")


def check_fingerprint(given: object, current: str) -> None:
    """The reference (``BackendService.fingerprint``): "An up-to-date fingerprint must be
    provided in order to update the BackendService, otherwise the request will fail with error
    412 conditionNotMet"; missing or stale, it is 412."""
    if given is None:
        raise ApiError(
            412,
            "conditionNotMet",
            "An up-to-date fingerprint must be provided to update the backend service.",
        )
    if given != current:
        raise ApiError(
            412, "conditionNotMet", "Supplied fingerprint does not match current resource fingerprint."
        )


# -- forwarding rules ---------------------------------------------------------------------------

_GLOBAL_TARGETS = (
    "targetHttpProxies",
    "targetHttpsProxies",
    "targetTcpProxies",
    "targetSslProxies",
    "targetGrpcProxies",
)
_REGIONAL_TARGETS = ("targetPools", "targetVpnGateways", "targetHttpProxies", "targetHttpsProxies",
                     "targetTcpProxies", "serviceAttachments")  # fmt: skip


def target_kind(path: str) -> str:
    """``targetPools``, ``targetHttpProxies``...: the collection of a target's path."""
    parts = path.split("/")
    return parts[-2] if len(parts) >= 2 else ""


def check_target(
    project: str, loc: str, target: object, exists: Callable[[str], bool], old: str | None
) -> str:
    """A forwarding rule's target (insert, or setTarget from ``old``), as a path.

    The reference (``ForwardingRule.target``): "For regional forwarding rules, this target must
    be in the same region as the forwarding rule. For global forwarding rules, this target must
    be a global load balancing resource", of a kind the rule's product takes (a global rule: a
    global target proxy; a regional one: a target pool, a target instance of a zone of its
    region, a regional target proxy, a VPN gateway or a service attachment); ``setTarget``:
    "The new target should be of the same type as the old target". A target of a wrong form,
    kind or place is 400 ``invalid``; one that does not exist is 404 ``notFound``, as for every
    resource a request names."""
    path = relative(str(target))
    parts = path.split("/")
    kind = target_kind(path)
    if loc == "global":
        ok = parts[2:3] == ["global"] and kind in _GLOBAL_TARGETS
    elif kind == "targetInstances":
        ok = parts[2:3] == ["zones"] and parts[3].rsplit("-", 1)[0] == loc.split("/")[1]
    else:
        ok = parts[2:4] == loc.split("/") and kind in _REGIONAL_TARGETS
    if len(parts) != (5 if parts[2:3] == ["global"] else 6) or parts[0] != "projects" or not ok:
        raise invalid(
            "resource.target",
            target,
            f"Must be a target resource URL in {loc} of a kind a forwarding rule there takes",
        )
    if old is not None and target_kind(relative(old)) != kind:
        raise invalid(
            "resource.target",
            target,
            f"The new target must be of the same type as the old target ({target_kind(relative(old))})",
        )
    if not exists(path):
        raise not_found(path)
    return path


# -- autoscalers and permissions ----------------------------------------------------------------


def check_policy(policy: object) -> None:
    """An autoscaling policy's limits: the reference, ``maxNumReplicas`` "must not be lower than
    minimal number of replicas", ``minNumReplicas`` "cannot be less than 0"; and at most 1000,
    the size of a zonal managed instance group."""
    if not isinstance(policy, dict):
        raise invalid("resource.autoscalingPolicy", policy, "Must be an object")
    lo, hi = policy.get("minNumReplicas", 0), policy.get("maxNumReplicas")
    if not isinstance(hi, int) or hi < 0 or hi > 1000:
        raise invalid("resource.autoscalingPolicy.maxNumReplicas", hi, "Must be between 0 and 1000")
    if not isinstance(lo, int) or lo < 0 or lo > hi:
        raise invalid(
            "resource.autoscalingPolicy.minNumReplicas", lo, f"Must be between 0 and maxNumReplicas ({hi})"
        )


_PERMISSION = re.compile(r"[a-z][a-zA-Z0-9]*\.[a-zA-Z][a-zA-Z0-9]*\.[a-zA-Z][a-zA-Z0-9]*")


def check_permissions(asked: object) -> list[str]:
    """Resource Manager's ``projects.testIamPermissions``: at most 100 permissions, each named
    SERVICE.RESOURCE.VERB (IAM's permission names); the discovery document: "Permissions with
    wildcards (such as `*` or `storage.*`) are not allowed". Anything else is 400
    INVALID_ARGUMENT, in that API's shape (IAM's message for a permission it does not take)."""
    if not isinstance(asked, list) or len(asked) > 100:
        size = len(asked) if isinstance(asked, list) else asked
        raise ApiError(
            400, "badRequest", f"At most 100 permissions can be tested, got {size}", "INVALID_ARGUMENT"
        )
    for permission in asked:
        if not isinstance(permission, str) or not _PERMISSION.fullmatch(permission):
            raise ApiError(
                400,
                "badRequest",
                f"Permission {permission} is not valid for this resource.",
                "INVALID_ARGUMENT",
            )
    return list(asked)
