"""The compute fake's load balancing resources: backend services (global and regional: insert,
get, patch, update, getHealth, guarded by their fingerprint) and forwarding rules (insert, get,
setTarget), held to Compute Engine's rules (``compute_rules``).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json

from failover.providers.gcp._client import relative
from failover.sandbox.compute_errors import JsonDict, invalid
from failover.sandbox.compute_frontend import Call, OperationError, merge
from failover.sandbox.compute_groups import ManagedGroups
from failover.sandbox.compute_rules import (
    check_backend_service,
    check_fingerprint,
    check_target,
    default_scheme,
    passthrough,
)

_OUTPUT_ONLY = ("kind", "id", "selfLink", "creationTimestamp", "fingerprint", "region")


def _fingerprint(resource: JsonDict) -> str:
    content = json.dumps({k: v for k, v in resource.items() if k != "fingerprint"}, sort_keys=True)
    return base64.b64encode(hashlib.sha256(content.encode()).digest()[:8]).decode()


class LoadBalancing(ManagedGroups):
    """Backend services, whose health is their groups' instances', and forwarding rules."""

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
