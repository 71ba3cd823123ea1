"""A fake of the Compute Engine REST API (the methods failover uses), on 127.0.0.1, held to
Compute Engine's own reference.

There is no emulator for Compute Engine. This fake serves what the GCP provider and the sandbox
call, with the shapes google-cloud-compute sends and parses: managed instance groups (zonal and
regional: insert, get, resize, listManagedInstances), autoscalers (insert, get, patch), backend
services (global and regional: insert, get, patch, update, getHealth), forwarding rules (insert,
get, setTarget), instances (insert, get, start, stop), regions (get, with their quotas),
zone/region/global operations (get, wait) and Resource Manager's ``projects.testIamPermissions``.
Every request is checked against Google's discovery documents (``compute_discovery``) by the
front end (``compute_frontend``, which also serves HTTP and runs operations), then against the
rules Compute Engine enforces (``compute_errors``: names and request ids; ``compute_quotas``:
quotas and stockouts; ``compute_rules``: backend services, fingerprints, forwarding rule
targets, permission names), with Compute Engine's error shapes and statuses (``compute_errors``).

Where the fake's parts are: its store and shared helpers (``compute_store``), instances and their
time (``compute_instances``), managed instance groups and autoscalers (``compute_groups``),
backend services and forwarding rules (``compute_balancing``); this module assembles them with
the controls below, regions and ``testIamPermissions``.

Things take the time they take in the cloud (``clock``: ``instance_boot`` then
``health_threshold``, at the sandbox's speed), worked out from timestamps when looked at: a new
or started instance is PROVISIONING, then STAGING, then RUNNING; its backend services see it
HEALTHY a threshold later. A managed instance group is not stable while it has instances to
create or booting (``currentActions.creating``; CREATING in listManagedInstances, then NONE). An
autoscaler that is on moves its group's target size to its ``recommendedSize`` (its limits
applied; there is no load) when the group is looked at. ``settle()``: what was asked until then
has got there (the world a sandbox declares).

Faults: ``fail`` (an HTTP error, or an operation DONE in error), ``stockout(zone)`` (no room for
new or started instances: ``ZONE_RESOURCE_POOL_EXHAUSTED``), ``quota(metric, limit)`` (``CPUS``,
``N2_CPUS``, ``INSTANCES``... per project and region), ``set_region``, ``set_unhealthy``,
``deny`` (testIamPermissions). A resize is accepted whatever the faults; an instance that cannot
be created stays CREATING, with Compute Engine's error in its ``lastAttempt``, retried at each
look; a regional group places its instances in zones a, b and c of its region in turn.

Not modelled: instance templates and health checks (their URLs are only checked for form);
target proxies, pools and instances, which exist once ``declare_target`` says so; load.
"""

from __future__ import annotations

from typing import ClassVar

from failover.providers.gcp._client import relative
from failover.sandbox.compute_balancing import LoadBalancing
from failover.sandbox.compute_errors import ApiError, JsonDict
from failover.sandbox.compute_frontend import Call, Fault
from failover.sandbox.compute_quotas import DEFAULT_INSTANCES_QUOTA, DEFAULT_MACHINE_TYPE, STOCKOUT
from failover.sandbox.compute_rules import check_permissions

__all__ = ["DEFAULT_INSTANCES_QUOTA", "DEFAULT_MACHINE_TYPE", "STOCKOUT", "ApiError", "ComputeFake", "Fault"]


class ComputeFake(LoadBalancing):
    """The fake: ``start()`` it, point clients at ``endpoint``, ``stop()`` it.

    ``operation_polls``: how many times an operation is seen (get or wait) before it is DONE;
    ``settle_polls``: how many looks at a resized group before it acts on its new size;
    ``now``: its clock (``clock.now``; durations are ``clock.seconds``, at the sandbox's speed).
    """

    handlers: ClassVar[dict[tuple[str, str], str]] = {  # (resource, verb) -> its handler
        ("regions", "get"): "_region_get",
        ("instancegroupmanagers", "insert"): "_igm_insert",
        ("instancegroupmanagers", "get"): "_igm_get",
        ("instancegroupmanagers", "resize"): "_igm_resize",
        ("instancegroupmanagers", "listManagedInstances"): "_igm_list",
        ("autoscalers", "insert"): "_autoscaler_insert",
        ("autoscalers", "get"): "_autoscaler_get",
        ("autoscalers", "patch"): "_autoscaler_patch",
        ("backendservices", "insert"): "_bs_insert",
        ("backendservices", "get"): "_bs_get",
        ("backendservices", "patch"): "_bs_change",
        ("backendservices", "update"): "_bs_change",
        ("backendservices", "getHealth"): "_bs_health",
        ("forwardingrules", "insert"): "_fr_insert",
        ("forwardingrules", "get"): "_fr_get",
        ("forwardingrules", "setTarget"): "_fr_set_target",
        ("instances", "insert"): "_instance_insert",
        ("instances", "get"): "_instance_get",
        ("instances", "start"): "_instance_power",
        ("instances", "stop"): "_instance_power",
        ("operations", "get"): "_operation_get",
        ("operations", "wait"): "_operation_get",
        ("projects", "testIamPermissions"): "_test_permissions",
    }

    # -- control: faults, regions, permissions, time -----------------------------------------

    def deny(self, *permissions: str) -> None:
        """Permissions testIamPermissions will say the caller lacks (every other one is held)."""
        with self._lock:
            self._denied.update(permissions)

    def slow_health(self, group: str, seconds: float | str) -> None:
        """New instances of the group named ``group`` pass their health checks ``seconds`` (at the
        clouds' speed) later than others: a slow start, a warming cache (``slow-health:GROUP:SECONDS``)."""
        with self._lock:
            self._slow_health[group] = float(seconds)

    def set_unhealthy(self, instance: str, unhealthy: bool = True) -> None:
        """Make an instance (``projects/P/zones/Z/instances/N``) fail its health checks."""
        with self._lock:
            (self._unhealthy.add if unhealthy else self._unhealthy.discard)(relative(instance))

    def set_machine_type(self, group: str, machine_type: str) -> None:
        """The machine type of the instances a group (``projects/P/zones/Z/instanceGroupManagers/G``
        or its regional form) creates from now on (its template's, which the fake does not keep)."""
        with self._lock:
            self._machine_types[relative(group)] = machine_type

    def declare_target(self, target: str) -> None:
        """A forwarding rule target that exists (``projects/P/regions/R/targetPools/N``,
        ``projects/P/global/targetHttpProxies/N``...): the fake does not serve them."""
        with self._lock:
            self._targets.add(relative(target))

    def settle(self) -> None:
        """Everything asked for until now has got there: instances booted and healthy."""
        with self._lock:
            self._settled_before = self.now()

    # -- regions, permissions ------------------------------------------------------------

    def _region_get(self, call: Call) -> JsonDict:
        return self._region_body(call.args["project"], call.args["name"], self.url)

    def _test_permissions(self, call: Call) -> JsonDict:
        held = [p for p in check_permissions(call.body.get("permissions", [])) if p not in self._denied]
        return {"permissions": held} if held else {}
