"""GCP: what a least-privilege role must hold for a limits rollback; instances a zone stockout or a
quota keeps from being created, as the compute fake reports them and as a resize's wait sees them
(failing once they persist for a bounded time, not when they clear); a drill that rehearses it."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from failover.engine import Options, execute
from failover.errors import ProviderError, TransientProviderError
from failover.planner import make_plan
from failover.policy import gcp_role
from failover.providers.base import Context, Placement
from failover.providers.gcp import autoscalers, instance_groups
from failover.providers.gcp._client import compute
from failover.runbook import load_runbook
from failover.sandbox import Sandbox
from failover.sandbox.compute_fake import ComputeFake
from failover.sandbox.gcp import Builder
from failover.sandbox.spec import GcpSandbox
from tests.executor_helpers import FakeTime
from tests.gcp_helpers import PLACES, calls, context, fake, state
from tests.test_sandbox_gcp import GCP_REGIONAL, START

__all__ = ["fake"]  # the fixture

RESIZE = instance_groups.ResizeInstanceGroup()
LIMITS = autoscalers.SetAutoscalerLimits()
WEST = Placement("west", "gcp", "us-west1", "shop-prod")
ILB_B = "projects/shop-prod/zones/us-west1-b/instanceGroupManagers/ilb-b"


# -- what each request needs ---------------------------------------------------------------

_NEEDS = [  # (method, path pattern, permission): Compute Engine's documented permission per method
    ("GET", r"/autoscalers/[^/]+$", "compute.autoscalers.get"),
    ("PATCH", r"/autoscalers$", "compute.autoscalers.update"),
    ("GET", r"/instanceGroupManagers/[^/]+$", "compute.instanceGroupManagers.get"),
    ("POST", r"/instanceGroupManagers/[^/]+/listManagedInstances$", "compute.instanceGroupManagers.get"),
    ("POST", r"/instanceGroupManagers/[^/]+/resize$", "compute.instanceGroupManagers.update"),
    ("*", r"/zones/[^/]+/operations/", "compute.zoneOperations.get"),
    ("*", r"/regions/[^/]+/operations/", "compute.regionOperations.get"),
    ("*", r"/global/operations/", "compute.globalOperations.get"),
    ("GET", r"/regions/[^/]+$", "compute.regions.get"),
]


def _needed(request: dict[str, Any]) -> str:
    for method, pattern, permission in _NEEDS:
        if method in ("*", request["method"]) and re.search(pattern, request["path"]):
            return permission
    raise AssertionError(f"no permission known for {request['method']} {request['path']}")


def _needs(fake: ComputeFake) -> set[str]:
    return {_needed(r) for r in fake.requests}


# -- 1. the permissions of set_autoscaler_limits --------------------------------------------


def test_a_limits_rollback_that_resizes_the_group_needs_only_what_the_step_declares(
    fake: ComputeFake,
) -> None:
    ctx = context(fake)
    params = LIMITS.parse({"autoscaler": "web-usw1", "min_replicas": 3, "max_replicas": 10})
    before = LIMITS.read(ctx, params)
    LIMITS.apply(ctx, params)  # the higher minimum grows the group to 3
    fake.requests.clear()
    LIMITS.compensate(ctx, params, before)  # limits back to 1..2, then the group back to 1
    assert calls(fake, "POST", "/regions/us-west1/instanceGroupManagers/web-usw1/resize")
    needed = _needs(fake)
    declared = {p.action for p in LIMITS.permissions(params, WEST)}
    assert needed <= declared, f"undeclared: {sorted(needed - declared)}"
    assert state(fake)["gcp group web-usw1"] == 1
    assert declared <= set(LIMITS.permission_names)


def test_a_limits_only_runbook_role_holds_the_resize_its_rollback_sends(tmp_path: Path) -> None:
    path = tmp_path / "limits.yaml"
    path.write_text(
        """\
version: 1
name: limits-only
sites:
  east: {gcp: {project: shop-prod, region: us-east4}}
  west: {gcp: {project: shop-prod, region: us-west1}}
services:
  web:
    steps:
      - {id: limits, action: gcp.compute.set_autoscaler_limits, site: "${to}",
         with: {autoscaler: web-usw1, min_replicas: 3, max_replicas: 10}}
""",
        encoding="utf-8",
    )
    role = gcp_role(make_plan(load_runbook(path), from_="east", to="west"))
    assert role["includedPermissions"] == [
        "compute.autoscalers.get",
        "compute.autoscalers.update",
        "compute.instanceGroupManagers.get",
        "compute.instanceGroupManagers.update",  # the compensation resizes the group
        "compute.regionOperations.get",
    ]


# -- 3. the fake: stockouts and quotas --------------------------------------------------------


def _managed(ctx: Context, zone: str, group: str) -> list[Any]:
    client = compute(ctx, "InstanceGroupManagersClient")
    return list(
        client.list_managed_instances(
            request={"project": "shop-prod", "zone": zone, "instance_group_manager": group}
        )
    )


def test_the_fake_leaves_instances_a_stockout_or_quota_stops_creating_as_compute_reports_them(
    fake: ComputeFake,
) -> None:
    ctx = context(fake)
    fake.stockout("us-west1-b")
    # the resize is accepted and its operation succeeds: creating the instances fails later
    instance_groups.resize_group(
        ctx, RESIZE.parse({"group": "ilb-b", "zone": "us-west1-b", "size": 3}), 3, "t"
    )
    group = compute(ctx, "InstanceGroupManagersClient").get(
        request={"project": "shop-prod", "zone": "us-west1-b", "instance_group_manager": "ilb-b"}
    )
    assert (group.target_size, group.status.is_stable, group.current_actions.creating) == (3, False, 2)
    managed = _managed(ctx, "us-west1-b", "ilb-b")
    creating = [m for m in managed if m.current_action == "CREATING"]
    assert len(managed) == 3 and len(creating) == 2
    for m in creating:
        assert "/zones/us-west1-b/instances/ilb-b-" in m.instance and not m.instance_status
        (error,) = m.last_attempt.errors.errors
        assert error.code == "ZONE_RESOURCE_POOL_EXHAUSTED"
        assert error.message.startswith(
            "The zone 'projects/shop-prod/zones/us-west1-b' does not have enough resources available"
        )
    # Compute retries: once the zone has room again, the instances are created
    fake.stockout("us-west1-b", False)
    assert all(m.current_action == "NONE" for m in _managed(ctx, "us-west1-b", "ilb-b"))
    assert state(fake)["gcp group ilb-b"] == 3

    # a quota on the region's CPUs: e2-medium has 2; 3 + 1 instances run in us-west1 (8 CPUs)
    fake.quota("CPUS", 10, region="us-west1")
    instance_groups.resize_group(
        ctx, RESIZE.parse({"group": "ilb-b", "zone": "us-west1-b", "size": 5}), 5, "u"
    )
    creating = [m for m in _managed(ctx, "us-west1-b", "ilb-b") if m.current_action == "CREATING"]
    assert len(creating) == 1
    (error,) = creating[0].last_attempt.errors.errors
    assert error.code == "QUOTA_EXCEEDED"
    assert error.message == "Quota 'CPUS' exceeded.  Limit: 10.0 in region us-west1."
    info = error.error_details[0].quota_info
    assert (info.metric_name, info.limit_name, info.limit) == (
        "compute.googleapis.com/cpus",
        "CPUS-per-project-region",
        10.0,
    )
    assert dict(info.dimensions) == {"region": "us-west1"}
    quotas = {
        q.metric: (q.limit, q.usage)
        for q in compute(ctx, "RegionsClient")
        .get(request={"project": "shop-prod", "region": "us-west1"})
        .quotas
    }
    assert quotas["CPUS"] == (10.0, 10.0) and quotas["INSTANCES"] == (12.0, 6.0)

    # a per-family quota counts that family's CPUs only (n2-standard-4: 4 CPUs)
    fake.quota("CPUS", None, region="us-west1")
    assert state(fake)["gcp group ilb-b"] == 5
    assert all(m.current_action == "NONE" for m in _managed(ctx, "us-west1-b", "ilb-b"))
    fake.set_machine_type(ILB_B, "n2-standard-4")
    fake.quota("N2_CPUS", 4)  # in every region of every project
    instance_groups.resize_group(
        ctx, RESIZE.parse({"group": "ilb-b", "zone": "us-west1-b", "size": 7}), 7, "v"
    )
    creating = [m for m in _managed(ctx, "us-west1-b", "ilb-b") if m.current_action == "CREATING"]
    assert [m.last_attempt.errors.errors[0].message for m in creating] == [
        "Quota 'N2_CPUS' exceeded.  Limit: 4.0 in region us-west1."
    ]
    # nothing else changed: without faults, every instance is created at once
    fake.quota("N2_CPUS", None)
    assert state(fake)["gcp group ilb-b"] == 7
    assert all(m.current_action == "NONE" for m in _managed(ctx, "us-west1-b", "ilb-b"))


def test_a_stockout_or_cpu_quota_fails_an_instance_start_as_compute_does(fake: ComputeFake) -> None:
    from failover.providers.gcp import instances

    start = instances.StartInstances()
    params = start.parse({"zone": "us-west1-a", "instances": ["scheduler-usw1"]})
    fake.stockout("us-west1-a", details=True)
    with pytest.raises(ProviderError, match=r"ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS: The zone"):
        start.apply(context(fake), params)
    fake.stockout("us-west1-a", False)
    fake.quota("CPUS", 4, project="shop-prod", region="us-west1")  # 2 instances of 2 CPUs run
    with pytest.raises(ProviderError, match=r"QUOTA_EXCEEDED: Quota 'CPUS' exceeded"):
        start.apply(context(fake, step="svc.again"), params)
    fake.quota("CPUS", 6, project="shop-prod", region="us-west1")
    start.apply(context(fake, step="svc.third"), params)
    assert state(fake)["gcp instance us-west1-a/scheduler-usw1"] == "RUNNING"


def test_faults_are_checked_when_declared(fake: ComputeFake) -> None:
    with pytest.raises(ValueError, match="a zone like us-west1-a"):
        fake.stockout("us-west1")
    with pytest.raises(ValueError, match="a quota metric like CPUS"):
        fake.quota("cpus", 4)
    with pytest.raises(ValueError, match="a non-negative limit"):
        fake.quota("CPUS", -1)


# -- 2. the resize's wait ---------------------------------------------------------------------


def _timed(
    fake: ComputeFake, at: dict[float, Callable[[], None]] | None = None, **kw: Any
) -> tuple[Context, list[float]]:
    """A context whose clock moves only when it sleeps; ``at``: what happens once the clock
    reaches a time."""
    now = [0.0]
    todo = dict(sorted((at or {}).items()))

    def sleep(seconds: float) -> None:
        now[0] += seconds
        for when in [w for w in todo if w <= now[0]]:
            todo.pop(when)()

    return dataclasses.replace(context(fake, **kw), sleep=sleep, clock=lambda: now[0]), now


_FOR = r"instances could not be created for (?P<for>\S+) \(first seen (?P<first>\S+) into the wait\)"


def test_a_zone_stockout_that_persists_fails_the_resize_after_the_bound_not_the_wait_timeout(
    fake: ComputeFake,
) -> None:
    fake.stockout("us-west1-b")
    ctx, now = _timed(fake)
    params = RESIZE.parse({"group": "ilb-b", "zone": "us-west1-b", "size": 3})
    with pytest.raises(ProviderError) as raised:
        RESIZE.apply(ctx, params)
    assert not isinstance(raised.value, TransientProviderError)  # fatal: not tried again
    assert 60.0 <= now[0] <= 65.0  # the default bound, 1m, far below wait_timeout (10m)
    assert re.fullmatch(
        "zone stockout: instance group zones/us-west1-b/ilb-b in shop-prod/us-west1 \\(west\\) cannot "
        f"reach 3 instances: {_FOR}: "
        "2 instances in zone us-west1-b: ZONE_RESOURCE_POOL_EXHAUSTED: The zone "
        "'projects/shop-prod/zones/us-west1-b' does not have enough resources available to fulfill "
        "the request\\.  Try a different zone, or try again later\\.",
        str(raised.value),
    ), raised.value
    seen = re.search(_FOR, str(raised.value))
    assert seen and seen["first"] == "0s" and seen["for"].startswith("1m")
    # modest: the group is read at every poll, its managed instances every 10 s at most
    listed = calls(fake, "POST", "/instanceGroupManagers/ilb-b/listManagedInstances")
    assert 6 <= len(listed) <= 8
    assert len(calls(fake, "GET", "/instanceGroupManagers/ilb-b")) > 3 * len(listed)
    # what the wait asked for, the step declares
    assert _needs(fake) <= {p.action for p in RESIZE.permissions(params, WEST)}


def test_a_regional_group_names_the_stocked_out_zone_and_counts_its_instances(fake: ComputeFake) -> None:
    LIMITS.apply(context(fake), LIMITS.parse({"autoscaler": "web-usw1", "max_replicas": 10}))
    fake.stockout("us-west1-a", details=True)  # a regional group spreads over a, b and c
    ctx, now = _timed(fake, step="svc.grow")
    with pytest.raises(ProviderError, match=r"^zone stockout: ") as raised:
        RESIZE.apply(ctx, RESIZE.parse({"group": "web-usw1", "size": 7}))
    assert str(raised.value).endswith(
        ": 2 instances in zone us-west1-a: ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS: The zone "
        "'projects/shop-prod/zones/us-west1-a' does not have enough resources available to fulfill "
        "the request.  '(resource type:compute)'."
    )
    assert "instance group regions/us-west1/web-usw1 in shop-prod/us-west1 (west) cannot reach 7" in str(
        raised.value
    )
    assert now[0] < 65.0


def test_a_cpu_quota_that_persists_fails_the_resize_with_the_metric_and_region(fake: ComputeFake) -> None:
    fake.quota("CPUS", 6, region="us-west1")  # 2 instances of 2 CPUs run in us-west1
    ctx, now = _timed(fake)
    with pytest.raises(ProviderError, match=r"^quota exceeded: ") as raised:
        RESIZE.apply(ctx, RESIZE.parse({"group": "ilb-b", "zone": "us-west1-b", "size": 4}))
    assert not isinstance(raised.value, TransientProviderError)
    assert re.search(
        f"cannot reach 4 instances: {_FOR}: 2 instances, quota CPUS in region us-west1: "
        "QUOTA_EXCEEDED: Quota 'CPUS' exceeded\\.  Limit: 6\\.0 in region us-west1\\.$",
        str(raised.value),
    ), raised.value
    assert 60.0 <= now[0] <= 65.0


def test_a_stockout_that_clears_within_the_bound_does_not_fail_the_resize(fake: ComputeFake) -> None:
    fake.stockout("us-west1-b")
    ctx, now = _timed(fake, {45.0: lambda: fake.stockout("us-west1-b", False)})
    params = RESIZE.parse({"group": "ilb-b", "zone": "us-west1-b", "size": 3})
    assert RESIZE.apply(ctx, params) == {"size": 3}
    assert 45.0 <= now[0] < 48.0 and RESIZE.verify(ctx, params)
    # a quota reached for a while, then raised: the same
    fake.quota("INSTANCES", 6)  # 5 instances in us-west1: room for one more
    ctx, now = _timed(fake, {30.0: lambda: fake.quota("INSTANCES", None)}, step="svc.more")
    params = RESIZE.parse({"group": "ilb-b", "zone": "us-west1-b", "size": 6})
    assert RESIZE.apply(ctx, params) == {"size": 6}
    assert 30.0 <= now[0] < 33.0


def test_the_bound_restarts_when_a_look_finds_no_such_error(
    fake: ComputeFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Compute between two attempts: the second look finds the instances CREATING, with no error
    answer = fake.handle
    looks: list[int] = []

    def handle(method: str, target: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        status, body = answer(method, target, raw)
        if target.split("?")[0].endswith("/listManagedInstances"):
            looks.append(1)
            if len(looks) == 2:
                for managed in body["managedInstances"]:
                    managed.pop("lastAttempt", None)
        return status, body

    monkeypatch.setattr(fake, "handle", handle)
    fake.stockout("us-west1-b")
    ctx, now = _timed(fake)
    with pytest.raises(ProviderError, match="zone stockout") as raised:
        RESIZE.apply(ctx, RESIZE.parse({"group": "ilb-b", "zone": "us-west1-b", "size": 3}))
    seen = re.search(_FOR, str(raised.value))
    assert seen and seen["first"] != "0s" and seen["for"].startswith("1m")  # counted from the third look
    assert now[0] >= 70.0


def test_the_bound_is_a_parameter_and_never_outlasts_the_wait_timeout(fake: ComputeFake) -> None:
    fake.stockout("us-west1-b")
    ctx, now = _timed(fake)
    short = {"group": "ilb-b", "zone": "us-west1-b", "size": 3, "creation_error_timeout": "15s"}
    with pytest.raises(ProviderError, match=r"could not be created for 1[5-7]s \(first seen 0s"):
        RESIZE.apply(ctx, RESIZE.parse(short))
    assert 15.0 <= now[0] < 18.0
    ctx, now = _timed(fake, step="svc.capped")
    capped = {**short, "creation_error_timeout": "5m", "wait_timeout": "20s"}
    with pytest.raises(ProviderError, match=r"could not be created for 20s") as raised:
        RESIZE.apply(ctx, RESIZE.parse(capped))
    assert not isinstance(raised.value, TransientProviderError)
    assert now[0] == 20.0
    assert RESIZE.parse({"group": "g", "size": 1}).creation_error_timeout == 60.0


def test_a_wait_that_times_out_first_says_what_kept_the_instances_from_being_created() -> None:
    with ComputeFake(settle_polls=6) as slow:  # the group acts on a resize at the 6th look only
        spec = {"instance_groups": [{"site": "west", "name": "g", "zone": "us-west1-b"}]}
        Builder(PLACES, slow).create(GcpSandbox.model_validate(spec))
        slow.stockout("us-west1-b")
        ctx, now = _timed(slow)
        params = {"group": "g", "zone": "us-west1-b", "size": 2, "wait_timeout": "20s"}
        with pytest.raises(TransientProviderError) as raised:
            RESIZE.apply(ctx, RESIZE.parse(params))
        assert now[0] == 20.0
        text = str(raised.value)
        assert text.startswith("instance group g stable at 2 instances: not reached after 20s; "), text
        assert re.search(
            r"; the last look found instances that could not be created \(first seen \S+ into the wait\): "
            r"2 instances in zone us-west1-b: ZONE_RESOURCE_POOL_EXHAUSTED: ",
            text,
        ), text


# -- a drill that rehearses a stockout --------------------------------------------------------


def test_a_drill_with_a_stockout_in_the_standby_zone_fails_the_scale_up_and_rolls_back(
    tmp_path: Path,
) -> None:
    regional = load_runbook(GCP_REGIONAL)
    with Sandbox(regional) as box:
        fake = box.compute_fake
        assert fake is not None
        fake.stockout("us-west1-a")  # one of the three zones of the standby region
        time = FakeTime()
        options = Options(auto_approve=True, overrides=box.overrides(), sleep=time.sleep, clock=time.clock)
        started = time.now
        result = execute(make_plan(regional, from_="east", to="west"), tmp_path, options)
        assert (result.status, result.exit_code) == ("rolled_back", 1), result.message
        failed = result.state.steps["web-standby.scale-up"]
        assert failed.attempts == 1  # fatal: not tried again
        assert str(failed.error).startswith(
            "ProviderError: zone stockout: instance group regions/us-west1/web-usw1"
        )
        assert "1 instance in zone us-west1-a: ZONE_RESOURCE_POOL_EXHAUSTED" in str(failed.error)
        assert time.now - started < 120  # about the bound, not the 10m wait_timeout
        assert box.state() == START  # limits and size put back
