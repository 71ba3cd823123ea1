"""Compute Engine's rules, as the compute fake enforces them: its errors, names and request ids,
regional quotas and zone stockouts, what a backend service, a forwarding rule and an autoscaler
may hold, permission names, and the HTTP status an operation's error carries.

Each rule says where Compute Engine documents it. "The reference" is the Compute Engine API v1
reference (cloud.google.com/compute/docs/reference/rest/v1), whose field descriptions are those
of the discovery document in ``data/compute.v1.json``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

from failover.providers.gcp._client import relative

JsonDict = dict[str, Any]

DEFAULT_INSTANCES_QUOTA = 24
DEFAULT_MACHINE_TYPE = "e2-medium"
STOCKOUT = "ZONE_RESOURCE_POOL_EXHAUSTED"
NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")  # RFC 1035, as the reference's `name` says
ZONE = re.compile(r"[a-z]+-[a-z]+[0-9]+-[a-z]")
REGION = re.compile(r"[a-z]+-[a-z]+[0-9]+")
_METRIC = re.compile(r"[A-Z][A-Z0-9_]*")
_UUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_SHARED_CORE_CPUS = {"e2-micro": 2, "e2-small": 2, "e2-medium": 2, "f1-micro": 1, "g1-small": 1}
_CPUS_FAMILIES = ("e2", "n1", "f1", "g1")  # counted by the CPUS quota; others by <FAMILY>_CPUS


class ApiError(Exception):
    """An error answer: HTTP status, reason (``errors[].reason``) and message, in Compute
    Engine's shape; ``rpc_status`` gives Resource Manager v3's shape instead (``status``, no
    ``errors[]``), as that API answers."""

    def __init__(self, status: int, reason: str, message: str, rpc_status: str | None = None) -> None:
        super().__init__(message)
        self.status, self.reason, self.message, self.rpc_status = status, reason, message, rpc_status

    def body(self) -> JsonDict:
        if self.rpc_status is not None:
            return {"error": {"code": self.status, "message": self.message, "status": self.rpc_status}}
        return {
            "error": {
                "code": self.status,
                "message": self.message,
                "errors": [{"message": self.message, "domain": "global", "reason": self.reason}],
            }
        }


def invalid(field_name: str, value: object, expected: str) -> ApiError:
    """Compute Engine's own refusal of a value: 400 ``invalid``, naming the field."""
    return ApiError(400, "invalid", f"Invalid value for field '{field_name}': '{value}'. {expected}")


def not_found(path: str) -> ApiError:
    return ApiError(404, "notFound", f"The resource '{path}' was not found")


def check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise invalid("resource.name", name, f"Must be a match of regex '{NAME.pattern}' ({what})")
    return name


def check_request_id(rid: str) -> None:
    """The reference (``requestId``): "must be a valid UUID with the exception that zero UUID
    is not supported"."""
    if not _UUID.fullmatch(rid) or set(rid) <= {"0", "-"}:
        raise invalid("requestId", rid, "Must be a valid UUID other than the zero UUID")


# -- operations ---------------------------------------------------------------------------------

_OPERATION_HTTP = {  # an operation's error code -> httpErrorStatusCode and httpErrorMessage
    "QUOTA_EXCEEDED": (403, "FORBIDDEN"),  # as the quotaExceeded (403) HTTP error
    "ZONE_RESOURCE_POOL_EXHAUSTED": (503, "SERVICE UNAVAILABLE"),  # a stockout: try again later
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS": (503, "SERVICE UNAVAILABLE"),
    "CONDITION_NOT_MET": (412, "PRECONDITION FAILED"),
    "RESOURCE_NOT_FOUND": (404, "NOT FOUND"),
    "NOT_FOUND": (404, "NOT FOUND"),
    "RESOURCE_OPERATION_RATE_EXCEEDED": (403, "FORBIDDEN"),
    "INTERNAL_ERROR": (500, "INTERNAL SERVER ERROR"),
    "SERVICE_UNAVAILABLE": (503, "SERVICE UNAVAILABLE"),
}


def operation_http_status(code: str) -> tuple[int, str]:
    """The HTTP status a failed operation reports with its error code (``Operation``'s
    ``httpErrorStatusCode``/``httpErrorMessage``): not all 400. A quota is 403 FORBIDDEN, like
    the quotaExceeded error a request gets; a zone stockout is 503 SERVICE UNAVAILABLE, as
    Compute Engine's operations report ZONE_RESOURCE_POOL_EXHAUSTED(_WITH_DETAILS); anything
    else the fake fails an operation with is a 400 BAD REQUEST."""
    return _OPERATION_HTTP.get(code, (400, "BAD REQUEST"))


# -- quotas and stockouts -----------------------------------------------------------------------


def cpus(machine_type: str) -> int:
    """The vCPUs of a machine type, from its name: ``n2-standard-4`` 4, ``n2-custom-6-23040`` 6,
    ``e2-medium`` 2 (shared core)."""
    name = machine_type.rsplit("/", 1)[-1]
    if name in _SHARED_CORE_CPUS:
        return _SHARED_CORE_CPUS[name]
    parts = name.split("-")
    at = parts.index("custom") + 1 if "custom" in parts else 0
    if at and at < len(parts) and parts[at].isdigit():
        return int(parts[at])
    return int(parts[-1]) if parts[-1].isdigit() else 1


def cpu_metric(machine_type: str) -> str:
    """The regional quota metric a machine type's vCPUs count against: CPUS, N2_CPUS..."""
    family = machine_type.rsplit("/", 1)[-1].split("-")[0]
    return "CPUS" if family in _CPUS_FAMILIES else f"{family.upper()}_CPUS"


def quota_error(metric: str, limit: float, region: str) -> JsonDict:
    """A QUOTA_EXCEEDED entry of ``errors[]``, with its ``quotaInfo`` as Compute Engine gives it."""
    return {
        "code": "QUOTA_EXCEEDED",
        "message": f"Quota '{metric}' exceeded.  Limit: {limit} in region {region}.",
        "errorDetails": [
            {
                "quotaInfo": {
                    "metricName": f"compute.googleapis.com/{metric.lower()}",
                    "limitName": f"{metric.replace('_CPUS', '-CPUS')}-per-project-region",
                    "dimensions": {"region": region},
                    "limit": limit,
                }
            }
        ],
    }


def stockout_error(code: str, project: str, zone: str) -> JsonDict:
    tail = (
        "'(resource type:compute)'."
        if code.endswith("_WITH_DETAILS")
        else "Try a different zone, or try again later."
    )
    message = (
        f"The zone 'projects/{project}/zones/{zone}' does not have enough resources available "
        f"to fulfill the request.  {tail}"
    )
    return {"code": code, "message": message}


class Capacity:
    """Regions (status and INSTANCES quota), regional quota limits and zone stockouts, per
    project and region as Compute Engine's regional quotas are. The fake says which instances a
    region holds (``_region_instances``)."""

    def __init__(self) -> None:
        if not hasattr(self, "_lock"):
            self._lock = threading.RLock()
        self._regions: dict[tuple[str, str], JsonDict] = {}
        self._stockouts: dict[str, str] = {}  # zone -> error code
        self._quotas: dict[tuple[str | None, str | None, str], float] = {}  # (project, region, metric)

    def _region_instances(self, project: str, region: str) -> list[JsonDict]:
        raise NotImplementedError

    def stockout(self, zone: str, active: bool = True, *, details: bool = False) -> None:
        """A zone out of resources (``us-west1-a``, in every project): no instance can be created
        or started there until ``stockout(zone, False)``. The error is
        ``ZONE_RESOURCE_POOL_EXHAUSTED``, or ``..._WITH_DETAILS`` with ``details``."""
        if not ZONE.fullmatch(zone):
            raise ValueError(f"a stockout needs a zone like us-west1-a, not {zone!r}")
        with self._lock:
            if active:
                self._stockouts[zone] = f"{STOCKOUT}_WITH_DETAILS" if details else STOCKOUT
            else:
                self._stockouts.pop(zone, None)

    def quota(
        self, metric: str, limit: float | None, *, project: str | None = None, region: str | None = None
    ) -> None:
        """The limit of a regional quota metric (``CPUS``, ``N2_CPUS``, ``INSTANCES``...) in
        ``project`` and ``region`` (every one when not given; the most specific limit applies);
        ``None`` removes it. An ``INSTANCES`` limit given here overrides the region's
        ``instances_quota``."""
        if not _METRIC.fullmatch(metric):
            raise ValueError(f"a quota needs a quota metric like CPUS or N2_CPUS, not {metric!r}")
        if limit is not None and (isinstance(limit, bool) or limit < 0):
            raise ValueError(f"a quota needs a non-negative limit, not {limit!r}")
        with self._lock:
            if limit is None:
                self._quotas.pop((project, region, metric), None)
            else:
                self._quotas[(project, region, metric)] = float(limit)

    def set_region(
        self, project: str, region: str, *, status: str | None = None, instances_quota: int | None = None
    ) -> None:
        """A region's status (UP or DOWN) and INSTANCES quota limit."""
        with self._lock:
            found = self._region(project, region)
            if status is not None:
                found["status"] = status
            if instances_quota is not None:
                found["quota"] = instances_quota

    def _zone_region(self, project: str, zone: str) -> str:
        region = zone.rsplit("-", 1)[0]
        if not re.fullmatch(r"[a-z]", zone.rsplit("-", 1)[-1]):
            raise not_found(f"projects/{project}/zones/{zone}")
        self._region(project, region)
        return region

    def _location(self, project: str, loc: str) -> str:
        """The region of ``zones/Z`` or ``regions/R``, after checking it exists."""
        kind, name = loc.split("/")
        if kind == "zones":
            return self._zone_region(project, name)
        self._region(project, name)
        return name

    def _region(self, project: str, region: str) -> JsonDict:
        if not REGION.fullmatch(region):
            raise not_found(f"projects/{project}/regions/{region}")
        return self._regions.setdefault((project, region), {"status": "UP", "quota": DEFAULT_INSTANCES_QUOTA})

    def _limit(self, project: str, region: str, metric: str) -> float | None:
        """A quota metric's limit in a project's region (``INSTANCES``: the region's own unless
        overridden), or None when there is none."""
        for key in ((project, region), (project, None), (None, region), (None, None)):
            found = self._quotas.get((*key, metric))
            if found is not None:
                return found
        if metric == "INSTANCES":
            return float(self._region(project, region)["quota"])
        return None

    def _usage(self, project: str, region: str, metric: str) -> float:
        """``INSTANCES`` counts every instance; a CPU metric the vCPUs of its family's instances
        that are not TERMINATED."""
        instances = self._region_instances(project, region)
        if metric == "INSTANCES":
            return float(len(instances))
        return float(
            sum(
                cpus(i["machineType"])
                for i in instances
                if i["status"] != "TERMINATED" and cpu_metric(i["machineType"]) == metric
            )
        )

    def _quotas_of(self, project: str, region: str) -> list[JsonDict]:
        """``regions.get``'s ``quotas``: INSTANCES and each metric given a limit, with its usage."""
        metrics = {m for p, r, m in self._quotas if p in (None, project) and r in (None, region)}
        return [
            {"metric": m, "limit": self._limit(project, region, m), "usage": self._usage(project, region, m)}
            for m in sorted({"INSTANCES", *metrics})
        ]

    def _region_body(self, project: str, name: str, url: Callable[[str], str]) -> JsonDict:
        """``regions.get``'s answer: its status, zones a, b and c, and its quotas."""
        return {
            "kind": "compute#region",
            "name": name,
            "status": self._region(project, name)["status"],
            "zones": [url(f"projects/{project}/zones/{name}-{z}") for z in "abc"],
            "quotas": self._quotas_of(project, name),
            "selfLink": url(f"projects/{project}/regions/{name}"),
        }

    def _cannot_run(self, project: str, zone: str, machine_type: str, new: bool) -> JsonDict | None:
        """Why an instance of ``machine_type`` cannot be created (``new``) or started in ``zone``
        now, as an ``errors[]`` entry of Compute Engine; None when it can."""
        region = zone.rsplit("-", 1)[0]
        wants = {cpu_metric(machine_type): cpus(machine_type)}
        if new:
            wants["INSTANCES"] = 1
        for metric, more in sorted(wants.items()):
            limit = self._limit(project, region, metric)
            if limit is not None and self._usage(project, region, metric) + more > limit:
                return quota_error(metric, limit, region)
        code = self._stockouts.get(zone)
        return None if code is None else stockout_error(code, project, zone)


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
