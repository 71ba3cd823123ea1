"""A fake of the Compute Engine REST API (the methods failover uses), on 127.0.0.1, held to
Compute Engine's own reference.

There is no emulator for Compute Engine. This fake serves what the GCP provider and the sandbox
call, with the shapes google-cloud-compute sends and parses: managed instance groups (zonal and
regional: insert, get, resize, listManagedInstances), autoscalers (insert, get, patch), backend
services (global and regional: insert, get, patch, update, getHealth), forwarding rules (insert,
get, setTarget), instances (insert, get, start, stop), regions (get, with their quotas),
zone/region/global operations (get, wait) and Resource Manager's ``projects.testIamPermissions``.
Every request is checked against Google's discovery documents by the front end
(``compute_discovery``, which also serves HTTP and runs operations), then against the rules
Compute Engine enforces (``compute_rules``: names, quotas and stockouts, backend services,
fingerprints, forwarding rule targets, permission names), with Compute Engine's error shapes
and statuses.

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

import base64
import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from failover.providers.gcp._client import relative
from failover.sandbox import clock
from failover.sandbox.compute_discovery import Call, Fault, Frontend, JsonDict, OperationError, merge
from failover.sandbox.compute_rules import (
    DEFAULT_INSTANCES_QUOTA,
    DEFAULT_MACHINE_TYPE,
    STOCKOUT,
    ApiError,
    Capacity,
    check_backend_service,
    check_fingerprint,
    check_name,
    check_permissions,
    check_policy,
    check_target,
    default_scheme,
    invalid,
    not_found,
    passthrough,
)

__all__ = ["DEFAULT_INSTANCES_QUOTA", "DEFAULT_MACHINE_TYPE", "STOCKOUT", "ApiError", "ComputeFake", "Fault"]

_OUTPUT_ONLY = ("kind", "id", "selfLink", "creationTimestamp", "fingerprint", "region")


@dataclass
class _Pending:
    """An instance of a group that could not be created yet: its path and why."""

    path: str
    error: JsonDict


@dataclass
class _Group:
    """What a managed instance group holds besides its JSON: its instances, those it could not
    create yet, and how many more looks it takes to act on a new target size."""

    members: list[str] = field(default_factory=list)  # instance resource paths
    created: int = 0
    settle_left: int = 0
    pending: list[_Pending] = field(default_factory=list)


def _fingerprint(resource: JsonDict) -> str:
    content = json.dumps({k: v for k, v in resource.items() if k != "fingerprint"}, sort_keys=True)
    return base64.b64encode(hashlib.sha256(content.encode()).digest()[:8]).decode()


class ComputeFake(Frontend, Capacity):
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

    def __init__(
        self, *, operation_polls: int = 2, settle_polls: int = 1, now: Callable[[], float] = clock.now
    ) -> None:
        Frontend.__init__(self, operation_polls)
        Capacity.__init__(self)
        self.settle_polls = settle_polls
        self.now = now
        self._resources: dict[str, JsonDict] = {}  # projects/P/... -> JSON
        self._groups: dict[str, _Group] = {}
        self._boots: dict[str, float] = {}  # instance path -> when it was asked to run
        self._settled_before = float("-inf")
        self._targets: set[str] = set()
        self._denied: set[str] = set()
        self._unhealthy: set[str] = set()
        self._slow_health: dict[str, float] = {}  # group name -> seconds late, at the clouds' speed
        self._group_of: dict[str, str] = {}  # instance path -> the name of the group that made it
        self._machine_types: dict[str, str] = {}  # group path -> machine type of its new instances

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

    # -- helpers -------------------------------------------------------------------------

    def _get(self, path: str) -> JsonDict:
        found = self._resources.get(path)
        if found is None:
            raise not_found(path)
        return found

    def _path(self, call: Call, collection: str) -> str:
        return f"projects/{call.args['project']}/{call.args['loc']}/{collection}/{call.args['name']}"

    def _region_instances(self, project: str, region: str) -> list[JsonDict]:
        prefix = f"projects/{project}/zones/{region}-"
        return [r for p, r in self._resources.items() if p.startswith(prefix) and "/instances/" in p]

    def _new(self, call: Call, collection: str, what: str) -> tuple[str, str, str, str]:
        """What every insert checks: the location exists, the name is valid and not taken.
        Gives the project, location, name and path of the new resource."""
        project, loc = call.args["project"], call.args["loc"]
        if loc != "global":
            self._location(project, loc)
        name = check_name(call.body.get("name"), what)
        path = f"projects/{project}/{loc}/{collection}/{name}"
        if path in self._resources:
            raise ApiError(409, "alreadyExists", f"The resource '{path}' already exists")
        return project, loc, name, path

    # -- time ----------------------------------------------------------------------------

    def _arrived(self, path: str, *durations: str) -> bool:
        """Whether an instance asked to run got past ``durations`` (clock names) since."""
        started = self._boots.get(path, float("-inf"))
        return started <= self._settled_before or self.now() - started >= sum(map(clock.seconds, durations))

    def _status(self, path: str) -> str:
        """An instance's status now: as stored (TERMINATED), or on its way to RUNNING."""
        stored = str(self._resources[path]["status"])
        if stored != "RUNNING" or self._arrived(path, "instance_boot"):
            return stored
        provisioning = self.now() - self._boots[path] < clock.seconds("instance_boot") / 2
        return "PROVISIONING" if provisioning else "STAGING"

    def _healthy(self, path: str) -> bool:
        slow = self._slow_health.get(self._group_of.get(path, ""), 0.0) / clock.speed()
        started = self._boots.get(path, float("-inf"))
        late = started > self._settled_before and self.now() - started < slow + sum(
            map(clock.seconds, ("instance_boot", "health_threshold"))
        )
        return (
            self._status(path) == "RUNNING"
            and self._arrived(path, "instance_boot", "health_threshold")
            and not late
            and path not in self._unhealthy
        )

    # -- managed instance groups ---------------------------------------------------------

    def _igm_insert(self, call: Call) -> JsonDict:
        project, loc, name, path = self._new(call, "instanceGroupManagers", "instance group manager")
        template = call.body.get("instanceTemplate")
        if not isinstance(template, str) or "instanceTemplates/" not in template:
            raise invalid("resource.instanceTemplate", template, "Must be an instance template URL")
        size = int(call.body.get("targetSize") or 0)
        if size < 0:
            raise invalid("resource.targetSize", size, "Must be a non-negative integer")

        def effect() -> None:
            self._resources[path] = {
                "kind": "compute#instanceGroupManager",
                "name": name,
                "baseInstanceName": call.body.get("baseInstanceName", name),
                "instanceTemplate": template,
                "instanceGroup": self.url(f"projects/{project}/{loc}/instanceGroups/{name}"),
                "targetSize": size,
                "status": {"isStable": True},
                "currentActions": {"none": 0, "creating": 0, "deleting": 0},
                loc.split("/")[0][:-1]: self.url(f"projects/{project}/{loc}"),
                "selfLink": self.url(path),
            }
            self._groups[path] = _Group()
            self._converge(path)

        return self._operation(call, path, "insert", effect)

    def _igm(self, call: Call) -> str:
        path = self._path(call, "instanceGroupManagers")
        self._get(path)
        self._look(path)
        return path

    def _igm_get(self, call: Call) -> JsonDict:
        return self._resources[self._igm(call)]

    def _look(self, path: str) -> None:
        """One look at a group: its autoscaler acts, a resize is acted on once enough looks were
        made; after that, each look tries again to create the instances it could not (Compute
        Engine retries); then what it is doing, from its instances' states."""
        self._autoscale(path)
        group = self._groups[path]
        if group.settle_left > 0:
            group.settle_left -= 1
            if group.settle_left == 0:
                self._converge(path)
        elif group.pending:
            self._converge(path)
        if group.settle_left == 0:
            igm = self._resources[path]
            booting = sum(1 for m in group.members if self._status(m) != "RUNNING")
            creating = len(group.pending) + booting
            igm["status"]["isStable"] = creating == 0
            igm["currentActions"] = {
                "none": len(group.members) - booting,
                "creating": creating,
                "deleting": 0,
            }

    def _autoscale(self, path: str) -> None:
        """An autoscaler that is on moves the group's target size to its recommended size: the
        size within its limits (ONLY_SCALE_OUT: only up to it)."""
        igm = self._resources[path]
        url = igm["status"].get("autoscaler")
        if not url:
            return
        autoscaler = self._resources[relative(url)]
        policy, size = autoscaler["autoscalingPolicy"], igm["targetSize"]
        recommended = max(policy.get("minNumReplicas", 0), min(policy["maxNumReplicas"], size))
        autoscaler["recommendedSize"] = recommended
        mode = policy.get("mode", "ON")
        if mode in ("ONLY_SCALE_OUT", "ONLY_UP"):
            recommended = max(size, recommended)
        if mode != "OFF" and recommended != size:
            self._set_target(path, recommended)

    def _igm_resize(self, call: Call) -> JsonDict:
        path = self._igm(call)
        size = int(call.query["size"])
        if size < 0:
            raise invalid("size", size, "Must be a non-negative integer")
        resize = "compute.instanceGroupManagers.resize"
        return self._operation(call, path, resize, lambda: self._set_target(path, size))

    def _set_target(self, path: str, size: int) -> None:
        igm, group = self._resources[path], self._groups[path]
        igm["targetSize"] = size
        if len(group.members) == size and not group.pending:
            return
        igm["status"]["isStable"] = False
        clock.arrives(f"gcp:{path}", "instance_boot")  # stable once its instances run
        delta = size - len(group.members)
        igm["currentActions"].update(
            creating=max(0, delta), deleting=max(0, -delta), none=min(size, len(group.members))
        )
        group.settle_left = max(1, self.settle_polls)

    def _converge(self, path: str) -> None:
        """Create or delete instances so the group holds its target size, as quotas and zones
        allow: the instances it could not create are tried again first, in the zones they were
        given; an instance that still cannot be created stays pending, with why. A new instance
        boots (``_status``)."""
        igm, group = self._resources[path], self._groups[path]
        kind, loc = path.split("/")[2:4]
        project = path.split("/")[1]
        region = loc if kind == "regions" else loc.rsplit("-", 1)[0]
        target = igm["targetSize"]
        while group.pending and len(group.members) + len(group.pending) > target:
            group.pending.pop()  # not created yet: the first to go
        while len(group.members) > target:
            gone = group.members.pop()
            self._resources.pop(gone, None)
            self._boots.pop(gone, None)
        slots, group.pending = [p.path for p in group.pending], []
        while len(group.members) + len(slots) < target:
            group.created += 1
            zone = loc if kind == "zones" else f"{region}-{'abc'[group.created % 3]}"
            suffix = hashlib.sha1(f"{path}#{group.created}".encode()).hexdigest()[:4]
            slots.append(f"projects/{project}/zones/{zone}/instances/{igm['baseInstanceName']}-{suffix}")
        machine_type = self._machine_types.get(path, DEFAULT_MACHINE_TYPE)
        for instance in slots:
            error = self._cannot_run(project, instance.split("/")[3], machine_type, new=True)
            if error is not None:
                group.pending.append(_Pending(instance, error))
                continue
            self._resources[instance] = self._instance_body(instance, machine_type)
            self._group_of[instance] = path.rsplit("/", 1)[-1]
            group.members.append(instance)

    def _igm_list(self, call: Call) -> JsonDict:
        group = self._groups[self._igm(call)]
        managed: list[JsonDict] = []
        for p in group.members:
            status = self._status(p)
            managed.append(
                {
                    "instance": self.url(p),
                    "name": p.rsplit("/", 1)[-1],
                    "id": self._resources[p]["id"],
                    "instanceStatus": status,
                    "currentAction": "NONE" if status == "RUNNING" else "CREATING",
                }
            )
        for pending in group.pending:  # the URL and name exist before the instance does
            managed.append(
                {
                    "instance": self.url(pending.path),
                    "name": pending.path.rsplit("/", 1)[-1],
                    "currentAction": "CREATING",
                    "lastAttempt": {"errors": {"errors": [copy.deepcopy(pending.error)]}},
                }
            )
        return {"managedInstances": managed}

    # -- autoscalers ---------------------------------------------------------------------

    def _autoscaler_insert(self, call: Call) -> JsonDict:
        project, loc, name, path = self._new(call, "autoscalers", "autoscaler")
        target = relative(str(call.body.get("target", "")))
        if target not in self._resources or "/instanceGroupManagers/" not in target:
            raise invalid("resource.target", call.body.get("target"), "Must be a managed instance group URL")
        if not target.startswith(f"projects/{project}/{loc}/"):
            raise invalid("resource.target", call.body.get("target"), f"Must be a group in {loc}")
        policy = call.body.get("autoscalingPolicy")
        check_policy(policy)
        assert isinstance(policy, dict)

        def effect() -> None:
            self._resources[path] = {
                "kind": "compute#autoscaler",
                "name": name,
                "target": self.url(target),
                "autoscalingPolicy": {"mode": "ON", "minNumReplicas": 0, **copy.deepcopy(policy)},
                "status": "ACTIVE",
                loc.split("/")[0][:-1]: self.url(f"projects/{project}/{loc}"),
                "selfLink": self.url(path),
            }
            self._resources[target]["status"]["autoscaler"] = self.url(path)

        return self._operation(call, path, "insert", effect)

    def _autoscaler_get(self, call: Call) -> JsonDict:
        found = self._get(self._path(call, "autoscalers"))
        self._autoscale(relative(found["target"]))  # its recommendedSize, as of now
        return found

    def _autoscaler_patch(self, call: Call) -> JsonDict:
        name = call.query.get("autoscaler") or call.body.get("name")
        path = f"projects/{call.args['project']}/{call.args['loc']}/autoscalers/{name}"
        current = self._get(path)
        if call.body.get("name", name) != name:
            raise invalid("resource.name", call.body.get("name"), f"Must be {name}")
        merged = copy.deepcopy(current)
        merge(merged, {k: v for k, v in call.body.items() if k in ("autoscalingPolicy", "description")})
        check_policy(merged["autoscalingPolicy"])

        def effect() -> None:  # the group follows when it is next looked at (_autoscale)
            current["autoscalingPolicy"] = merged["autoscalingPolicy"]

        return self._operation(call, path, "patch", effect)

    # -- backend services ----------------------------------------------------------------

    def _group_exists(self, group: str) -> bool:
        return group.replace("/instanceGroups/", "/instanceGroupManagers/") in self._resources

    def _bs_store(self, path: str, loc: str, service: JsonDict) -> None:
        """Keep a backend service as Compute Engine returns it: its backends' defaults (an
        INTERNAL one's have no capacityScaler, a passthrough one's balance by CONNECTION), and
        a new fingerprint."""
        scheme = service["loadBalancingScheme"]
        for backend in service.get("backends", []):
            if scheme != "INTERNAL":
                backend.setdefault("capacityScaler", 1.0)
            backend.setdefault("balancingMode", "CONNECTION" if passthrough(loc, scheme) else "UTILIZATION")
        service["fingerprint"] = _fingerprint(service)
        self._resources[path] = service

    def _bs_insert(self, call: Call) -> JsonDict:
        project, loc, _, path = self._new(call, "backendServices", "backend service")
        service = {
            "kind": "compute#backendService",
            "loadBalancingScheme": default_scheme(loc),
            **{k: copy.deepcopy(v) for k, v in call.body.items() if k not in _OUTPUT_ONLY},
            "selfLink": self.url(path),
            **({} if loc == "global" else {"region": self.url(f"projects/{project}/{loc}")}),
        }
        check_backend_service(loc, service, self._group_exists)
        return self._operation(call, path, "insert", lambda: self._bs_store(path, loc, service))

    def _bs_get(self, call: Call) -> JsonDict:
        return self._get(self._path(call, "backendServices"))

    def _bs_change(self, call: Call) -> JsonDict:
        """patch (a JSON merge patch) or update (the whole resource), with the fingerprint."""
        path, loc = self._path(call, "backendServices"), call.args["loc"]
        current = self._get(path)
        check_fingerprint(call.body.get("fingerprint"), current["fingerprint"])
        given = {k: copy.deepcopy(v) for k, v in call.body.items() if k not in (*_OUTPUT_ONLY, "name")}
        if call.args["verb"] == "patch":
            changed = copy.deepcopy(current)
            merge(changed, given)
        else:
            keep = ("kind", "name", "selfLink", "region")
            changed = {
                "loadBalancingScheme": default_scheme(loc),
                **{k: current[k] for k in keep if k in current},
            }
            changed.update(given)
        check_backend_service(loc, changed, self._group_exists)

        def effect() -> None:
            if self._resources[path]["fingerprint"] != current["fingerprint"]:
                message = "The backend service changed while the change waited."
                raise OperationError({"code": "CONDITION_NOT_MET", "message": message})
            self._bs_store(path, loc, changed)

        return self._operation(call, path, call.args["verb"], effect)

    def _bs_health(self, call: Call) -> JsonDict:
        service = self._bs_get(call)
        group = relative(str(call.body.get("group", "")))
        if group not in {relative(b.get("group", "")) for b in service.get("backends", [])}:
            raise invalid("resource.group", call.body.get("group"), "Must be a backend of the service")
        igm = group.replace("/instanceGroups/", "/instanceGroupManagers/")
        self._look(igm)
        statuses = [
            {
                "instance": self.url(member),
                "ipAddress": self._resources[member]["ip"],
                "port": 80,
                "healthState": "HEALTHY" if self._healthy(member) else "UNHEALTHY",
            }
            for member in self._groups[igm].members
        ]
        answer: JsonDict = {"kind": "compute#backendServiceGroupHealth"}
        if statuses:
            answer["healthStatus"] = statuses
        return answer

    # -- forwarding rules ----------------------------------------------------------------

    def _fr_insert(self, call: Call) -> JsonDict:
        project, loc, name, path = self._new(call, "forwardingRules", "forwarding rule")
        target = check_target(project, loc, call.body.get("target"), self._targets.__contains__, None)

        def effect() -> None:
            self._counter += 1
            self._resources[path] = {
                "kind": "compute#forwardingRule",
                "name": name,
                "IPAddress": call.body.get("IPAddress", f"203.0.113.{self._counter % 250 + 1}"),
                "IPProtocol": call.body.get("IPProtocol", "TCP"),
                "portRange": call.body.get("portRange", "80-80"),
                "loadBalancingScheme": call.body.get("loadBalancingScheme", "EXTERNAL"),
                "target": self.url(target),
                "selfLink": self.url(path),
                **({} if loc == "global" else {"region": self.url(f"projects/{project}/{loc}")}),
            }

        return self._operation(call, path, "insert", effect)

    def _fr_get(self, call: Call) -> JsonDict:
        return self._get(self._path(call, "forwardingRules"))

    def _fr_set_target(self, call: Call) -> JsonDict:
        path, project, loc = self._path(call, "forwardingRules"), call.args["project"], call.args["loc"]
        rule = self._get(path)
        exists = self._targets.__contains__
        target = check_target(project, loc, call.body.get("target"), exists, rule["target"])

        def effect() -> None:
            rule["target"] = self.url(target)

        return self._operation(call, path, "setTarget", effect)

    # -- instances -----------------------------------------------------------------------

    def _instance_body(self, path: str, machine_type: str) -> JsonDict:
        """A new instance, asked to run now."""
        self._counter += 1
        self._boots[path] = self.now()
        zone = path.split("/instances/")[0]  # projects/P/zones/Z
        return {
            "kind": "compute#instance",
            "id": str(1_000_000 + self._counter),
            "name": path.rsplit("/", 1)[-1],
            "status": "RUNNING",
            "zone": self.url(zone),
            "machineType": self.url(f"{zone}/machineTypes/{machine_type}"),
            "ip": f"10.{self._counter // 65536 % 256}.{self._counter // 256 % 256}.{self._counter % 256}",
            "selfLink": self.url(path),
        }

    def _instance_insert(self, call: Call) -> JsonDict:
        project, loc, _, path = self._new(call, "instances", "instance")
        zone = loc.split("/")[1]
        machine_type = str(call.body.get("machineType") or DEFAULT_MACHINE_TYPE).rsplit("/", 1)[-1]

        def effect() -> None:
            error = self._cannot_run(project, zone, machine_type, new=True)
            if error is not None:
                raise OperationError(error)
            self._resources[path] = self._instance_body(path, machine_type)

        return self._operation(call, path, "insert", effect)

    def _instance_get(self, call: Call) -> JsonDict:
        path = self._path(call, "instances")
        body = {k: v for k, v in self._get(path).items() if k != "ip"}
        return {**body, "status": self._status(path)}

    def _instance_power(self, call: Call) -> JsonDict:
        project, loc, verb = call.args["project"], call.args["loc"], call.args["verb"]
        path = self._path(call, "instances")
        instance = self._get(path)

        def effect() -> None:
            if verb == "stop":
                instance["status"] = "TERMINATED"
                self._boots.pop(path, None)
            elif instance["status"] == "TERMINATED":
                error = self._cannot_run(project, loc.split("/")[1], str(instance["machineType"]), new=False)
                if error is not None:
                    raise OperationError(error)
                instance["status"], self._boots[path] = "RUNNING", self.now()

        return self._operation(call, path, verb, effect)

    # -- regions, permissions ------------------------------------------------------------

    def _region_get(self, call: Call) -> JsonDict:
        return self._region_body(call.args["project"], call.args["name"], self.url)

    def _test_permissions(self, call: Call) -> JsonDict:
        held = [p for p in check_permissions(call.body.get("permissions", [])) if p not in self._denied]
        return {"permissions": held} if held else {}
