"""The compute fake's instances (insert, get, start, stop) and the time they take: a new or
started instance is PROVISIONING, then STAGING, then RUNNING after ``instance_boot``, and
healthy ``health_threshold`` later (``clock``, at the sandbox's speed), worked out from
timestamps when looked at.
"""

from __future__ import annotations

from failover.sandbox import clock
from failover.sandbox.compute_errors import JsonDict
from failover.sandbox.compute_frontend import Call, OperationError
from failover.sandbox.compute_quotas import DEFAULT_MACHINE_TYPE
from failover.sandbox.compute_store import Store


class Instances(Store):
    """Instances: their status and health over time, and their handlers."""

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
