"""The GCP half of the sandbox: the Compute Engine fake, and the declared resources created in
it through the real google-cloud-compute client (and read back the same way)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from failover.errors import SandboxError
from failover.providers.gcp._client import (
    ANONYMOUS_CREDENTIALS,
    new_client,
    operation_done,
    operation_errors,
    operations_of,
    relative,
)
from failover.sandbox.compute_fake import ComputeFake
from failover.sandbox.spec import BackendSpec, GcpSandbox

JsonDict = dict[str, Any]


class FakeSandbox:
    """The compute fake on 127.0.0.1, for the duration of a ``with`` block."""

    def __init__(self) -> None:
        self.fake = ComputeFake()

    def __enter__(self) -> FakeSandbox:
        self.fake.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.fake.stop()

    @property
    def endpoint(self) -> str:
        return self.fake.endpoint

    def overrides(self) -> dict[str, str]:
        """The settings that point every GCP site at the fake, with anonymous credentials."""
        return {"endpoint": self.fake.endpoint, "credentials": ANONYMOUS_CREDENTIALS}


class Builder:
    """Creates the declared GCP resources through the real client, and reads their state back."""

    def __init__(self, placements: Mapping[str, tuple[str, str]], fake: ComputeFake) -> None:
        self.placements = dict(placements)  # site -> (project, region)
        self.fake = fake
        self._clients: dict[str, Any] = {}

    def client(self, kind: str) -> Any:
        if kind not in self._clients:
            from google.auth.credentials import AnonymousCredentials

            anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]
            self._clients[kind] = new_client(kind, anonymous, self.fake.endpoint)
        return self._clients[kind]

    def _scope(self, site: str, zone: str | None) -> tuple[JsonDict, str]:
        project, region = self.placements[site]
        if zone:
            return {"project": project, "zone": zone}, f"projects/{project}/zones/{zone}"
        return {"project": project, "region": region}, f"projects/{project}/regions/{region}"

    def _group_url(self, backend: BackendSpec) -> str:
        _, path = self._scope(backend.site, backend.zone)
        return f"{path}/instanceGroups/{backend.group}"

    def _wait(self, operation: Any, what: str) -> None:
        kind, scope = operations_of(operation)
        project = relative(operation.self_link).split("/")[1]
        for _ in range(100):
            if operation_done(operation):
                break
            operation = self.client(kind).wait(
                request={"project": project, "operation": operation.name, **scope}, timeout=30
            )
        errors = [f"{e.code}: {e.message}" for e in operation_errors(operation)]
        if not operation_done(operation) or errors:
            raise SandboxError(f"the GCP sandbox could not create {what}: {'; '.join(errors) or 'not done'}")

    # --- create ------------------------------------------------------------------------------

    def create(self, spec: GcpSandbox) -> None:
        from google.api_core.exceptions import GoogleAPICallError

        try:
            self._create(spec)
        except GoogleAPICallError as exc:
            raise SandboxError(f"the GCP sandbox could not create a declared resource: {exc}") from exc

    def _create(self, spec: GcpSandbox) -> None:
        for declared in spec.regions:
            project, name = self.placements[declared.site]
            self.fake.set_region(
                project, name, status=declared.status, instances_quota=declared.instances_quota
            )
        for group in spec.instance_groups:
            scope, _ = self._scope(group.site, group.zone)
            kind = "InstanceGroupManagersClient" if group.zone else "RegionInstanceGroupManagersClient"
            template = f"projects/{scope['project']}/global/instanceTemplates/{group.name}"
            op = self.client(kind).insert_unary(
                request={
                    **scope,
                    "instance_group_manager_resource": {
                        "name": group.name,
                        "base_instance_name": group.name,
                        "instance_template": template,
                        "target_size": group.size,
                    },
                }
            )
            self._wait(op, f"instance group {group.name}")
        for autoscaler in spec.autoscalers:
            scope, path = self._scope(autoscaler.site, autoscaler.zone)
            kind = "AutoscalersClient" if autoscaler.zone else "RegionAutoscalersClient"
            op = self.client(kind).insert_unary(
                request={
                    **scope,
                    "autoscaler_resource": {
                        "name": autoscaler.name,
                        "target": f"{path}/instanceGroupManagers/{autoscaler.group}",
                        "autoscaling_policy": {
                            "min_num_replicas": autoscaler.min,
                            "max_num_replicas": autoscaler.max,
                            "mode": autoscaler.mode,
                        },
                    },
                }
            )
            self._wait(op, f"autoscaler {autoscaler.name}")
        for service in spec.backend_services:
            body: JsonDict = {
                "name": service.name,
                "backends": [
                    {
                        "group": self._group_url(b),
                        "failover": b.failover,
                        # an INTERNAL service (a regional one's default) takes no capacityScaler
                        **({"capacity_scaler": b.capacity} if service.scope == "global" else {}),
                    }
                    for b in service.backends
                ],
            }
            if service.failover_policy is not None:
                body["failover_policy"] = service.failover_policy.model_dump()
            project, region = self.placements[service.site]
            if service.scope == "global":
                op = self.client("BackendServicesClient").insert_unary(
                    request={"project": project, "backend_service_resource": body}
                )
            else:
                op = self.client("RegionBackendServicesClient").insert_unary(
                    request={"project": project, "region": region, "backend_service_resource": body}
                )
            self._wait(op, f"backend service {service.name}")
        for rule in spec.forwarding_rules:
            project, region = self.placements[rule.site]
            body = {"name": rule.name, "target": f"projects/{project}/{rule.target.lstrip('/')}"}
            self.fake.declare_target(body["target"])  # the fake does not serve target resources
            if rule.scope == "global":
                op = self.client("GlobalForwardingRulesClient").insert_unary(
                    request={"project": project, "forwarding_rule_resource": body}
                )
            else:
                op = self.client("ForwardingRulesClient").insert_unary(
                    request={"project": project, "region": region, "forwarding_rule_resource": body}
                )
            self._wait(op, f"forwarding rule {rule.name}")
        instances = self.client("InstancesClient")
        for instance in spec.instances:
            project, _ = self.placements[instance.site]
            where = {"project": project, "zone": instance.zone}
            op = instances.insert_unary(request={**where, "instance_resource": {"name": instance.name}})
            self._wait(op, f"instance {instance.name}")
            if instance.status == "TERMINATED":
                self._wait(instances.stop_unary(request={**where, "instance": instance.name}), instance.name)
        self.fake.settle()  # what the sandbox declares is there, booted and healthy, when a drill starts

    # --- state -------------------------------------------------------------------------------

    def state(self, spec: GcpSandbox) -> JsonDict:
        """What a failover changes, for each declared resource: group sizes, autoscaler limits,
        backend capacities and failover settings, forwarding targets, instance states."""
        out: JsonDict = {}
        for group in spec.instance_groups:
            scope, _ = self._scope(group.site, group.zone)
            kind = "InstanceGroupManagersClient" if group.zone else "RegionInstanceGroupManagersClient"
            found = self.client(kind).get(request={**scope, "instance_group_manager": group.name})
            out[f"gcp group {group.name}"] = found.target_size
        for autoscaler in spec.autoscalers:
            scope, _ = self._scope(autoscaler.site, autoscaler.zone)
            kind = "AutoscalersClient" if autoscaler.zone else "RegionAutoscalersClient"
            policy = (
                self.client(kind).get(request={**scope, "autoscaler": autoscaler.name}).autoscaling_policy
            )
            out[f"gcp autoscaler {autoscaler.name}"] = [policy.min_num_replicas, policy.max_num_replicas]
        for service in spec.backend_services:
            project, region = self.placements[service.site]
            if service.scope == "global":
                found = self.client("BackendServicesClient").get(
                    request={"project": project, "backend_service": service.name}
                )
            else:
                found = self.client("RegionBackendServicesClient").get(
                    request={"project": project, "region": region, "backend_service": service.name}
                )
            for b in found.backends:
                name = relative(b.group).split("/", 2)[-1]
                out[f"gcp backend {service.name} {name}"] = [round(b.capacity_scaler, 6), bool(b.failover)]
            if service.scope == "regional":
                policy = found.failover_policy
                out[f"gcp failover policy {service.name}"] = [
                    round(policy.failover_ratio, 6),
                    policy.drop_traffic_if_unhealthy,
                    policy.disable_connection_drain_on_failover,
                ]
        for rule in spec.forwarding_rules:
            project, region = self.placements[rule.site]
            if rule.scope == "global":
                found = self.client("GlobalForwardingRulesClient").get(
                    request={"project": project, "forwarding_rule": rule.name}
                )
            else:
                found = self.client("ForwardingRulesClient").get(
                    request={"project": project, "region": region, "forwarding_rule": rule.name}
                )
            out[f"gcp forwarding rule {rule.name}"] = relative(found.target)
        for instance in spec.instances:
            project, _ = self.placements[instance.site]
            found = self.client("InstancesClient").get(
                request={"project": project, "zone": instance.zone, "instance": instance.name}
            )
            out[f"gcp instance {instance.zone}/{instance.name}"] = found.status
        return out
