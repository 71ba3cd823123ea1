"""A small, faithful fake of the Compute Engine REST API (the paths failover uses), on 127.0.0.1.

There is no emulator for Compute Engine. This fake serves what the GCP provider and the sandbox
call, with the shapes google-cloud-compute sends and parses: managed instance groups (zonal and
regional: insert, get, resize, listManagedInstances), autoscalers (insert, get, patch), backend
services (global and regional: insert, get, patch with fingerprints, getHealth), forwarding
rules (insert, get, setTarget), instances (insert, get, start, stop), regions (get, with an
INSTANCES quota), zone/region/global operations (get, wait) and Resource Manager's
``projects.testIamPermissions``.

It keeps state, validates paths and bodies (400 with the field named, 404 for what does not
exist, 412 for a stale fingerprint), and works like the real thing where a failover depends on
it: mutations return an operation that is RUNNING and takes effect when it is DONE (operations
progress as they are polled or waited on); a repeated ``requestId`` returns the first operation
and changes nothing; a resized group is unstable until its instances exist, and instances the
region's quota cannot hold stay missing, with QUOTA_EXCEEDED in the group's last attempts; an
autoscaler that is on keeps its group between its limits. Faults can be injected: an HTTP error
(429, 503, 403 quotaExceeded...) for matching requests, or an operation that ends DONE in error.

Capacity faults, as a region short of room or quota on the day of a failover shows them::

    fake.stockout("us-west1-a")                  # the zone has no room for new instances
    fake.stockout("us-west1-a", details=True)    # ... reported as ..._WITH_DETAILS
    fake.stockout("us-west1-a", False)           # room again
    fake.quota("CPUS", 8)                        # a regional quota, in every region and project
    fake.quota("N2_CPUS", 16, project="shop-prod", region="us-west1")
    fake.quota("INSTANCES", 4)                   # overrides set_region's instances_quota
    fake.quota("CPUS", None)                     # no such limit any more
    fake.set_machine_type("projects/P/zones/Z/instanceGroupManagers/G", "n2-standard-4")

A resize is accepted and its operation succeeds whatever the faults (as Compute Engine does: the
instances are created after it). An instance that cannot be created (a stocked-out zone, or a
quota the new instance would exceed) stays CREATING in listManagedInstances, with the error in
its ``lastAttempt.errors`` as Compute Engine reports it (``ZONE_RESOURCE_POOL_EXHAUSTED`` or
``ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS`` naming the zone, ``QUOTA_EXCEEDED`` with
``Quota 'CPUS' exceeded.  Limit: 8.0 in region R.`` and its ``quotaInfo``), and the group is not
stable (``currentActions.creating`` counts them). Each read of the group tries them again, so a
fault that is lifted lets them be created. A regional group places its instances in the zones
a, b and c of its region in turn, and an instance keeps the zone it was given (as an even
distribution does): a stockout in one zone leaves that zone's share missing.

Quotas are per project and region, as Compute Engine's regional quotas are: ``INSTANCES`` counts
every instance; ``CPUS`` the vCPUs of the E2, N1, F1 and G1 instances that are not TERMINATED,
and ``<FAMILY>_CPUS`` (``N2_CPUS``, ``C3_CPUS``...) those of that family. The vCPUs come from
the machine type's name (``e2-medium`` 2, ``n2-standard-4`` 4, ``n2-custom-6-23040`` 6); a
group's instances are ``e2-medium`` unless ``set_machine_type`` says otherwise, an instance is
what its insert says (``e2-medium`` if nothing). ``regions.get`` reports ``INSTANCES`` and each
metric given a limit, with its usage. Starting or inserting an instance checks the same faults:
its operation ends DONE in error with that code.

Not modelled: instance templates, health checks and target proxies as resources (their URLs
are only checked for form), load, and any API not listed above.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from failover.providers.gcp._client import relative

JsonDict = dict[str, Any]

DEFAULT_INSTANCES_QUOTA = 24
DEFAULT_MACHINE_TYPE = "e2-medium"
STOCKOUT = "ZONE_RESOURCE_POOL_EXHAUSTED"
_ZONE = re.compile(r"[a-z]+-[a-z]+[0-9]+-[a-z]")
_METRIC = re.compile(r"[A-Z][A-Z0-9_]*")
_SHARED_CORE_CPUS = {"e2-micro": 2, "e2-small": 2, "e2-medium": 2, "f1-micro": 1, "g1-small": 1}
_CPUS_FAMILIES = ("e2", "n1", "f1", "g1")  # counted by the CPUS quota; others by <FAMILY>_CPUS
_REGION = re.compile(r"[a-z]+-[a-z]+[0-9]+")
_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")


class ApiError(Exception):
    """An error answer: HTTP status, reason (``errors[].reason``) and message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message

    def body(self) -> JsonDict:
        return {
            "error": {
                "code": self.status,
                "message": self.message,
                "errors": [{"message": self.message, "domain": "global", "reason": self.reason}],
            }
        }


def _invalid(field_name: str, value: object, expected: str) -> ApiError:
    return ApiError(400, "invalid", f"Invalid value for field '{field_name}': '{value}'. {expected}")


def _not_found(path: str) -> ApiError:
    return ApiError(404, "notFound", f"The resource '{path}' was not found")


@dataclass
class Fault:
    """Something to go wrong, ``times`` times, for requests whose method matches and whose path
    matches ``path`` (a regular expression, searched): an HTTP error, or (``operation_error``)
    an accepted mutation whose operation ends DONE with that error code and no effect."""

    method: str
    path: str
    status: int = 503
    reason: str = "backendError"
    message: str = "injected fault"
    operation_error: str | None = None
    times: int = 1


@dataclass
class _Operation:
    body: JsonDict
    effect: Callable[[], None] | None
    polls_left: int
    error: tuple[str, str] | None = None


@dataclass
class _Pending:
    """An instance of a group that could not be created yet: its path (zone and name are given
    when it is first tried) and why, as ``lastAttempt.errors.errors[]`` says it."""

    path: str
    error: JsonDict


@dataclass
class _Group:
    """What a managed instance group holds besides its JSON: its instances, those it could not
    create yet, and how many more observations it takes to converge."""

    members: list[str] = field(default_factory=list)  # instance resource paths
    created: int = 0
    settle_left: int = 0
    pending: list[_Pending] = field(default_factory=list)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _merge(into: JsonDict, patch: JsonDict) -> None:
    """JSON merge patch, as Compute Engine's PATCH applies it: objects merge, the rest replaces."""
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


class ComputeFake:
    """The fake: ``start()`` it, point clients at ``endpoint``, ``stop()`` it.

    ``operation_polls``: how many times an operation is seen (get or wait) before it is DONE;
    ``settle_polls``: how many reads of a resized group before its instances exist.
    """

    def __init__(self, *, operation_polls: int = 2, settle_polls: int = 1) -> None:
        self.operation_polls = operation_polls
        self.settle_polls = settle_polls
        self.requests: list[JsonDict] = []
        self._lock = threading.RLock()
        self._resources: dict[str, JsonDict] = {}  # projects/P/... -> JSON
        self._groups: dict[str, _Group] = {}
        self._operations: dict[str, _Operation] = {}
        self._by_request_id: dict[tuple[str, str], str] = {}
        self._regions: dict[tuple[str, str], JsonDict] = {}
        self._faults: list[Fault] = []
        self._denied: set[str] = set()
        self._unhealthy: set[str] = set()
        self._stockouts: dict[str, str] = {}  # zone -> error code
        self._quotas: dict[tuple[str | None, str | None, str], float] = {}  # (project, region, metric)
        self._machine_types: dict[str, str] = {}  # group path -> machine type of its new instances
        self._counter = 0
        self._server: ThreadingHTTPServer | None = None
        self.endpoint = ""

    # -- serving -------------------------------------------------------------------------

    def start(self) -> ComputeFake:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body leave at once, not 40 ms apart

            def log_message(self, *args: object) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, body = fake.handle(self.command, self.path, raw)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve  # noqa: N815 (http.server names)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        serve = functools.partial(self._server.serve_forever, poll_interval=0.05)  # quick to stop
        threading.Thread(target=serve, name="compute-fake", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ComputeFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control: faults, regions, permissions -------------------------------------------

    def fail(self, method: str, path: str, **how: Any) -> Fault:
        """Inject a :class:`Fault` for requests matching ``method`` and ``path``."""
        fault = Fault(method.upper(), path, **how)
        with self._lock:
            self._faults.append(fault)
        return fault

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

    def deny(self, *permissions: str) -> None:
        """Permissions testIamPermissions will say the caller lacks (every other one is held)."""
        with self._lock:
            self._denied.update(permissions)

    def set_unhealthy(self, instance: str, unhealthy: bool = True) -> None:
        """Make an instance (``projects/P/zones/Z/instances/N``) fail its health checks."""
        with self._lock:
            (self._unhealthy.add if unhealthy else self._unhealthy.discard)(relative(instance))

    def stockout(self, zone: str, active: bool = True, *, details: bool = False) -> None:
        """A zone out of resources (``us-west1-a``, in every project): no instance can be created
        or started there until ``stockout(zone, False)``. The error is
        ``ZONE_RESOURCE_POOL_EXHAUSTED``, or ``..._WITH_DETAILS`` with ``details``."""
        if not _ZONE.fullmatch(zone):
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

    def set_machine_type(self, group: str, machine_type: str) -> None:
        """The machine type of the instances a group (``projects/P/zones/Z/instanceGroupManagers/G``
        or its regional form) creates from now on (its template's, which the fake does not keep)."""
        with self._lock:
            self._machine_types[relative(group)] = machine_type

    # -- dispatch ------------------------------------------------------------------------

    def handle(self, method: str, target: str, raw: bytes) -> tuple[int, JsonDict]:
        parts = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return 400, ApiError(400, "parseError", "Parse Error: the body is not JSON").body()
        with self._lock:
            self.requests.append({"method": method, "path": parts.path, "query": query, "body": body})
            try:
                fault = self._fault(method, parts.path)
                if fault is not None and fault.operation_error is None:
                    raise ApiError(fault.status, fault.reason, fault.message)
                for verb, pattern, handler in _ROUTES:
                    match = pattern.fullmatch(parts.path)
                    if match and verb == method:
                        if not isinstance(body, dict):
                            raise ApiError(400, "parseError", "the body must be a JSON object")
                        return 200, handler(self, _Call(match.groupdict(), query, body, fault))
                raise ApiError(404, "notFound", f"no such method: {method} {parts.path}")
            except ApiError as exc:
                return exc.status, exc.body()
            except Exception as exc:  # a request the fake did not foresee: say so, as a 500 would
                message = f"the compute fake failed on {method} {parts.path}: {type(exc).__name__}: {exc}"
                return 500, ApiError(500, "internalError", message).body()

    def _fault(self, method: str, path: str) -> Fault | None:
        """The first fault for this request. An HTTP fault is spent at once; an operation fault
        when it makes an operation fail (not on a request that replays an existing one)."""
        for fault in self._faults:
            if fault.method == method and re.search(fault.path, path):
                if fault.operation_error is None:
                    self._spend(fault)
                return fault
        return None

    def _spend(self, fault: Fault) -> None:
        fault.times -= 1
        if fault.times <= 0 and fault in self._faults:
            self._faults.remove(fault)

    # -- helpers -------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"{self.endpoint}/compute/v1/{path}"

    def _get(self, path: str) -> JsonDict:
        found = self._resources.get(path)
        if found is None:
            raise _not_found(path)
        return found

    def _region(self, project: str, region: str) -> JsonDict:
        if not _REGION.fullmatch(region):
            raise _not_found(f"projects/{project}/regions/{region}")
        return self._regions.setdefault((project, region), {"status": "UP", "quota": DEFAULT_INSTANCES_QUOTA})

    def _zone_region(self, project: str, zone: str) -> str:
        region = zone.rsplit("-", 1)[0]
        if not re.fullmatch(r"[a-z]", zone.rsplit("-", 1)[-1]):
            raise _not_found(f"projects/{project}/zones/{zone}")
        self._region(project, region)
        return region

    def _instances_in(self, project: str, region: str) -> int:
        return len(self._region_instances(project, region))

    def _region_instances(self, project: str, region: str) -> list[JsonDict]:
        prefix = f"projects/{project}/zones/{region}-"
        return [r for p, r in self._resources.items() if p.startswith(prefix) and "/instances/" in p]

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
        instances = self._region_instances(project, region)
        if metric == "INSTANCES":
            return float(len(instances))
        return float(
            sum(
                _cpus(i["machineType"])
                for i in instances
                if i["status"] != "TERMINATED" and _cpu_metric(i["machineType"]) == metric
            )
        )

    def _cannot_run(self, project: str, zone: str, machine_type: str, new: bool) -> JsonDict | None:
        """Why an instance of ``machine_type`` cannot be created (``new``) or started in ``zone``
        now, as an ``errors[]`` entry of Compute Engine; None when it can."""
        region = zone.rsplit("-", 1)[0]
        wants = {_cpu_metric(machine_type): _cpus(machine_type)}
        if new:
            wants["INSTANCES"] = 1
        for metric, more in sorted(wants.items()):
            limit = self._limit(project, region, metric)
            if limit is not None and self._usage(project, region, metric) + more > limit:
                return _quota_error(metric, limit, region)
        code = self._stockouts.get(zone)
        if code is None:
            return None
        tail = (
            "'(resource type:compute)'."
            if code.endswith("_WITH_DETAILS")
            else ("Try a different zone, or try again later.")
        )
        message = (
            f"The zone 'projects/{project}/zones/{zone}' does not have enough resources available "
            f"to fulfill the request.  {tail}"
        )
        return {"code": code, "message": message}

    def _new(
        self, call: _Call, collection: str, what: str, loc: str | None = None
    ) -> tuple[str, str, str, str]:
        """What every insert checks: the location exists, the name is valid and not taken.
        Gives the project, location, name and path of the new resource."""
        project, loc = call.args["project"], loc or call.args["loc"]
        if loc != "global":
            self._location(project, loc)
        name = call.body.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise _invalid("resource.name", name, f"Must be a match of regex '{_NAME.pattern}' ({what})")
        path = f"projects/{project}/{loc}/{collection}/{name}"
        if path in self._resources:
            raise ApiError(409, "alreadyExists", f"The resource '{path}' already exists")
        return project, loc, name, path

    def _operation(
        self, call: _Call, project: str, scope: str, target: str, kind: str, effect: Callable[[], None]
    ) -> JsonDict:
        """Start an operation in ``scope`` (``zones/Z``, ``regions/R`` or ``global``), or give
        back the one started by the same requestId."""
        rid = call.query.get("requestId")
        if rid is not None:
            if not re.fullmatch(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", rid) or set(rid) <= {
                "0",
                "-",
            }:
                raise _invalid("requestId", rid, "Must be a valid UUID other than the zero UUID")
            seen = self._by_request_id.get((project, rid))
            if seen is not None:
                return dict(self._operations[seen].body)
        self._counter += 1
        name = f"operation-{self._counter:06d}-{hashlib.sha1(target.encode()).hexdigest()[:8]}"
        path = f"projects/{project}/{scope}/operations/{name}"
        body: JsonDict = {
            "kind": "compute#operation",
            "id": str(10_000 + self._counter),
            "name": name,
            "operationType": kind,
            "targetLink": self.url(target),
            "status": "RUNNING",
            "progress": 0,
            "insertTime": _now(),
            "startTime": _now(),
            "selfLink": self.url(path),
        }
        if scope != "global":
            body[scope.split("/")[0][:-1]] = self.url(f"projects/{project}/{scope}")
        error = None
        if call.fault is not None and call.fault.operation_error is not None:
            error = (call.fault.operation_error, call.fault.message)
            self._spend(call.fault)
        op = self._operations[path] = _Operation(body, effect, self.operation_polls, error)
        if rid is not None:
            self._by_request_id[(project, rid)] = path
        if op.polls_left <= 0:
            self._finish(op)
        return dict(op.body)

    def _observe(self, path: str) -> JsonDict:
        op = self._operations.get(path)
        if op is None:
            raise _not_found(path)
        if op.body["status"] != "DONE":
            op.polls_left -= 1
            if op.polls_left <= 0:
                self._finish(op)
        return dict(op.body)

    def _finish(self, op: _Operation) -> None:
        if op.error is None and op.effect is not None:
            try:
                op.effect()
            except ApiError as exc:  # it failed while it ran
                op.error = (exc.reason, exc.message)
        if op.error is not None:
            code, message = op.error
            op.body["error"] = {"errors": [{"code": code, "message": message}]}
            op.body["httpErrorStatusCode"], op.body["httpErrorMessage"] = 400, "BAD REQUEST"
        op.body.update(status="DONE", progress=100, endTime=_now())

    # -- managed instance groups ---------------------------------------------------------

    def _igm_insert(self, call: _Call) -> JsonDict:
        project, loc, name, path = self._new(call, "instanceGroupManagers", "instance group manager")
        template = call.body.get("instanceTemplate")
        if not isinstance(template, str) or "instanceTemplates/" not in template:
            raise _invalid("resource.instanceTemplate", template, "Must be an instance template URL")
        size = call.body.get("targetSize", 0)
        if not isinstance(size, int) or size < 0:
            raise _invalid("resource.targetSize", size, "Must be a non-negative integer")

        def effect() -> None:
            group_path = f"projects/{project}/{loc}/instanceGroups/{name}"
            self._resources[path] = {
                "kind": "compute#instanceGroupManager",
                "name": name,
                "baseInstanceName": call.body.get("baseInstanceName", name),
                "instanceTemplate": template,
                "instanceGroup": self.url(group_path),
                "targetSize": size,
                "status": {"isStable": True},
                "currentActions": {"none": 0, "creating": 0, "deleting": 0},
                loc.split("/")[0][:-1]: self.url(f"projects/{project}/{loc}"),
                "selfLink": self.url(path),
            }
            self._groups[path] = _Group()
            self._converge(path)

        return self._operation(call, project, loc, path, "insert", effect)

    def _location(self, project: str, loc: str) -> str:
        """The region of ``zones/Z`` or ``regions/R``, after checking it exists."""
        kind, name = loc.split("/")
        if kind == "zones":
            return self._zone_region(project, name)
        self._region(project, name)
        return name

    def _igm(self, call: _Call) -> tuple[str, JsonDict]:
        path = f"projects/{call.args['project']}/{call.args['loc']}/instanceGroupManagers/{call.args['name']}"
        return path, self._get(path)

    def _igm_get(self, call: _Call) -> JsonDict:
        path, igm = self._igm(call)
        self._settle(path)
        return igm

    def _settle(self, path: str) -> None:
        """One observation of a group: it converges once enough of them were made; after that,
        each one tries again to create the instances it could not (Compute Engine retries)."""
        group = self._groups[path]
        if group.settle_left > 0:
            group.settle_left -= 1
            if group.settle_left == 0:
                self._converge(path)
        elif group.pending:
            self._converge(path)

    def _igm_resize(self, call: _Call) -> JsonDict:
        path, _ = self._igm(call)
        try:
            size = int(call.query["size"])
        except (KeyError, ValueError):
            raise _invalid("size", call.query.get("size"), "Must be a non-negative integer") from None
        if size < 0:
            raise _invalid("size", size, "Must be a non-negative integer")

        def effect() -> None:
            self._set_target(path, size)

        return self._operation(
            call, call.args["project"], call.args["loc"], path, "compute.instanceGroupManagers.resize", effect
        )

    def _set_target(self, path: str, size: int) -> None:
        igm = self._resources[path]
        autoscaler = igm["status"].get("autoscaler")
        if autoscaler:  # an autoscaler that is on puts the group back between its limits
            policy = self._resources[relative(autoscaler)]["autoscalingPolicy"]
            if policy.get("mode", "ON") != "OFF":
                size = max(policy.get("minNumReplicas", 0), min(policy["maxNumReplicas"], size))
        igm["targetSize"] = size
        group = self._groups[path]
        if len(group.members) == size and not group.pending:
            return
        igm["status"]["isStable"] = False
        delta = size - len(group.members)
        igm["currentActions"].update(
            creating=max(0, delta), deleting=max(0, -delta), none=min(size, len(group.members))
        )
        group.settle_left = max(1, self.settle_polls)

    def _converge(self, path: str) -> None:
        """Create or delete instances so the group holds its target size, as quotas and zones
        allow: the instances it could not create are tried again first, in the zones they were
        given; an instance that still cannot be created stays pending, with why."""
        igm, group = self._resources[path], self._groups[path]
        kind, loc = path.split("/")[2:4]
        project, region = _group_region(path)
        target = igm["targetSize"]
        while group.pending and len(group.members) + len(group.pending) > target:
            group.pending.pop()  # not created yet: the first to go
        while len(group.members) > target:
            self._resources.pop(group.members.pop(), None)
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
            self._resources[instance] = self._instance_body(instance, "RUNNING", machine_type)
            group.members.append(instance)
        creating = len(group.pending)
        igm["status"]["isStable"] = creating == 0
        igm["currentActions"] = {"none": len(group.members), "creating": creating, "deleting": 0}

    def _igm_list(self, call: _Call) -> JsonDict:
        path, _ = self._igm(call)
        self._settle(path)
        group = self._groups[path]
        managed: list[JsonDict] = [
            {
                "instance": self.url(p),
                "name": p.rsplit("/", 1)[-1],
                "id": self._resources[p]["id"],
                "instanceStatus": self._resources[p]["status"],
                "currentAction": "NONE",
            }
            for p in group.members
        ]
        for pending in group.pending:  # the URL and name exist before the instance does
            managed.append(
                {
                    "instance": self.url(pending.path),
                    "name": pending.path.rsplit("/", 1)[-1],
                    "currentAction": "CREATING",
                    "lastAttempt": {"errors": {"errors": [json.loads(json.dumps(pending.error))]}},
                }
            )
        return {"managedInstances": managed}

    # -- autoscalers ---------------------------------------------------------------------

    def _check_policy(self, policy: object) -> None:
        if not isinstance(policy, dict):
            raise _invalid("resource.autoscalingPolicy", policy, "Must be an object")
        lo, hi = policy.get("minNumReplicas", 0), policy.get("maxNumReplicas")
        if not isinstance(hi, int) or hi < 0 or hi > 1000:
            raise _invalid("resource.autoscalingPolicy.maxNumReplicas", hi, "Must be between 0 and 1000")
        if not isinstance(lo, int) or lo < 0 or lo > hi:
            raise _invalid(
                "resource.autoscalingPolicy.minNumReplicas",
                lo,
                f"Must be between 0 and maxNumReplicas ({hi})",
            )
        if policy.get("mode", "ON") not in ("ON", "OFF", "ONLY_SCALE_OUT", "ONLY_UP"):
            raise _invalid(
                "resource.autoscalingPolicy.mode", policy.get("mode"), "Must be ON, OFF, ONLY_SCALE_OUT"
            )

    def _autoscaler_insert(self, call: _Call) -> JsonDict:
        project, loc, name, path = self._new(call, "autoscalers", "autoscaler")
        target = relative(str(call.body.get("target", "")))
        if target not in self._resources or "/instanceGroupManagers/" not in target:
            raise _invalid("resource.target", call.body.get("target"), "Must be a managed instance group URL")
        if not target.startswith(f"projects/{project}/{loc}/"):
            raise _invalid("resource.target", call.body.get("target"), f"Must be a group in {loc}")
        policy = call.body.get("autoscalingPolicy")
        self._check_policy(policy)

        def effect() -> None:
            self._resources[path] = {
                "kind": "compute#autoscaler",
                "name": name,
                "target": self.url(target),
                "autoscalingPolicy": {"mode": "ON", "minNumReplicas": 0, **dict(policy)},  # type: ignore[arg-type]
                "status": "ACTIVE",
                loc.split("/")[0][:-1]: self.url(f"projects/{project}/{loc}"),
                "selfLink": self.url(path),
            }
            self._resources[target]["status"]["autoscaler"] = self.url(path)
            self._set_target(target, self._resources[target]["targetSize"])

        return self._operation(call, project, loc, path, "insert", effect)

    def _autoscaler_get(self, call: _Call) -> JsonDict:
        return self._get(
            f"projects/{call.args['project']}/{call.args['loc']}/autoscalers/{call.args['name']}"
        )

    def _autoscaler_patch(self, call: _Call) -> JsonDict:
        name = call.query.get("autoscaler") or call.body.get("name")
        path = f"projects/{call.args['project']}/{call.args['loc']}/autoscalers/{name}"
        current = self._get(path)
        if call.body.get("name", name) != name:
            raise _invalid("resource.name", call.body.get("name"), f"Must be {name}")
        merged = json.loads(json.dumps(current))
        _merge(merged, {k: v for k, v in call.body.items() if k in ("autoscalingPolicy", "description")})
        self._check_policy(merged["autoscalingPolicy"])

        def effect() -> None:
            current["autoscalingPolicy"] = merged["autoscalingPolicy"]
            target = relative(current["target"])
            self._set_target(target, self._resources[target]["targetSize"])

        return self._operation(call, call.args["project"], call.args["loc"], path, "patch", effect)

    # -- backend services ----------------------------------------------------------------

    def _check_backends(self, project: str, loc: str, body: JsonDict) -> None:
        backends = body.get("backends", [])
        if not isinstance(backends, list):
            raise _invalid("resource.backends", backends, "Must be a list")
        for i, backend in enumerate(backends):
            if not isinstance(backend, dict):
                raise _invalid(f"resource.backends[{i}]", backend, "Must be an object")
            group = relative(str(backend.get("group", "")))
            owner = group.replace("/instanceGroups/", "/instanceGroupManagers/")
            if "/instanceGroups/" not in group or owner not in self._resources:
                raise _invalid(
                    f"resource.backends[{i}].group",
                    backend.get("group"),
                    "Must be an existing instance group",
                )
            scaler = backend.get("capacityScaler", 1.0)
            if not isinstance(scaler, int | float) or not (scaler == 0 or 0.1 <= scaler <= 1.0):
                raise _invalid(
                    f"resource.backends[{i}].capacityScaler", scaler, "Must be 0 or between 0.1 and 1.0"
                )
        if "failoverPolicy" in body and loc == "global":
            raise _invalid(
                "resource.failoverPolicy", body["failoverPolicy"], "Only regional backend services have one"
            )
        ratio = body.get("failoverPolicy", {}).get("failoverRatio", 0.0)
        if not isinstance(ratio, int | float) or not 0 <= ratio <= 1:
            raise _invalid("resource.failoverPolicy.failoverRatio", ratio, "Must be between 0 and 1")

    @staticmethod
    def _fingerprint(resource: JsonDict) -> str:
        content = json.dumps({k: v for k, v in resource.items() if k != "fingerprint"}, sort_keys=True)
        return base64.b64encode(hashlib.sha256(content.encode()).digest()[:8]).decode()

    def _bs_insert(self, call: _Call) -> JsonDict:
        project, loc, _, path = self._new(call, "backendServices", "backend service")
        self._check_backends(project, loc, call.body)

        def effect() -> None:
            resource = {
                "kind": "compute#backendService",
                "loadBalancingScheme": "EXTERNAL_MANAGED" if loc == "global" else "INTERNAL",
                **{k: v for k, v in call.body.items() if k not in ("kind", "selfLink", "fingerprint")},
                "selfLink": self.url(path),
            }
            for backend in resource.get("backends", []):
                backend.setdefault("capacityScaler", 1.0)
                backend.setdefault("balancingMode", "UTILIZATION")
            if loc != "global":
                resource["region"] = self.url(f"projects/{project}/{loc}")
            resource["fingerprint"] = self._fingerprint(resource)
            self._resources[path] = resource

        return self._operation(call, project, loc, path, "insert", effect)

    def _bs(self, call: _Call) -> tuple[str, JsonDict]:
        path = f"projects/{call.args['project']}/{call.args['loc']}/backendServices/{call.args['name']}"
        return path, self._get(path)

    def _bs_get(self, call: _Call) -> JsonDict:
        return self._bs(call)[1]

    def _bs_patch(self, call: _Call) -> JsonDict:
        path, current = self._bs(call)
        given = call.body.get("fingerprint")
        if given is not None and given != current["fingerprint"]:
            raise ApiError(
                412, "conditionNotMet", "Supplied fingerprint does not match current resource fingerprint."
            )
        changes = {
            k: v
            for k, v in call.body.items()
            if k not in ("fingerprint", "kind", "selfLink", "name", "region")
        }
        merged = json.loads(json.dumps(current))
        _merge(merged, changes)
        self._check_backends(call.args["project"], call.args["loc"], merged)

        def effect() -> None:
            if self._resources[path]["fingerprint"] != current["fingerprint"]:
                raise ApiError(412, "CONDITION_NOT_MET", "the backend service changed while the patch waited")
            merged["fingerprint"] = self._fingerprint(merged)
            self._resources[path] = merged

        return self._operation(call, call.args["project"], call.args["loc"], path, "patch", effect)

    def _bs_health(self, call: _Call) -> JsonDict:
        _, service = self._bs(call)
        group = relative(str(call.body.get("group", "")))
        if group not in {relative(b.get("group", "")) for b in service.get("backends", [])}:
            raise _invalid("resource.group", call.body.get("group"), "Must be a backend of the service")
        igm = group.replace("/instanceGroups/", "/instanceGroupManagers/")
        self._settle(igm)
        statuses = []
        for member in self._groups[igm].members:
            instance = self._resources[member]
            healthy = instance["status"] == "RUNNING" and member not in self._unhealthy
            statuses.append(
                {
                    "instance": self.url(member),
                    "ipAddress": instance["ip"],
                    "port": 80,
                    "healthState": "HEALTHY" if healthy else "UNHEALTHY",
                }
            )
        answer: JsonDict = {"kind": "compute#backendServiceGroupHealth"}
        if statuses:
            answer["healthStatus"] = statuses
        return answer

    # -- forwarding rules ----------------------------------------------------------------

    def _check_target(self, project: str, loc: str, target: object) -> str:
        path = relative(str(target))
        parts = path.split("/")
        scoped = parts[2:-2] if len(parts) >= 5 else []
        ok = (
            len(parts) >= 5
            and parts[0] == "projects"
            and (parts[-2].startswith("target") or parts[-2] == "serviceAttachments")
            and (
                scoped == ["global"]
                if loc == "global"
                else scoped == loc.split("/") or scoped[:1] == ["zones"]
            )
        )
        if not ok:
            raise _invalid("resource.target", target, f"Must be a target resource URL in {loc}")
        return path

    def _fr_insert(self, call: _Call) -> JsonDict:
        project, loc, name, path = self._new(call, "forwardingRules", "forwarding rule")
        target = self._check_target(project, loc, call.body.get("target"))

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

        return self._operation(call, project, loc, path, "insert", effect)

    def _fr_get(self, call: _Call) -> JsonDict:
        return self._get(
            f"projects/{call.args['project']}/{call.args['loc']}/forwardingRules/{call.args['name']}"
        )

    def _fr_set_target(self, call: _Call) -> JsonDict:
        path = f"projects/{call.args['project']}/{call.args['loc']}/forwardingRules/{call.args['name']}"
        rule = self._get(path)
        target = self._check_target(call.args["project"], call.args["loc"], call.body.get("target"))

        def effect() -> None:
            rule["target"] = self.url(target)

        return self._operation(call, call.args["project"], call.args["loc"], path, "setTarget", effect)

    # -- instances -----------------------------------------------------------------------

    def _instance_body(self, path: str, status: str, machine_type: str = DEFAULT_MACHINE_TYPE) -> JsonDict:
        self._counter += 1
        zone = path.split("/instances/")[0]  # projects/P/zones/Z
        return {
            "kind": "compute#instance",
            "id": str(1_000_000 + self._counter),
            "name": path.rsplit("/", 1)[-1],
            "status": status,
            "zone": self.url(zone),
            "machineType": self.url(f"{zone}/machineTypes/{machine_type}"),
            "ip": f"10.{self._counter // 65536 % 256}.{self._counter // 256 % 256}.{self._counter % 256}",
            "selfLink": self.url(path),
        }

    def _instance_insert(self, call: _Call) -> JsonDict:
        project, zone = call.args["project"], call.args["zone"]
        _, _, _, path = self._new(call, "instances", "instance", loc=f"zones/{zone}")
        self._zone_region(project, zone)
        machine_type = str(call.body.get("machineType") or DEFAULT_MACHINE_TYPE).rsplit("/", 1)[-1]

        def effect() -> None:
            error = self._cannot_run(project, zone, machine_type, new=True)
            if error is not None:
                raise ApiError(403, error["code"], error["message"])
            self._resources[path] = self._instance_body(path, "RUNNING", machine_type)

        return self._operation(call, project, f"zones/{zone}", path, "insert", effect)

    def _instance_get(self, call: _Call) -> JsonDict:
        body = self._get(
            f"projects/{call.args['project']}/zones/{call.args['zone']}/instances/{call.args['name']}"
        )
        return {k: v for k, v in body.items() if k != "ip"}

    def _instance_power(self, call: _Call) -> JsonDict:
        project, zone, verb = call.args["project"], call.args["zone"], call.args["verb"]
        path = f"projects/{project}/zones/{zone}/instances/{call.args['name']}"
        instance = self._get(path)

        def effect() -> None:
            if verb == "start" and instance["status"] == "TERMINATED":
                machine_type = str(instance["machineType"]).rsplit("/", 1)[-1]
                error = self._cannot_run(project, zone, machine_type, new=False)
                if error is not None:
                    raise ApiError(403, error["code"], error["message"])
            instance["status"] = "RUNNING" if verb == "start" else "TERMINATED"

        return self._operation(call, project, f"zones/{zone}", path, verb, effect)

    # -- regions, operations, permissions ------------------------------------------------

    def _region_get(self, call: _Call) -> JsonDict:
        project, name = call.args["project"], call.args["region"]
        region = self._region(project, name)
        metrics = sorted(
            {"INSTANCES", *(m for p, r, m in self._quotas if p in (None, project) and r in (None, name))}
        )
        return {
            "kind": "compute#region",
            "name": name,
            "status": region["status"],
            "zones": [self.url(f"projects/{project}/zones/{name}-{z}") for z in "abc"],
            "quotas": [
                {"metric": m, "limit": self._limit(project, name, m), "usage": self._usage(project, name, m)}
                for m in metrics
            ],
            "selfLink": self.url(f"projects/{project}/regions/{name}"),
        }

    def _operation_get(self, call: _Call) -> JsonDict:
        return self._observe(
            f"projects/{call.args['project']}/{call.args['oploc']}/operations/{call.args['name']}"
        )

    def _test_permissions(self, call: _Call) -> JsonDict:
        asked = call.body.get("permissions", [])
        if not isinstance(asked, list) or len(asked) > 100:
            raise _invalid(
                "permissions", len(asked) if isinstance(asked, list) else asked, "At most 100 permissions"
            )
        held = [p for p in asked if p not in self._denied]
        return {"permissions": held} if held else {}


def _cpus(machine_type: str) -> int:
    """The vCPUs of a machine type, from its name: ``n2-standard-4`` 4, ``n2-custom-6-23040`` 6,
    ``e2-medium`` 2 (shared core)."""
    name = machine_type.rsplit("/", 1)[-1]
    if name in _SHARED_CORE_CPUS:
        return _SHARED_CORE_CPUS[name]
    parts = name.split("-")
    if (
        "custom" in parts
        and parts.index("custom") + 1 < len(parts)
        and parts[parts.index("custom") + 1].isdigit()
    ):
        return int(parts[parts.index("custom") + 1])
    return int(parts[-1]) if parts[-1].isdigit() else 1


def _cpu_metric(machine_type: str) -> str:
    """The regional quota metric a machine type's vCPUs count against: CPUS, N2_CPUS..."""
    family = machine_type.rsplit("/", 1)[-1].split("-")[0]
    return "CPUS" if family in _CPUS_FAMILIES else f"{family.upper()}_CPUS"


def _quota_error(metric: str, limit: float, region: str) -> JsonDict:
    """A QUOTA_EXCEEDED entry of ``errors[]``, with its ``quotaInfo`` as Compute Engine gives it."""
    limit_name = f"{metric.replace('_CPUS', '-CPUS')}-per-project-region"
    return {
        "code": "QUOTA_EXCEEDED",
        "message": f"Quota '{metric}' exceeded.  Limit: {limit} in region {region}.",
        "errorDetails": [
            {
                "quotaInfo": {
                    "metricName": f"compute.googleapis.com/{metric.lower()}",
                    "limitName": limit_name,
                    "dimensions": {"region": region},
                    "limit": limit,
                }
            }
        ],
    }


def _group_region(path: str) -> tuple[str, str]:
    """The project and region of ``projects/P/(zones|regions)/L/...``."""
    _, project, kind, loc = path.split("/")[:4]
    return project, loc if kind == "regions" else loc.rsplit("-", 1)[0]


@dataclass
class _Call:
    args: dict[str, str]
    query: dict[str, str]
    body: JsonDict
    fault: Fault | None


_P = r"/compute/v1/projects/(?P<project>[a-z][-a-z0-9]{4,28}[a-z0-9])/"
_LOC = r"(?P<loc>(?:zones|regions)/[^/]+)"
_GLOC = r"(?P<loc>global|regions/[^/]+)"
_N = r"(?P<name>[^/]+)"
_ROUTES: list[tuple[str, re.Pattern[str], Callable[[ComputeFake, _Call], JsonDict]]] = [
    (verb, re.compile(pattern), handler)
    for verb, pattern, handler in [
        ("GET", _P + r"regions/(?P<region>[^/]+)", ComputeFake._region_get),
        ("POST", _P + _LOC + r"/instanceGroupManagers", ComputeFake._igm_insert),
        ("GET", _P + _LOC + r"/instanceGroupManagers/" + _N, ComputeFake._igm_get),
        ("POST", _P + _LOC + r"/instanceGroupManagers/" + _N + "/resize", ComputeFake._igm_resize),
        (
            "POST",
            _P + _LOC + r"/instanceGroupManagers/" + _N + "/listManagedInstances",
            ComputeFake._igm_list,
        ),
        ("POST", _P + _LOC + r"/autoscalers", ComputeFake._autoscaler_insert),
        ("GET", _P + _LOC + r"/autoscalers/" + _N, ComputeFake._autoscaler_get),
        ("PATCH", _P + _LOC + r"/autoscalers", ComputeFake._autoscaler_patch),
        ("POST", _P + _GLOC + r"/backendServices", ComputeFake._bs_insert),
        ("GET", _P + _GLOC + r"/backendServices/" + _N, ComputeFake._bs_get),
        ("PATCH", _P + _GLOC + r"/backendServices/" + _N, ComputeFake._bs_patch),
        ("POST", _P + _GLOC + r"/backendServices/" + _N + "/getHealth", ComputeFake._bs_health),
        ("POST", _P + _GLOC + r"/forwardingRules", ComputeFake._fr_insert),
        ("GET", _P + _GLOC + r"/forwardingRules/" + _N, ComputeFake._fr_get),
        ("POST", _P + _GLOC + r"/forwardingRules/" + _N + "/setTarget", ComputeFake._fr_set_target),
        ("POST", _P + r"zones/(?P<zone>[^/]+)/instances", ComputeFake._instance_insert),
        ("GET", _P + r"zones/(?P<zone>[^/]+)/instances/" + _N, ComputeFake._instance_get),
        (
            "POST",
            _P + r"zones/(?P<zone>[^/]+)/instances/" + _N + "/(?P<verb>start|stop)",
            ComputeFake._instance_power,
        ),
        (
            "GET",
            _P + r"(?P<oploc>global|(?:zones|regions)/[^/]+)/operations/" + _N,
            ComputeFake._operation_get,
        ),
        (
            "POST",
            _P + r"(?P<oploc>global|(?:zones|regions)/[^/]+)/operations/" + _N + "/wait",
            ComputeFake._operation_get,
        ),
        ("POST", r"/v3/projects/(?P<project>[^/:]+):testIamPermissions", ComputeFake._test_permissions),
    ]
]
