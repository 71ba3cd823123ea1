"""Managed instance groups: capacity in the standby region, and whether it can be reached."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, JsonValue

from failover.durations import Duration, format_duration
from failover.errors import ProviderError, TransientProviderError
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
from failover.providers.gcp._client import (
    call_options,
    compute,
    gcp_errors,
    last,
    located,
    mutate,
    project,
    region,
    relative,
    where,
)

OPERATION_PERMISSIONS = ("compute.zoneOperations.get", "compute.regionOperations.get")

QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
STOCKOUT_CODES = frozenset({"ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"})
LOOK_EVERY_S = 10.0
"""While a group is not stable, its managed instances are listed at most this often."""


class GroupParams(Params):
    group: str = Field(description="Managed instance group name.")
    zone: str | None = Field(
        None, description="Its zone, for a zonal group; a regional group (in the site's region) if not given."
    )


def group_resource(where: Placement, params: GroupParams) -> str:
    scope = f"zones/{params.zone}" if params.zone else f"regions/{where.region or '*'}"
    return f"projects/{where.project or '*'}/{scope}/instanceGroupManagers/{params.group}"


def _managers(ctx: Context, params: GroupParams) -> tuple[Any, dict[str, str], str]:
    """The (zonal or regional) instance group managers client, request scope and path."""
    return located(ctx, params.zone, "InstanceGroupManagersClient", "RegionInstanceGroupManagersClient")


def describe_group(ctx: Context, params: GroupParams) -> Any:
    client, scope, path = _managers(ctx, params)
    with gcp_errors(ctx, f"instance group {path}/{params.group}"):
        return client.get(request={**scope, "instance_group_manager": params.group}, **call_options(ctx))


def autoscaler_at(ctx: Context, url: str) -> Any:
    """The autoscaler a managed instance group's ``status.autoscaler`` URL names."""
    path = relative(url).split("/")  # projects/P/(zones|regions)/L/autoscalers/NAME
    if len(path) != 6 or path[2] not in ("zones", "regions"):
        raise ProviderError(f"unexpected autoscaler URL {url!r}")
    kind = "AutoscalersClient" if path[2] == "zones" else "RegionAutoscalersClient"
    with gcp_errors(ctx, f"autoscaler {relative(url)}"):
        return compute(ctx, kind).get(
            request={"project": path[1], path[2][:-1]: path[3], "autoscaler": path[5]}, **call_options(ctx)
        )


@dataclass(frozen=True)
class _Blocked:
    """Instances of a group that could not be created for one reason: a stocked-out zone, or a
    quota metric of a region; how many, and Compute Engine's error."""

    code: str
    place: str  # "zone us-west1-a", "quota CPUS in region us-west1"
    count: int
    message: str

    def __str__(self) -> str:
        plural = "" if self.count == 1 else "s"
        joint = " in" if self.place.startswith("zone") else ","
        return f"{self.count} instance{plural}{joint} {self.place}: {self.code}: {self.message}"


def _place(code: str, error: Any, instance: str) -> str:
    """Where an error of a managed instance's last attempt is: the zone of a stockout (the
    instance's, or the one its message names), the quota metric and region of a quota."""
    zone = re.search(r"/zones/([^/']+)", instance) or re.search(r"zones/([^/']+)'", error.message)
    if code in STOCKOUT_CODES:
        return f"zone {zone[1]}" if zone else "a zone"
    details = [d.quota_info for d in error.error_details if d.quota_info.metric_name]
    named = re.search(r"Quota '([^']+)'", error.message)
    metric = named[1] if named else (details[0].metric_name.rsplit("/", 1)[-1].upper() if details else "?")
    at = re.search(r" in region ([a-z0-9-]+)", error.message)
    scope = (details[0].dimensions.get("region") if details else None) or (at[1] if at else None)
    if scope is None and zone:
        scope = zone[1].rsplit("-", 1)[0]
    return f"quota {metric} in region {scope}" if scope else f"quota {metric}"


def _creation_errors(ctx: Context, params: GroupParams) -> list[_Blocked]:
    """The instances of the group that Compute Engine is still trying to create and could not,
    for a zone stockout (``ZONE_RESOURCE_POOL_EXHAUSTED*``) or a quota (``QUOTA_EXCEEDED``), as
    their ``lastAttempt.errors`` say; grouped by error code and zone or quota."""
    client, scope, path = _managers(ctx, params)
    seen: Counter[tuple[str, str]] = Counter()
    messages: dict[tuple[str, str], str] = {}
    with gcp_errors(ctx, f"instance group {path}/{params.group}"):
        managed = client.list_managed_instances(
            request={**scope, "instance_group_manager": params.group}, **call_options(ctx)
        )
        for m in managed:
            if m.current_action == "NONE":
                continue
            for error in m.last_attempt.errors.errors:
                if error.code == QUOTA_EXCEEDED or error.code in STOCKOUT_CODES:
                    key = (error.code, _place(error.code, error, m.instance))
                    seen[key] += 1
                    messages.setdefault(key, error.message)
                    break  # one reason per instance
    return [_Blocked(code, place, n, messages[(code, place)]) for (code, place), n in sorted(seen.items())]


@dataclass
class _CreationWatch:
    """Looks, while a group is not stable, for instances that cannot be created (at most every
    ``LOOK_EVERY_S``), and fails once such errors persisted ``bound`` seconds: from the first look
    that found one, through every look after it (a look that finds none starts over)."""

    ctx: Context
    params: ResizeParams
    bound: float
    started: float
    looked: float | None = None
    first: float | None = None
    blocked: list[_Blocked] = field(default_factory=list)

    def look(self) -> None:
        now = self.ctx.clock()
        if self.looked is not None:
            due = self.looked + LOOK_EVERY_S
            if self.first is not None:
                due = min(due, self.first + self.bound)
            if now < due:
                return
        self.looked = now
        self.blocked = _creation_errors(self.ctx, self.params)
        if not self.blocked:
            self.first = None
            return
        if self.first is None:
            self.first = now
        if now - self.first >= self.bound:
            lasted = format_duration(now - self.first)
            raise ProviderError(
                f"{self._kind()}: {self._group()} cannot reach {self.params.size} instances: "
                f"instances could not be created for {lasted} ({self._since()}): {self._what()}"
            )

    def last(self) -> str:
        """What the last look found, if it found any: for the transient error that ends a wait
        before the bound (its timeout, a call that failed), so that it says what was seen."""
        if not self.blocked:
            return ""
        return f"the last look found instances that could not be created ({self._since()}): {self._what()}"

    def _kind(self) -> str:
        codes = {b.code for b in self.blocked}
        quota, stockout = QUOTA_EXCEEDED in codes, bool(codes & STOCKOUT_CODES)
        return " and ".join(k for k, on in (("quota exceeded", quota), ("zone stockout", stockout)) if on)

    def _group(self) -> str:
        scope = f"zones/{self.params.zone}" if self.params.zone else f"regions/{region(self.ctx)}"
        return f"instance group {scope}/{self.params.group} in {where(self.ctx)}"

    def _since(self) -> str:
        first = self.started if self.first is None else self.first
        return f"first seen {format_duration(first - self.started)} into the wait"

    def _what(self) -> str:
        return "; ".join(str(b) for b in self.blocked)


def resize_group(ctx: Context, params: GroupParams, size: int, purpose: str, clamp: bool = False) -> None:
    """Resize the group to ``size`` (if it is not there) and wait for the operation. An
    autoscaler that is on keeps the group between its limits: a size outside them is refused,
    or with ``clamp`` (a rollback, whose autoscaler step puts the limits and the size back
    after it) brought within them."""
    group = describe_group(ctx, params)
    size = _within_autoscaler(ctx, group, params, size, clamp)
    if group.target_size == size:
        return
    client, scope, path = _managers(ctx, params)
    mutate(
        ctx,
        client.resize_unary,
        {**scope, "instance_group_manager": params.group, "size": size},
        f"instance group {path}/{params.group}",
        f"resize of instance group {path}/{params.group} to {size}",
        *(purpose, path, params.group, str(size)),
    )


class ResizeParams(GroupParams):
    size: int = Field(ge=0, description="Target size (number of instances).")
    wait_timeout: Duration = Field(
        600.0, description="How long to wait for the group to be stable at that size."
    )
    creation_error_timeout: Duration = Field(
        60.0,
        description=(
            "How long instances may keep failing to be created (a zone stockout, a quota exceeded) "
            "before the step fails; at most wait_timeout."
        ),
    )


class ResizeInstanceGroup(Action[ResizeParams]):
    """Resize a zonal or regional managed instance group; wait until it is stable at that size."""

    name = "gcp.compute.resize_instance_group"
    cloud = "gcp"
    params_model = ResizeParams
    default_estimate_s = 240.0
    apply_verifies = True  # apply waits until the group is stable at the size, as verify checks
    permission_names = (
        "compute.instanceGroupManagers.get",
        "compute.instanceGroupManagers.update",
        "compute.autoscalers.get",
        *OPERATION_PERMISSIONS,
    )

    def describe(self, params: ResizeParams, where: Placement) -> str:
        zone = f" in zone {params.zone}" if params.zone else ""
        return f"Resize managed instance group {params.group}{zone} {where.phrase()} to {params.size}"

    def permissions(self, params: ResizeParams, where: Placement) -> list[Permission]:
        resource = group_resource(where, params)
        op = "compute.zoneOperations.get" if params.zone else "compute.regionOperations.get"
        return [
            Permission("gcp", "compute.instanceGroupManagers.get", resource),
            Permission("gcp", "compute.instanceGroupManagers.update", resource),
            Permission("gcp", "compute.autoscalers.get"),
            Permission("gcp", op),
        ]

    def read(self, ctx: Context, params: ResizeParams) -> JsonValue:
        return {"size": describe_group(ctx, params).target_size}

    def apply(self, ctx: Context, params: ResizeParams) -> JsonValue:
        resize_group(ctx, params, params.size, "resize")
        bound = min(params.creation_error_timeout, params.wait_timeout)
        watch = _CreationWatch(ctx, params, bound, started=ctx.clock())
        try:
            wait_until(
                ctx,
                f"instance group {params.group} stable at {params.size} instances",
                lambda: self._settled(ctx, params, watch),
                params.wait_timeout,
            )
        except TransientProviderError as exc:
            found = watch.last()
            if not found:
                raise
            raise TransientProviderError(f"{exc}; {found}") from exc
        return {"size": params.size}

    def _settled(self, ctx: Context, params: ResizeParams, watch: _CreationWatch) -> bool:
        """Whether the group is stable at the size; while it is not, whether instances that
        cannot be created (stockout, quota) have kept it so for too long (which raises)."""
        group = describe_group(ctx, params)
        if group.target_size == params.size and group.status.is_stable:
            return True
        watch.look()
        return False

    def verify(self, ctx: Context, params: ResizeParams) -> bool:
        group = describe_group(ctx, params)
        return bool(group.target_size == params.size and group.status.is_stable)

    def compensate(self, ctx: Context, params: ResizeParams, before: JsonValue) -> None:
        size = before.get("size") if isinstance(before, dict) else None
        if not isinstance(size, int):
            raise ProviderError(f"{self.name}: the snapshot to restore is {before!r}, expected size")
        resize_group(ctx, params, size, "compensate", clamp=True)


def _within_autoscaler(ctx: Context, group: Any, params: GroupParams, size: int, clamp: bool) -> int:
    """The size to ask for: ``size`` when no autoscaler that is on keeps the group outside it;
    otherwise the nearest size its limits allow (``clamp``), or an error that says why."""
    url = group.status.autoscaler
    if not url:
        return size
    policy = autoscaler_at(ctx, url).autoscaling_policy
    low, high = policy.min_num_replicas, policy.max_num_replicas
    if policy.mode == "OFF" or low <= size <= high:
        return size
    if clamp:
        return int(max(low, min(high, size)))
    raise ProviderError(
        f"instance group {params.group} is kept between {policy.min_num_replicas} and "
        f"{policy.max_num_replicas} instances by autoscaler {last(url)} (mode {policy.mode}), "
        f"so a resize to {size} would be undone: "
        "change its limits first with gcp.compute.set_autoscaler_limits"
    )


class CapacityParams(GroupParams):
    size: int = Field(ge=0, description="The size the failover will ask for.")
    respect_autoscaler: bool = Field(
        True,
        description="Fail when the group's autoscaler caps it below the size "
        "(false when the plan raises the limit first).",
    )


class InstanceGroupCapacity(Check[CapacityParams]):
    """Pass when a managed instance group can grow to a size: its region's quota and autoscaler allow it.

    The INSTANCES quota of the region must cover the instances to add, and an autoscaler that is
    on must allow the size (unless ``respect_autoscaler`` is false).
    """

    name = "gcp.compute.instance_group_capacity"
    cloud = "gcp"
    params_model = CapacityParams
    default_estimate_s = 1.0
    permission_names = ("compute.instanceGroupManagers.get", "compute.regions.get", "compute.autoscalers.get")

    def describe(self, params: CapacityParams, where: Placement) -> str:
        return (
            f"Check that instance group {params.group} {where.phrase()} can grow to {params.size} instances"
        )

    def permissions(self, params: CapacityParams, where: Placement) -> list[Permission]:
        return [
            Permission("gcp", "compute.instanceGroupManagers.get", group_resource(where, params)),
            Permission("gcp", "compute.regions.get"),
            Permission("gcp", "compute.autoscalers.get"),
        ]

    def run(self, ctx: Context, params: CapacityParams) -> CheckResult:
        group = describe_group(ctx, params)
        grow = max(0, params.size - group.target_size)
        at = params.zone.rsplit("-", 1)[0] if params.zone else region(ctx)
        with gcp_errors(ctx, f"region {at}"):
            found = compute(ctx, "RegionsClient").get(
                request={"project": project(ctx), "region": at}, **call_options(ctx)
            )
        quota = next((q for q in found.quotas if q.metric == "INSTANCES"), None)
        free = None if quota is None else int(quota.limit - quota.usage)
        observed: dict[str, JsonValue] = {"target_size": group.target_size, "instances_free": free}
        problems = []
        if free is not None and grow > free:
            problems.append(f"{grow} more instances needed, the INSTANCES quota of {at} has {free} left")
        if group.status.autoscaler:
            policy = autoscaler_at(ctx, group.status.autoscaler).autoscaling_policy
            observed["autoscaler_max"] = policy.max_num_replicas
            if params.respect_autoscaler and policy.mode != "OFF" and policy.max_num_replicas < params.size:
                problems.append(
                    f"autoscaler {last(group.status.autoscaler)} caps it at {policy.max_num_replicas}"
                )
        if problems:
            return CheckResult(False, observed, "; ".join(problems))
        return CheckResult(True, observed, f"at {group.target_size}, can grow to {params.size}")
