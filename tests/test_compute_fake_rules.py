"""The compute fake held to Compute Engine's reference: requests checked against the discovery
document (method and path, query parameters, body fields, their types and enum values), the
rules Compute Engine enforces on backend services, forwarding rules, fingerprints, permission
names and failed operations, and resources that take the time they take (instances boot, then
pass health checks; groups are unstable until their instances run; autoscalers move their
groups over time). Driven over HTTP, raw and through google-cloud-compute's REST clients."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials

from failover.providers.gcp._client import new_client
from failover.sandbox import clock
from failover.sandbox.compute_fake import ComputeFake

P = "/compute/v1/projects/shop-prod"
WEST, EAST = "regions/us-west1", "regions/us-east4"
BOOT, HEALTH = "instance_boot", "health_threshold"


class Clock:
    """The fake's clock, moved by the test."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def pass_(self, *durations: str, plus: float = 0.0) -> None:
        self.t += sum(map(clock.seconds, durations)) + plus


@pytest.fixture
def time() -> Clock:
    return Clock()


@pytest.fixture
def fake(time: Clock) -> Iterator[ComputeFake]:
    """A fake whose operations are DONE at once, with three groups (two regional, one zonal),
    settled: their instances run and are healthy."""
    with ComputeFake(operation_polls=0, now=time) as running:
        for loc, name, size in (
            (WEST, "web-usw1", 1),
            (EAST, "web-use4", 2),
            ("zones/us-west1-b", "ilb-b", 1),
        ):
            body = {"name": name, "instanceTemplate": "global/instanceTemplates/t", "targetSize": size}
            assert ok(running, "POST", f"{loc}/instanceGroupManagers", body)
        running.settle()
        time.pass_(plus=1.0)
        yield running


def http(fake: ComputeFake, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    """A request to the fake: ``path`` from the project on (or absolute), the answer's status and JSON."""
    url = fake.endpoint + (path if path.startswith("/") else f"{P}/{path}")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def ok(fake: ComputeFake, method: str, path: str, body: Any = None) -> dict[str, Any]:
    status, answer = http(fake, method, path, body)
    assert status == 200, answer
    assert "error" not in answer, answer  # an operation DONE in error
    return answer


def refused(fake: ComputeFake, method: str, path: str, body: Any, status: int, reason: str) -> str:
    """Refused with ``status`` and ``reason``, in Compute Engine's error shape: the message."""
    got, answer = http(fake, method, path, body)
    assert got == status, answer
    error = answer["error"]
    assert error["code"] == status
    assert error["errors"] == [{"message": error["message"], "domain": "global", "reason": reason}]
    return str(error["message"])


def client(fake: ComputeFake, kind: str) -> Any:
    return new_client(kind, AnonymousCredentials(), fake.endpoint)  # type: ignore[no-untyped-call]


def group(name: str, loc: str = WEST) -> str:
    return f"projects/shop-prod/{loc}/instanceGroups/{name}"


# -- 1. every request against the discovery document ---------------------------------------------


def test_query_parameters_must_be_the_methods_with_their_types(fake: ComputeFake) -> None:
    resize = f"{WEST}/instanceGroupManagers/web-usw1/resize"
    message = refused(fake, "POST", f"{resize}?size=2&sizee=3", None, 400, "invalid")
    assert message == (
        'Invalid JSON payload received. Unknown name "sizee": Cannot bind query parameter. '
        "Field 'sizee' could not be found in request message."
    )
    message = refused(fake, "POST", f"{resize}?size=three", None, 400, "invalid")
    assert message == "Invalid value at 'size' (TYPE_INT32), \"three\""
    message = refused(fake, "POST", resize, None, 400, "required")
    assert message == "Required field 'size' not specified"
    # system parameters are taken by every method, also spelled with a $
    ok(fake, "POST", f"{resize}?size=2&fields=name&$alt=json&prettyPrint=false")


def test_body_fields_must_exist_with_their_types_and_enum_values_in_depth(fake: ComputeFake) -> None:
    base = {"name": "lb", "backends": [{"group": group("web-usw1")}]}
    cases = [
        ({**base, "capacityScaler": 1.0}, "Unknown name \"capacityScaler\" at 'backend_service_resource'"),
        (
            {**base, "backends": [{"group": group("web-usw1"), "capacity": 1.0}]},
            "Unknown name \"capacity\" at 'backend_service_resource.backends[0]': Cannot find field.",
        ),
        (
            {**base, "backends": [{"group": group("web-usw1"), "capacityScaler": "most"}]},
            "Invalid value at 'backend_service_resource.backends[0].capacity_scaler' (TYPE_FLOAT), \"most\"",
        ),
        (
            {**base, "backends": [{"group": group("web-usw1"), "failover": "yes"}]},
            "Invalid value at 'backend_service_resource.backends[0].failover' (TYPE_BOOL), \"yes\"",
        ),
        (
            {**base, "backends": [{"group": group("web-usw1"), "balancingMode": "MOSTLY"}]},
            "Invalid value at 'backend_service_resource.backends[0].balancing_mode' (TYPE_ENUM), \"MOSTLY\"",
        ),
        (
            {**base, "failoverPolicy": {"failoverRatio": 0.5, "failbackRatio": 1}},
            "Unknown name \"failbackRatio\" at 'backend_service_resource.failover_policy'",
        ),
        (
            {**base, "backends": {"group": "x"}},
            "Invalid value at 'backend_service_resource.backends' (repeated)",
        ),
    ]
    for body, says in cases:
        assert says in refused(fake, "POST", f"{WEST}/backendServices", body, 400, "invalid"), body
    group_body = {"name": "g", "instanceTemplate": "global/instanceTemplates/t", "targetSize": "three"}
    assert "(TYPE_INT32)" in refused(
        fake, "POST", f"{WEST}/instanceGroupManagers", group_body, 400, "invalid"
    )
    too_big = {**group_body, "targetSize": 2**31}
    assert "(TYPE_INT32), 2147483648" in refused(
        fake, "POST", f"{WEST}/instanceGroupManagers", too_big, 400, "invalid"
    )
    policy = {"name": "a", "target": "x", "autoscalingPolicy": {"maxNumReplicas": 3, "mode": "SIDEWAYS"}}
    assert refused(fake, "POST", f"{WEST}/autoscalers", policy, 400, "invalid") == (
        "Invalid value at 'autoscaler_resource.autoscaling_policy.mode' (TYPE_ENUM), \"SIDEWAYS\""
    )
    # a method that takes no body takes none; a body that is not an object is refused
    assert 'Unknown name "size"' in refused(
        fake, "POST", f"{WEST}/instanceGroupManagers/web-usw1/resize?size=1", {"size": 1}, 400, "invalid"
    )
    assert "(TYPE_MESSAGE)" in refused(fake, "POST", f"{WEST}/backendServices", [base], 400, "invalid")
    # numbers as proto's JSON takes them: an int32 as a string, a float as an integer
    ok(fake, "POST", f"{WEST}/instanceGroupManagers", {**group_body, "targetSize": "2"})
    assert ok(fake, "GET", f"{WEST}/instanceGroupManagers/g")["targetSize"] == 2


def test_methods_and_path_parameters_are_compute_engines(fake: ComputeFake) -> None:
    message = refused(fake, "GET", "zones/US_WEST1/instances/vm", None, 400, "invalid")
    assert message.startswith("Invalid value for field 'zone': 'US_WEST1'. Must be a match of regex")
    refused(fake, "DELETE", f"{WEST}/instanceGroupManagers/web-usw1", None, 404, "notFound")  # not served
    refused(fake, "GET", f"{WEST}/instanceGroupManagers/web-usw1/resize", None, 404, "notFound")  # a POST
    refused(fake, "GET", "global/frobnicators/x", None, 404, "notFound")


def test_a_client_request_the_reference_refuses_is_a_bad_request(fake: ComputeFake) -> None:
    autoscalers = client(fake, "RegionAutoscalersClient")
    with pytest.raises(gexc.BadRequest) as raised:
        autoscalers.insert_unary(
            request={
                "project": "shop-prod",
                "region": "us-west1",
                "autoscaler_resource": {
                    "name": "web-usw1",
                    "target": f"projects/shop-prod/{WEST}/instanceGroupManagers/web-usw1",
                    "autoscaling_policy": {"max_num_replicas": 3, "mode": "SIDEWAYS"},
                },
            }
        )
    assert [e["reason"] for e in raised.value.errors] == ["invalid"]
    assert "autoscaler_resource.autoscaling_policy.mode" in raised.value.message


# -- 2. Compute Engine's rules --------------------------------------------------------------------


def test_an_internal_backend_service_takes_no_capacity_scaler_and_balances_by_connection(
    fake: ComputeFake,
) -> None:
    services = client(fake, "RegionBackendServicesClient")
    where = {"project": "shop-prod", "region": "us-west1"}
    with pytest.raises(gexc.BadRequest) as raised:
        services.insert_unary(
            request={
                **where,
                "backend_service_resource": {
                    "name": "ilb",
                    "backends": [{"group": group("web-usw1"), "capacity_scaler": 1.0}],
                },
            }
        )
    assert [e["reason"] for e in raised.value.errors] == ["invalid"]
    assert raised.value.message.endswith(
        "Invalid value for field 'resource.backends[0].capacityScaler': '1.0'. "
        "Capacity scaler must not be set for an INTERNAL backend service."
    )
    backends = [{"group": group("web-usw1")}, {"group": group("ilb-b", "zones/us-west1-b"), "failover": True}]
    services.insert_unary(
        request={**where, "backend_service_resource": {"name": "ilb", "backends": backends}}
    )
    found = services.get(request={**where, "backend_service": "ilb"})
    assert found.load_balancing_scheme == "INTERNAL"
    assert [(b.balancing_mode, "capacity_scaler" in b) for b in found.backends] == [
        ("CONNECTION", False),
        ("CONNECTION", False),
    ]
    # a patch may not add one either, nor another balancing mode
    for backend, field in (
        ({"group": group("web-usw1"), "capacityScaler": 0.5}, "capacityScaler"),
        ({"group": group("web-usw1"), "balancingMode": "UTILIZATION"}, "balancingMode"),
    ):
        body = {"fingerprint": found.fingerprint, "backends": [backend]}
        message = refused(fake, "PATCH", f"{WEST}/backendServices/ilb", body, 400, "invalid")
        assert f"'resource.backends[0].{field}'" in message


def test_every_backend_drained_is_refused(fake: ComputeFake) -> None:
    drained = [
        {"group": group("web-usw1"), "capacityScaler": 0.0},
        {"group": group("web-use4", EAST), "capacityScaler": 0},
    ]
    message = refused(
        fake, "POST", "global/backendServices", {"name": "web", "backends": drained}, 400, "invalid"
    )
    assert message == (
        "Invalid value for field 'resource.backends': ''. "
        "At least one backend must have a non-zero capacity scaler."
    )
    refused(fake, "POST", "global/backendServices", {"name": "web", "backends": drained[:1]}, 400, "invalid")
    serving = [drained[0], {"group": group("web-use4", EAST)}]  # no capacityScaler: 1.0
    ok(fake, "POST", "global/backendServices", {"name": "web", "backends": serving})
    current = ok(fake, "GET", "global/backendServices/web")
    assert [b["capacityScaler"] for b in current["backends"]] == [0.0, 1.0]
    body = {"fingerprint": current["fingerprint"], "backends": drained}
    refused(fake, "PATCH", "global/backendServices/web", body, 400, "invalid")


def test_failover_backends_and_policies_are_only_for_passthrough_services(fake: ComputeFake) -> None:
    failover = [{"group": group("web-usw1"), "failover": True}]
    for loc, body in (
        ("global", {"name": "web", "backends": failover}),
        (WEST, {"name": "rxlb", "loadBalancingScheme": "EXTERNAL_MANAGED", "backends": failover}),
    ):
        message = refused(fake, "POST", f"{loc}/backendServices", body, 400, "invalid")
        assert message.startswith("Invalid value for field 'resource.backends[0].failover': 'True'.")
    policy = {
        "name": "rxlb",
        "loadBalancingScheme": "INTERNAL_MANAGED",
        "failoverPolicy": {"failoverRatio": 0.5},
    }
    assert "'resource.failoverPolicy'" in refused(
        fake, "POST", f"{WEST}/backendServices", policy, 400, "invalid"
    )
    # an external passthrough Network Load Balancer's may have both
    nlb = {"name": "nlb", "loadBalancingScheme": "EXTERNAL", "backends": failover, "failoverPolicy": {}}
    ok(fake, "POST", f"{WEST}/backendServices", nlb)


def test_a_regional_backend_service_takes_backends_of_its_region_only(fake: ComputeFake) -> None:
    body = {"name": "ilb", "backends": [{"group": group("web-use4", EAST)}]}
    message = refused(fake, "POST", f"{WEST}/backendServices", body, 400, "invalid")
    assert message.endswith("Instance group must be in the region of the backend service, regions/us-west1")


def test_a_backend_service_changes_only_with_its_current_fingerprint(fake: ComputeFake) -> None:
    services = client(fake, "BackendServicesClient")
    backends = [{"group": group("web-usw1")}, {"group": group("web-use4", EAST), "capacityScaler": 0.0}]
    ok(fake, "POST", "global/backendServices", {"name": "web", "backends": backends})
    found = services.get(request={"project": "shop-prod", "backend_service": "web"})
    swapped = [
        {"group": group("web-usw1"), "capacity_scaler": 0.0},
        {"group": group("web-use4", EAST), "capacity_scaler": 1.0},
    ]
    for method in (services.patch_unary, services.update_unary):
        with pytest.raises(gexc.PreconditionFailed) as missing:  # no fingerprint: 412 too
            method(
                request={
                    "project": "shop-prod",
                    "backend_service": "web",
                    "backend_service_resource": {"backends": swapped},
                }
            )
        assert [e["reason"] for e in missing.value.errors] == ["conditionNotMet"]
    services.patch_unary(
        request={
            "project": "shop-prod",
            "backend_service": "web",
            "backend_service_resource": {"backends": swapped, "fingerprint": found.fingerprint},
        }
    )
    with pytest.raises(gexc.PreconditionFailed, match="does not match current resource fingerprint"):
        services.update_unary(  # the fingerprint read before the patch is stale now
            request={
                "project": "shop-prod",
                "backend_service": "web",
                "backend_service_resource": {
                    "name": "web",
                    "backends": swapped,
                    "fingerprint": found.fingerprint,
                },
            }
        )
    now = services.get(request={"project": "shop-prod", "backend_service": "web"})
    assert [round(b.capacity_scaler, 6) for b in now.backends] == [0.0, 1.0]
    assert now.fingerprint != found.fingerprint
    # an update replaces the whole service (what it does not give is gone)
    services.update_unary(
        request={
            "project": "shop-prod",
            "backend_service": "web",
            "backend_service_resource": {
                "name": "web",
                "backends": swapped[1:],
                "fingerprint": now.fingerprint,
            },
        }
    )
    assert len(services.get(request={"project": "shop-prod", "backend_service": "web"}).backends) == 1


def test_a_forwarding_rule_target_must_exist_and_be_of_a_kind_the_rule_takes(fake: ComputeFake) -> None:
    pool_a, pool_b = (f"projects/shop-prod/{WEST}/targetPools/{n}" for n in ("ingest-a", "ingest-b"))
    proxy = "projects/shop-prod/global/targetHttpProxies/web"
    rules = client(fake, "ForwardingRulesClient")
    where = {"project": "shop-prod", "region": "us-west1"}
    with pytest.raises(gexc.NotFound) as missing:
        rules.insert_unary(
            request={**where, "forwarding_rule_resource": {"name": "ingest", "target": pool_a}}
        )
    assert [e["reason"] for e in missing.value.errors] == ["notFound"]
    assert missing.value.message.endswith(f"The resource '{pool_a}' was not found")
    for target in (pool_a, pool_b, proxy, f"projects/shop-prod/{WEST}/targetHttpProxies/regional"):
        fake.declare_target(target)
    for loc, target in (("global", pool_a), (WEST, proxy), (EAST, pool_a)):
        body = {"name": "r", "target": target}
        assert "Must be a target resource URL in" in refused(
            fake, "POST", f"{loc}/forwardingRules", body, 400, "invalid"
        )
    rules.insert_unary(request={**where, "forwarding_rule_resource": {"name": "ingest", "target": pool_a}})
    set_target = f"{WEST}/forwardingRules/ingest/setTarget"
    message = refused(
        fake,
        "POST",
        set_target,
        {"target": f"projects/shop-prod/{WEST}/targetHttpProxies/regional"},
        400,
        "invalid",
    )
    assert message.endswith("The new target must be of the same type as the old target (targetPools)")
    refused(fake, "POST", set_target, {"target": pool_a.replace("ingest-a", "nope")}, 404, "notFound")
    rules.set_target_unary(
        request={**where, "forwarding_rule": "ingest", "target_reference_resource": {"target": pool_b}}
    )
    assert rules.get(request={**where, "forwarding_rule": "ingest"}).target.endswith(pool_b)


def test_test_iam_permissions_refuses_what_is_not_a_permission_name(fake: ComputeFake) -> None:
    path = "/v3/projects/shop-prod:testIamPermissions"
    for bad in ("compute.*", "compute", "compute.instances.get extra", ""):
        status, answer = http(fake, "POST", path, {"permissions": ["compute.instances.get", bad]})
        assert status == 400, answer
        assert answer["error"] == {
            "code": 400,
            "message": f"Permission {bad} is not valid for this resource.",
            "status": "INVALID_ARGUMENT",
        }
    from google.cloud import resourcemanager_v3

    projects = resourcemanager_v3.ProjectsClient(
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        transport="rest",
        client_options={"api_endpoint": fake.endpoint},
    )
    with pytest.raises(gexc.BadRequest, match=r"Permission storage\.\* is not valid"):
        projects.test_iam_permissions(
            request={"resource": "projects/shop-prod", "permissions": ["storage.*"]}
        )
    fake.deny("compute.instances.stop")
    held = projects.test_iam_permissions(
        request={
            "resource": "projects/shop-prod",
            "permissions": ["compute.instances.get", "compute.instances.stop"],
        }
    )
    assert list(held.permissions) == ["compute.instances.get"]


def test_a_failed_operation_reports_compute_engines_http_status_for_its_error(fake: ComputeFake) -> None:
    instances = client(fake, "InstancesClient")
    where = {"project": "shop-prod", "zone": "us-west1-a"}
    instances.insert_unary(request={**where, "instance_resource": {"name": "vm"}})
    instances.stop_unary(request={**where, "instance": "vm"})
    fake.quota("CPUS", 2, region="us-west1")  # web-usw1's and ilb-b's instances hold 4 vCPUs
    quota = instances.start_unary(request={**where, "instance": "vm"})
    assert (quota.http_error_status_code, quota.http_error_message) == (403, "FORBIDDEN")
    (error,) = quota.error.errors
    assert error.code == "QUOTA_EXCEEDED"
    assert error.error_details[0].quota_info.metric_name == "compute.googleapis.com/cpus"
    fake.quota("CPUS", None, region="us-west1")
    fake.stockout("us-west1-a")
    stockout = instances.start_unary(request={**where, "instance": "vm"})
    assert (stockout.http_error_status_code, stockout.http_error_message) == (503, "SERVICE UNAVAILABLE")
    assert stockout.error.errors[0].code == "ZONE_RESOURCE_POOL_EXHAUSTED"
    fake.stockout("us-west1-a", False)
    fake.fail("POST", r"/instances/vm/start$", operation_error="INVALID_FIELD_VALUE", message="no")
    other = instances.start_unary(request={**where, "instance": "vm"})
    assert (other.http_error_status_code, other.http_error_message) == (400, "BAD REQUEST")


# -- 3. time: instances boot, groups stabilise, health follows, autoscalers move groups ------------


def test_an_instance_provisions_and_stages_before_it_runs(fake: ComputeFake, time: Clock) -> None:
    instances = client(fake, "InstancesClient")
    where = {"project": "shop-prod", "zone": "us-west1-a", "instance": "vm"}
    instances.insert_unary(
        request={"project": "shop-prod", "zone": "us-west1-a", "instance_resource": {"name": "vm"}}
    )

    def status() -> str:
        return str(instances.get(request=where).status)

    assert status() == "PROVISIONING"
    time.pass_(plus=clock.seconds(BOOT) * 0.6)
    assert status() == "STAGING"
    time.pass_(plus=clock.seconds(BOOT) * 0.5)
    assert status() == "RUNNING"
    instances.stop_unary(request=where)
    assert status() == "TERMINATED"
    instances.start_unary(request=where)
    assert status() == "PROVISIONING"  # a start boots it again
    time.pass_(BOOT)
    assert status() == "RUNNING"


def test_a_resized_group_is_stable_once_its_instances_run_and_healthy_a_threshold_later(
    fake: ComputeFake, time: Clock
) -> None:
    ok(fake, "POST", "global/backendServices", {"name": "web", "backends": [{"group": group("web-usw1")}]})
    managers = client(fake, "RegionInstanceGroupManagersClient")
    where = {"project": "shop-prod", "region": "us-west1", "instance_group_manager": "web-usw1"}
    managers.resize_unary(request={**where, "size": 3})

    def look() -> tuple[bool, int, int, list[str]]:
        found = managers.get(request=where)
        actions = [m.current_action for m in managers.list_managed_instances(request=where)]
        return found.status.is_stable, found.current_actions.creating, found.current_actions.none, actions

    def healthy() -> list[str]:
        answer = client(fake, "BackendServicesClient").get_health(
            request={
                "project": "shop-prod",
                "backend_service": "web",
                "resource_group_reference_resource": {"group": group("web-usw1")},
            }
        )
        return sorted(h.health_state for h in answer.health_status)

    assert look() == (False, 2, 1, ["NONE", "CREATING", "CREATING"])
    assert healthy() == ["HEALTHY", "UNHEALTHY", "UNHEALTHY"]
    time.pass_(plus=clock.seconds(BOOT) - 0.01)
    assert look()[:3] == (False, 2, 1)
    time.pass_(plus=0.02)
    assert look() == (True, 0, 3, ["NONE", "NONE", "NONE"])
    assert healthy() == ["HEALTHY", "UNHEALTHY", "UNHEALTHY"]  # running, not yet past its checks
    time.pass_(HEALTH)
    assert healthy() == ["HEALTHY", "HEALTHY", "HEALTHY"]


def test_new_autoscaler_limits_move_the_group_to_its_recommended_size_over_time(
    fake: ComputeFake, time: Clock
) -> None:
    target = f"projects/shop-prod/{WEST}/instanceGroupManagers/web-usw1"
    policy = {"minNumReplicas": 1, "maxNumReplicas": 2}
    ok(
        fake,
        "POST",
        f"{WEST}/autoscalers",
        {"name": "web-usw1", "target": target, "autoscalingPolicy": policy},
    )
    autoscalers = client(fake, "RegionAutoscalersClient")
    where = {"project": "shop-prod", "region": "us-west1"}
    autoscalers.patch_unary(
        request={
            **where,
            "autoscaler": "web-usw1",
            "autoscaler_resource": {
                "name": "web-usw1",
                "autoscaling_policy": {"min_num_replicas": 3, "max_num_replicas": 10},
            },
        }
    )
    assert autoscalers.get(request={**where, "autoscaler": "web-usw1"}).recommended_size == 3
    managers = client(fake, "RegionInstanceGroupManagersClient")
    found = managers.get(request={**where, "instance_group_manager": "web-usw1"})
    assert (found.target_size, found.status.is_stable, found.current_actions.creating) == (3, False, 2)
    time.pass_(BOOT)
    found = managers.get(request={**where, "instance_group_manager": "web-usw1"})
    assert (found.target_size, found.status.is_stable, found.current_actions.none) == (3, True, 3)
    # a lower maximum shrinks it; mode OFF leaves it where it is, recommending all the same
    ok(
        fake,
        "PATCH",
        f"{WEST}/autoscalers?autoscaler=web-usw1",
        {"autoscalingPolicy": {"mode": "OFF", "minNumReplicas": 1, "maxNumReplicas": 2}},
    )
    assert managers.get(request={**where, "instance_group_manager": "web-usw1"}).target_size == 3
    assert autoscalers.get(request={**where, "autoscaler": "web-usw1"}).recommended_size == 2
    ok(fake, "PATCH", f"{WEST}/autoscalers?autoscaler=web-usw1", {"autoscalingPolicy": {"mode": "ON"}})
    found = managers.get(request={**where, "instance_group_manager": "web-usw1"})
    assert (found.target_size, found.status.is_stable) == (2, True)


def test_settle_makes_what_was_asked_until_then_arrive(fake: ComputeFake, time: Clock) -> None:
    ok(fake, "POST", "zones/us-west1-a/instances", {"name": "vm"})
    assert ok(fake, "GET", "zones/us-west1-a/instances/vm")["status"] == "PROVISIONING"
    fake.settle()
    assert ok(fake, "GET", "zones/us-west1-a/instances/vm")["status"] == "RUNNING"
    time.pass_(plus=0.1)
    ok(fake, "POST", "zones/us-west1-a/instances", {"name": "later"})  # asked after: boots
    assert ok(fake, "GET", "zones/us-west1-a/instances/later")["status"] == "PROVISIONING"


def test_a_slow_health_fault_holds_a_groups_new_instances_unhealthy_that_much_longer(
    fake: ComputeFake, time: Clock
) -> None:
    ok(fake, "POST", "global/backendServices", {"name": "web", "backends": [{"group": group("web-usw1")}]})
    fake.slow_health("web-usw1", 120)  # two more minutes at the clouds' speed
    managers = client(fake, "RegionInstanceGroupManagersClient")
    where = {"project": "shop-prod", "region": "us-west1", "instance_group_manager": "web-usw1"}
    managers.resize_unary(request={**where, "size": 2})
    managers.get(request=where)  # the group acts on its new size when it is next looked at

    def healthy() -> list[str]:
        answer = client(fake, "BackendServicesClient").get_health(
            request={
                "project": "shop-prod",
                "backend_service": "web",
                "resource_group_reference_resource": {"group": group("web-usw1")},
            }
        )
        return sorted(h.health_state for h in answer.health_status)

    time.pass_(plus=clock.seconds(BOOT) + clock.seconds(HEALTH) + 0.01)
    assert healthy() == ["HEALTHY", "UNHEALTHY"]  # the one there before is healthy, the new one is late
    time.pass_(plus=120 / clock.speed())
    assert healthy() == ["HEALTHY", "HEALTHY"]
