"""The GCP provider against the compute fake, through the real google-cloud-compute client: every
action applied, verified, applied again and compensated; every check passing and failing; errors
sorted into transient and fatal, operations that fail after RUNNING, and request ids."""

from __future__ import annotations

import dataclasses
import socket
import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from failover.errors import ProviderError, TransientProviderError
from failover.providers.base import Permission
from failover.providers.gcp import (
    autoscalers,
    backend_services,
    forwarding_rules,
    iam,
    instance_groups,
    instances,
    regions,
)
from failover.sandbox.compute_fake import ComputeFake
from failover.sandbox.gcp import Builder
from failover.sandbox.spec import GcpSandbox
from tests.gcp_helpers import PLACES, calls, context, fake, state

__all__ = ["fake"]  # the fixture

RESIZE = instance_groups.ResizeInstanceGroup()
LIMITS = autoscalers.SetAutoscalerLimits()
CAPACITY = backend_services.SetBackendCapacity()
POLICY = backend_services.SetFailoverPolicy()
TARGET = forwarding_rules.SetForwardingTarget()
START = instances.StartInstances()
STOP = instances.StopInstances()


def test_resize_waits_for_the_operation_and_a_stable_group_then_compensation_restores_the_size(
    fake: ComputeFake,
) -> None:
    ctx = context(fake)
    params = RESIZE.parse({"group": "web-usw1", "size": 2})
    before = RESIZE.read(ctx, params)
    assert before == {"size": 1}
    assert RESIZE.apply(ctx, params) == {"size": 2}
    assert RESIZE.verify(ctx, params)
    assert state(fake)["gcp group web-usw1"] == 2
    resize = calls(fake, "POST", "/regions/us-west1/instanceGroupManagers/web-usw1/resize")
    assert len(resize) == 1 and resize[0]["query"]["size"] == "2"
    assert uuid.UUID(resize[0]["query"]["requestId"])  # a requestId, as a UUID
    waits = calls(fake, "POST", "/wait")
    assert len(waits) == 2  # the operation was RUNNING at the first wait, DONE at the second
    # twice is once: nothing is sent the second time
    assert RESIZE.apply(ctx, params) == {"size": 2}
    assert len(calls(fake, "POST", "/resize")) == 1
    RESIZE.compensate(ctx, params, before)
    assert state(fake)["gcp group web-usw1"] == 1
    assert not RESIZE.verify(ctx, params)


def test_a_zonal_group_is_resized_in_its_zone(fake: ComputeFake) -> None:
    ctx = context(fake)
    params = RESIZE.parse({"group": "ilb-b", "zone": "us-west1-b", "size": 0})
    RESIZE.apply(ctx, params)
    assert calls(fake, "POST", "/zones/us-west1-b/instanceGroupManagers/ilb-b/resize")
    assert calls(fake, "POST", "/zones/us-west1-b/operations/" + _last_op(fake) + "/wait")
    assert state(fake)["gcp group ilb-b"] == 0


def _last_op(fake: ComputeFake) -> str:
    return str(calls(fake, "POST", "/wait")[-1]["path"].split("/")[-2])


def test_the_request_id_is_the_same_on_a_retry_so_the_fake_applies_a_resize_once(fake: ComputeFake) -> None:
    fake.fail("POST", r"/operations/.*/wait", status=503, reason="backendError", times=1)
    params = RESIZE.parse({"group": "web-usw1", "size": 2})
    with pytest.raises(TransientProviderError, match="backendError"):
        RESIZE.apply(context(fake), params)  # the resize was sent; waiting for it failed
    RESIZE.apply(context(fake), params)  # the executor's next attempt: a fresh context, same step
    sent = calls(fake, "POST", "/resize")
    assert len(sent) == 2 and sent[0]["query"]["requestId"] == sent[1]["query"]["requestId"]
    assert len({w["path"] for w in calls(fake, "POST", "/wait")}) == 1  # one operation, applied once
    assert state(fake)["gcp group web-usw1"] == 2
    # a different run (or the compensation) has another id
    other = context(fake, run="run-2")
    RESIZE.compensate(other, params, {"size": 1})
    ids = {c["query"]["requestId"] for c in calls(fake, "POST", "/resize")}
    assert len(ids) == 2


def test_an_operation_that_ends_in_error_after_running_fails_the_step(fake: ComputeFake) -> None:
    params = RESIZE.parse({"group": "web-usw1", "size": 2})
    fake.fail("POST", r"/resize$", operation_error="INVALID_FIELD_VALUE", message="size is odd")
    with pytest.raises(ProviderError, match="INVALID_FIELD_VALUE: size is odd") as fatal:
        RESIZE.apply(context(fake), params)
    assert not isinstance(fatal.value, TransientProviderError)
    assert "shop-prod/us-west1 (west)" in str(fatal.value)
    assert state(fake)["gcp group web-usw1"] == 1  # the failed operation changed nothing
    # the step is tried again (the same request ids): the failed operation is followed to a
    # fresh one, which fails too (transient); the attempt after that succeeds
    fake.fail("POST", r"/resize$", operation_error="RESOURCE_NOT_READY", message="busy")
    with pytest.raises(TransientProviderError, match="RESOURCE_NOT_READY"):
        RESIZE.apply(context(fake), params)
    assert RESIZE.apply(context(fake), params) == {"size": 2}
    assert state(fake)["gcp group web-usw1"] == 2
    ids = [c["query"]["requestId"] for c in calls(fake, "POST", "/resize")]
    assert len(ids) == 6 and len(set(ids)) == 3  # attempts sent A; then A, B; then A, B, C


def test_a_group_the_quota_cannot_hold_fails_fast_with_the_quota_error(fake: ComputeFake) -> None:
    fake.set_region("shop-prod", "us-west1", instances_quota=2)  # 1 + 1 instances exist already
    params = LIMITS.parse({"autoscaler": "web-usw1", "max_replicas": 5})
    LIMITS.apply(context(fake), params)
    grow = RESIZE.parse({"group": "web-usw1", "size": 4})
    with pytest.raises(
        ProviderError, match=r"quota exceeded.*QUOTA_EXCEEDED: Quota 'INSTANCES' exceeded"
    ) as fatal:
        RESIZE.apply(context(fake), grow)
    assert not isinstance(fatal.value, TransientProviderError)
    fake.fail("POST", r"/resize$", status=403, reason="quotaExceeded", message="Quota exceeded")
    with pytest.raises(ProviderError, match="quota exceeded") as refused:
        RESIZE.apply(context(fake, step="svc.again"), RESIZE.parse({"group": "web-usw1", "size": 2}))
    assert not isinstance(refused.value, TransientProviderError)


def test_a_resize_an_autoscaler_would_undo_is_refused_before_anything_changes(fake: ComputeFake) -> None:
    params = RESIZE.parse({"group": "web-usw1", "size": 3})
    with pytest.raises(
        ProviderError, match=r"between 1 and 2 instances by autoscaler web-usw1.*set_autoscaler_limits"
    ):
        RESIZE.apply(context(fake), params)
    assert not calls(fake, "POST", "/resize")
    LIMITS.apply(
        context(fake), LIMITS.parse({"autoscaler": "web-usw1", "min_replicas": 3, "max_replicas": 10})
    )
    assert state(fake)["gcp group web-usw1"] == 3  # the autoscaler's new minimum grew the group
    assert RESIZE.apply(context(fake), params) == {"size": 3}


def test_autoscaler_limits_change_in_one_patch_and_compensation_restores_them(fake: ComputeFake) -> None:
    ctx = context(fake)
    params = LIMITS.parse({"autoscaler": "web-usw1", "min_replicas": 3, "max_replicas": 10})
    before = LIMITS.read(ctx, params)
    assert before == {"min_replicas": 1, "max_replicas": 2, "group_size": 1}
    assert LIMITS.apply(ctx, params) == {"min_replicas": 3, "max_replicas": 10}
    assert LIMITS.verify(ctx, params)
    patches = calls(fake, "PATCH", "/regions/us-west1/autoscalers")
    assert len(patches) == 1 and patches[0]["query"]["autoscaler"] == "web-usw1"
    assert patches[0]["body"]["autoscalingPolicy"]["minNumReplicas"] == 3
    LIMITS.apply(ctx, params)
    assert len(calls(fake, "PATCH", "/autoscalers")) == 1
    assert state(fake)["gcp group web-usw1"] == 3  # the new minimum grew the group
    LIMITS.compensate(ctx, params, before)
    assert state(fake)["gcp autoscaler web-usw1"] == [1, 2]
    assert state(fake)["gcp group web-usw1"] == 1  # and the group is back at its size


def test_autoscaler_limits_that_contradict_each_other_are_refused(fake: ComputeFake) -> None:
    with pytest.raises(ValidationError, match="min_replicas 5 is above max_replicas 2"):
        LIMITS.parse({"autoscaler": "a", "min_replicas": 5, "max_replicas": 2})
    with pytest.raises(ValidationError, match="give min_replicas, max_replicas or both"):
        LIMITS.parse({"autoscaler": "a"})
    with pytest.raises(ProviderError, match="min 5 would be above max 2"):  # with the current max
        LIMITS.apply(context(fake), LIMITS.parse({"autoscaler": "web-usw1", "min_replicas": 5}))
    assert not calls(fake, "PATCH", "/autoscalers")


def test_backend_capacity_moves_traffic_and_compensation_moves_it_back(fake: ComputeFake) -> None:
    ctx = context(fake, "east")
    params = CAPACITY.parse({"service": "web", "capacity": {"web-usw1": 1.0, "web-use4": 0.0}})
    before = CAPACITY.read(ctx, params)
    CAPACITY.apply(ctx, params)
    assert CAPACITY.verify(ctx, params)
    now = state(fake)
    assert now["gcp backend web regions/us-east4/instanceGroups/web-use4"] == [0.0, False]
    assert now["gcp backend web regions/us-west1/instanceGroups/web-usw1"] == [1.0, False]
    patch = calls(fake, "PATCH", "/global/backendServices/web")
    assert len(patch) == 1 and patch[0]["body"]["fingerprint"]  # an optimistic lock
    assert [b["capacityScaler"] for b in patch[0]["body"]["backends"]] == [0.0, 1.0]  # 0.0 is sent
    CAPACITY.apply(ctx, params)
    assert len(calls(fake, "PATCH", "/backendServices/web")) == 1
    CAPACITY.compensate(ctx, params, before)
    assert state(fake)["gcp backend web regions/us-east4/instanceGroups/web-use4"] == [1.0, False]
    assert not CAPACITY.verify(ctx, params)


def test_backend_capacity_names_the_backends_when_a_group_is_not_one(fake: ComputeFake) -> None:
    params = CAPACITY.parse({"service": "web", "capacity": {"web-euw1": 1.0}})
    with pytest.raises(
        ProviderError,
        match=r"no backend for instance group 'web-euw1'; its backends: "
        r"regions/us-east4/instanceGroups/web-use4, regions/us-west1/instanceGroups/web-usw1",
    ):
        CAPACITY.apply(context(fake, "east"), params)
    with pytest.raises(ValidationError, match=r"a capacityScaler is 0\.0 or between 0\.1 and 1\.0"):
        CAPACITY.parse({"service": "web", "capacity": {"web-usw1": 0.05}})


def test_a_stale_fingerprint_is_transient_and_the_next_attempt_reads_again(fake: ComputeFake) -> None:
    params = CAPACITY.parse({"service": "web", "capacity": {"web-usw1": 1.0, "web-use4": 0.0}})
    fake.fail("PATCH", r"/backendServices/web$", status=412, reason="conditionNotMet", message="fingerprint")
    with pytest.raises(TransientProviderError, match="conditionNotMet"):
        CAPACITY.apply(context(fake, "east"), params)
    CAPACITY.apply(context(fake, "east"), params)
    assert CAPACITY.verify(context(fake, "east"), params)


def test_failover_policy_and_failover_backends_of_a_regional_service(fake: ComputeFake) -> None:
    ctx = context(fake)
    params = POLICY.parse({"service": "ilb", "failover_ratio": 0.2, "failover_groups": ["web-usw1"]})
    before = POLICY.read(ctx, params)
    assert before == {
        "policy": {
            "failover_ratio": 0.5,
            "drop_traffic_if_unhealthy": False,
            "disable_connection_drain_on_failover": False,
        },
        "failover": {
            "projects/shop-prod/regions/us-west1/instanceGroups/web-usw1": False,
            "projects/shop-prod/zones/us-west1-b/instanceGroups/ilb-b": True,
        },
    }
    POLICY.apply(ctx, params)
    assert POLICY.verify(ctx, params)
    assert state(fake)["gcp failover policy ilb"] == [0.2, False, False]
    assert state(fake)["gcp backend ilb zones/us-west1-b/instanceGroups/ilb-b"] == [0.0, False]
    assert calls(fake, "PATCH", "/regions/us-west1/backendServices/ilb")
    POLICY.apply(ctx, params)
    assert len(calls(fake, "PATCH", "/backendServices/ilb")) == 1
    POLICY.compensate(ctx, params, before)
    assert POLICY.read(ctx, params) == before


def test_forwarding_target_is_repointed_and_put_back(fake: ComputeFake) -> None:
    ctx = context(fake)
    params = TARGET.parse({"rule": "ingest", "target": "regions/us-west1/targetPools/ingest-b"})
    before = TARGET.read(ctx, params)
    assert before == {"target": "projects/shop-prod/regions/us-west1/targetPools/ingest-a"}
    TARGET.apply(ctx, params)
    assert TARGET.verify(ctx, params)
    sent = calls(fake, "POST", "/regions/us-west1/forwardingRules/ingest/setTarget")
    assert sent[0]["body"] == {"target": "projects/shop-prod/regions/us-west1/targetPools/ingest-b"}
    TARGET.apply(ctx, params)
    assert len(calls(fake, "POST", "/setTarget")) == 1
    TARGET.compensate(ctx, params, before)
    assert state(fake)["gcp forwarding rule ingest"] == before["target"]
    glob = TARGET.parse({"rule": "shop", "scope": "global", "target": "global/targetHttpProxies/app"})
    TARGET.apply(context(fake, "east"), glob)
    assert calls(fake, "POST", "/global/forwardingRules/shop/setTarget")
    assert state(fake)["gcp forwarding rule shop"] == "projects/shop-prod/global/targetHttpProxies/app"


def test_forwarding_targets_are_checked_for_form_and_scope(fake: ComputeFake) -> None:
    with pytest.raises(ValidationError, match="not a target resource path"):
        TARGET.parse({"rule": "ingest", "target": "ingest-b"})
    wrong_region = TARGET.parse({"rule": "ingest", "target": "regions/us-east4/targetPools/x"})
    with pytest.raises(
        ProviderError, match=r"BadRequest \(400, invalid\).*Must be a target resource URL in regions/us-west1"
    ):
        TARGET.apply(context(fake), wrong_region)


def test_start_and_stop_instances_and_put_them_back(fake: ComputeFake) -> None:
    west, east = context(fake), context(fake, "east")
    start = START.parse({"zone": "us-west1-a", "instances": ["scheduler-usw1"]})
    stop = STOP.parse({"zone": "us-east4-a", "instances": ["scheduler-use4"]})
    stopped_before, running_before = STOP.read(east, stop), START.read(west, start)
    assert STOP.apply(east, stop) == {"scheduler-use4": "TERMINATED"}
    assert START.apply(west, start) == {"scheduler-usw1": "RUNNING"}
    assert START.verify(west, start) and STOP.verify(east, stop)
    START.apply(west, start)
    assert len(calls(fake, "POST", "/instances/scheduler-usw1/start")) == 1
    START.compensate(west, start, running_before)
    STOP.compensate(east, stop, stopped_before)
    now = state(fake)
    assert now["gcp instance us-west1-a/scheduler-usw1"] == "TERMINATED"
    assert now["gcp instance us-east4-a/scheduler-use4"] == "RUNNING"


def test_a_missing_instance_is_fatal_and_names_it(fake: ComputeFake) -> None:
    params = START.parse({"zone": "us-west1-a", "instances": ["nope"]})
    with pytest.raises(
        ProviderError,
        match=r"NotFound \(404, notFound\) on instance us-west1-a/nope in shop-prod/us-west1 \(west\)",
    ):
        START.apply(context(fake), params)


@pytest.mark.parametrize(
    ("status", "reason", "transient"),
    [
        (429, "rateLimitExceeded", True),
        (503, "backendError", True),
        (500, "internalError", True),
        (403, "rateLimitExceeded", True),
        (403, "forbidden", False),
        (404, "notFound", False),
        (400, "invalid", False),
        (403, "quotaExceeded", False),
    ],
)
def test_http_errors_are_sorted_into_transient_and_fatal(
    fake: ComputeFake, status: int, reason: str, transient: bool
) -> None:
    fake.fail("GET", r"/instanceGroupManagers/web-usw1$", status=status, reason=reason, message="told so")
    with pytest.raises(ProviderError) as raised:
        RESIZE.read(context(fake), RESIZE.parse({"group": "web-usw1", "size": 2}))
    assert isinstance(raised.value, TransientProviderError) is transient
    assert (
        f"({status}, {reason}) on instance group regions/us-west1/web-usw1 "
        "in shop-prod/us-west1 (west): told so" in str(raised.value)
    )


def test_an_endpoint_that_does_not_answer_is_transient(fake: ComputeFake) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    ctx = context(fake, endpoint=f"http://127.0.0.1:{port}")
    with pytest.raises(TransientProviderError, match="GCP unreachable for instance group"):
        RESIZE.read(ctx, RESIZE.parse({"group": "web-usw1", "size": 2}))


def test_operations_are_waited_on_within_the_steps_deadline() -> None:
    with ComputeFake(operation_polls=1) as slow:
        Builder(PLACES, slow).create(
            GcpSandbox.model_validate({"instance_groups": [{"site": "west", "name": "g"}]})
        )
        slow.operation_polls = 10**6  # from now on, operations never finish
        slow.requests.clear()
        waits = lambda: 10.0 * len(calls(slow, "POST", "/wait"))  # noqa: E731  # each wait takes 10 s
        ctx = dataclasses.replace(context(slow), clock=waits, deadline=25.0)
        with pytest.raises(
            TransientProviderError, match=r"resize of .*: operation operation-\S+ still RUNNING after 30s"
        ):
            RESIZE.apply(ctx, RESIZE.parse({"group": "g", "size": 2}))
        assert len(calls(slow, "POST", "/resize")) == 1
        assert len(calls(slow, "POST", "/wait")) == 3  # none once the deadline passed


def test_region_up_reads_the_regions_status(fake: ComputeFake) -> None:
    check = regions.RegionUp()
    assert check.run(context(fake), check.parse({})).ok
    fake.set_region("shop-prod", "us-west1", status="DOWN")
    seen = check.run(context(fake), check.parse({}))
    assert (seen.ok, seen.observed, seen.message) == (False, {"status": "DOWN"}, "region us-west1 is DOWN")
    assert check.run(context(fake), check.parse({"region": "us-east4"})).ok


def test_backends_healthy_counts_healthy_instances_in_the_given_groups(fake: ComputeFake) -> None:
    check = backend_services.BackendsHealthy()
    ctx = context(fake, "east")
    params = check.parse({"service": "web", "groups": ["web-use4"], "min_healthy": 3})
    seen = check.run(ctx, params)
    assert (seen.ok, seen.observed) == (True, {"web-use4": 3})
    instance = next(r["instance"] for r in _health(fake, ctx))
    fake.set_unhealthy(instance)
    seen = check.run(ctx, params)
    assert (seen.ok, seen.observed) == (False, {"web-use4": 2})
    assert seen.message == "2 healthy instances (web-use4 2), need 3"
    none = check.run(
        ctx, check.parse({"service": "web", "groups": ["web-usw1", "web-use4"], "min_healthy": 4})
    )
    assert (none.ok, none.observed) == (False, {"web-usw1": 1, "web-use4": 2})


def _health(fake: ComputeFake, ctx: Any) -> list[dict[str, Any]]:
    from failover.providers.gcp._client import compute

    answer = compute(ctx, "BackendServicesClient").get_health(
        request={
            "project": "shop-prod",
            "backend_service": "web",
            "resource_group_reference_resource": {
                "group": "projects/shop-prod/regions/us-east4/instanceGroups/web-use4"
            },
        }
    )
    return [{"instance": h.instance} for h in answer.health_status]


def test_instance_group_capacity_sees_quota_and_autoscaler(fake: ComputeFake) -> None:
    check = instance_groups.InstanceGroupCapacity()
    ctx = context(fake)
    ok = check.run(ctx, check.parse({"group": "web-usw1", "size": 2}))
    assert ok.ok and ok.observed == {"target_size": 1, "instances_free": 9, "autoscaler_max": 2}
    capped = check.run(ctx, check.parse({"group": "web-usw1", "size": 3}))
    assert not capped.ok and capped.message == "autoscaler web-usw1 caps it at 2"
    assert check.run(ctx, check.parse({"group": "web-usw1", "size": 3, "respect_autoscaler": False})).ok
    short = check.run(ctx, check.parse({"group": "web-usw1", "size": 12, "respect_autoscaler": False}))
    assert not short.ok
    assert short.message == "11 more instances needed, the INSTANCES quota of us-west1 has 9 left"


def test_permissions_check_asks_for_the_plans_permissions_in_batches_of_100(fake: ComputeFake) -> None:
    check = iam.PermissionsCheck()
    needed = tuple(Permission("gcp", f"compute.things{i:03d}.get") for i in range(150))
    aws = (Permission("aws", "ec2:DescribeRegions"),)
    ok = check.run(context(fake, permissions=needed + aws), check.parse({}))
    assert ok.ok and ok.message == "all 150 permissions held in project shop-prod"
    asked = calls(fake, "POST", "/v3/projects/shop-prod:testIamPermissions")
    assert [len(c["body"]["permissions"]) for c in asked] == [100, 50]
    fake.deny("compute.things007.get", "compute.things149.get")
    missing = check.run(context(fake, permissions=needed), check.parse({}))
    assert not missing.ok
    assert missing.message == "missing in project shop-prod: compute.things007.get, compute.things149.get"


def test_every_gcp_action_lists_narrow_permissions() -> None:
    from failover.providers.base import Placement

    where = Placement("west", "gcp", "us-west1", "shop-prod")
    found = RESIZE.permissions(RESIZE.parse({"group": "web-usw1", "size": 2}), where)
    assert (
        Permission(
            "gcp",
            "compute.instanceGroupManagers.update",
            "projects/shop-prod/regions/us-west1/instanceGroupManagers/web-usw1",
        )
        in found
    )
    target = TARGET.permissions(
        TARGET.parse({"rule": "r", "target": "regions/us-west1/targetHttpProxies/p"}), where
    )
    assert {p.action for p in target} == {
        "compute.forwardingRules.get",
        "compute.forwardingRules.setTarget",
        "compute.regionTargetHttpProxies.use",
        "compute.regionOperations.get",
    }
    start = START.permissions(START.parse({"zone": "us-west1-a", "instances": ["a"]}), where)
    assert {p.action for p in start} == {
        "compute.zoneOperations.get",
        "compute.instances.get",
        "compute.instances.start",
        "compute.instances.stop",  # its compensation stops it again
    }


def test_a_rollback_of_a_resize_under_raised_limits_leaves_the_size_to_the_limits_step(
    fake: ComputeFake,
) -> None:
    # as a rollback runs: the resize is compensated first, while the limits are still raised
    ctx = context(fake)
    limits = LIMITS.parse({"autoscaler": "web-usw1", "min_replicas": 3, "max_replicas": 10})
    before_limits = LIMITS.read(ctx, limits)
    LIMITS.apply(ctx, limits)
    resize = RESIZE.parse({"group": "web-usw1", "size": 4})
    RESIZE.apply(ctx, resize)
    RESIZE.compensate(ctx, resize, {"size": 1})  # 1 is below the raised minimum: as close as allowed
    assert state(fake)["gcp group web-usw1"] == 3
    LIMITS.compensate(ctx, limits, before_limits)
    assert state(fake)["gcp autoscaler web-usw1"] == [1, 2]
    assert state(fake)["gcp group web-usw1"] == 1


def test_failover_policy_rollback_clears_what_was_unset_before(fake: ComputeFake) -> None:
    ctx = context(fake)
    params = POLICY.parse(
        {"service": "ilb", "drop_traffic_if_unhealthy": True, "disable_connection_drain_on_failover": True}
    )
    before = POLICY.read(ctx, params)
    assert before["policy"] == {  # type: ignore[index]
        "failover_ratio": 0.5,
        "drop_traffic_if_unhealthy": False,
        "disable_connection_drain_on_failover": False,
    }
    POLICY.apply(ctx, params)
    assert state(fake)["gcp failover policy ilb"] == [0.5, True, True]
    POLICY.compensate(ctx, params, before)
    assert state(fake)["gcp failover policy ilb"] == [0.5, False, False]
    sent = calls(fake, "PATCH", "/backendServices/ilb")[-1]["body"]["failoverPolicy"]
    assert sent == {
        "failoverRatio": 0.5,
        "dropTrafficIfUnhealthy": False,
        "disableConnectionDrainOnFailover": False,
    }


def test_the_fake_refuses_what_compute_engine_refuses() -> None:
    from failover.errors import SandboxError

    bad_backend = {
        "backend_services": [{"site": "east", "name": "web", "backends": [{"site": "east", "group": "nope"}]}]
    }
    twice = {"instances": [{"site": "east", "zone": "us-east4-a", "name": "vm"}] * 2}
    bad_zone = {"instances": [{"site": "east", "zone": "us-east4", "name": "vm"}]}
    with ComputeFake() as fake:
        builder = Builder(PLACES, fake)
        with pytest.raises(SandboxError, match=r"backends\[0\]\.group.*Must be an existing instance group"):
            builder.create(GcpSandbox.model_validate(bad_backend))
        with pytest.raises(
            SandboxError, match=r"projects/shop-prod/zones/us-east4-a/instances/vm' already exists"
        ):
            builder.create(GcpSandbox.model_validate(twice))
        with pytest.raises(SandboxError, match=r"projects/shop-prod/zones/us-east4' was not found"):
            builder.create(GcpSandbox.model_validate(bad_zone))
